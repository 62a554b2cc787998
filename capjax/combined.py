"""Supervised predictors fitted on fully trained reference candidates (SPEC 2.4, issue 5).

* ``beta_cross_<interaction>``: the paper's cross-candidate alternative: one Bayesian
  ridge regression of the references' final accuracy on their beta_eff (and accuracy) at
  the budget (:func:`capjax.bayes_ridge.predict_from_references`).
* ``combined``: capjax's own predictor: one NumPyro Bayesian linear model of final
  accuracy on beta_eff *and* the early learning curve together,

      final_c = theta_0 + phi_c . theta + eps,   theta ~ N(0, 1/lambda),  eps ~ N(0, 1/alpha),
      alpha ~ Gamma(1, 1e-3),  lambda ~ Gamma(1, 1e-3),  theta_0 ~ N(0.5, 1),

  sampled with NUTS on the references and read as joint posterior predictive draws for
  every candidate. The features ``phi_c`` (:data:`COMBINED_FEATURES`) are fixed in
  advance, not selected on results; each is standardised with the references' mean and
  scale, and a missing value (e.g. a curve fit that failed) is set to the references'
  mean, i.e. 0 after standardisation.

Both only see the truth of ``Task.reference`` candidates (the development split).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

from capjax import curves
from capjax.predictors import Forecast, Task, _from_scores, register

MIN_REFERENCES = 5
COMBINED_FEATURES = ("early_acc", "acc_gain", "curve", "train_loss", "log_beta", "log_beta_change")


def _log_beta(values: np.ndarray) -> np.ndarray:
    return np.log(np.where(values > 0, values, np.nan))


def combined_features(task: Task, interaction: str = "coupling") -> tuple[np.ndarray, list[str]]:
    """``(C, F)`` features of every candidate at the budget, and their names.

    Early accuracy at the budget, its change over the last half of the budget, the
    learning-curve extrapolation to the final epoch (early accuracy when the budget is one
    epoch), the mean training loss at the budget, log beta_eff at the budget and its change
    since epoch 0 (the trend the paper reads).
    """
    b = task.budget
    acc = task.early("val_acc")
    beta = task.early(f"beta_{interaction}")
    half = max(b // 2, 1) - 1
    extrap = acc[:, -1]
    if b >= 2:
        extrap = np.array([f.value for f in curves.extrapolate_curve(acc, task.full_epochs)])
    beta0 = task.sweep.initial(f"beta_{interaction}")
    cols = {
        "early_acc": acc[:, -1],
        "acc_gain": acc[:, -1] - acc[:, half] if b >= 2 else acc[:, -1] - task.sweep.initial("val_acc"),
        "curve": extrap,
        "train_loss": task.early("train_loss")[:, -1],
        "log_beta": _log_beta(beta[:, -1]),
        "log_beta_change": _log_beta(beta[:, -1]) - _log_beta(beta0),
    }
    return np.stack(list(cols.values()), axis=1), list(cols)


def _standardise(X: np.ndarray, ref: np.ndarray) -> np.ndarray:
    mu = np.nanmean(X[ref], axis=0)
    sd = np.nanstd(X[ref], axis=0)
    Z = (X - mu) / np.where(sd > 0, sd, 1.0)
    return np.where(np.isfinite(Z), Z, 0.0)


def _linear_model(X, y=None):
    alpha = numpyro.sample("alpha", dist.Gamma(1.0, 1e-3))
    lam = numpyro.sample("lambda", dist.Gamma(1.0, 1e-3))
    theta0 = numpyro.sample("theta0", dist.Normal(0.5, 1.0))
    theta = numpyro.sample("theta", dist.Normal(jnp.zeros(X.shape[1]), 1.0 / jnp.sqrt(lam)).to_event(1))
    numpyro.sample("y", dist.Normal(theta0 + X @ theta, 1.0 / jnp.sqrt(alpha)), obs=y)


def posterior_predictive(
    X_ref: np.ndarray,
    y_ref: np.ndarray,
    X: np.ndarray,
    *,
    seed: int = 0,
    num_samples: int = 1000,
    num_warmup: int = 500,
) -> np.ndarray:
    """``(S, C)`` joint posterior predictive draws of the linear model for the rows of ``X``."""
    mcmc = MCMC(NUTS(_linear_model), num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
    key_fit, key_noise = jax.random.split(jax.random.PRNGKey(seed))
    mcmc.run(key_fit, jnp.asarray(X_ref), jnp.asarray(y_ref))
    post = mcmc.get_samples()
    mean = post["theta0"][:, None] + post["theta"] @ jnp.asarray(X).T
    noise = jax.random.normal(key_noise, mean.shape) / jnp.sqrt(post["alpha"])[:, None]
    return np.asarray(mean + noise)


def _fail_all(task: Task, why: str) -> Forecast:
    return _from_scores(task, np.full(len(task.sweep.names), np.nan), why)


def _references(task: Task) -> np.ndarray | None:
    if task.reference is None:
        return None
    ref = np.isfinite(task.reference)
    return ref if ref.sum() >= MIN_REFERENCES else None


@register("combined")
def combined(task: Task) -> Forecast:
    """capjax's combined predictor: beta_eff and the early learning curve in one NumPyro model."""
    ref = _references(task)
    if ref is None:
        return _fail_all(task, f"the combined predictor needs >= {MIN_REFERENCES} fully trained references")
    X, _ = combined_features(task, task.options.get("interaction", "coupling"))
    Z = _standardise(X, ref)
    samples = posterior_predictive(Z[ref], task.reference[ref], Z, seed=task.seed)
    level = float(task.options.get("level", 0.9))
    lower, upper = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    mean = samples.mean(axis=0)
    return _from_scores(task, mean, "no features", mean=mean, lower=lower, upper=upper, samples=samples, level=level)


def _beta_cross(task: Task, interaction: str) -> Forecast:
    """The paper's cross-candidate regression on (beta_eff, accuracy) at the budget."""
    from capjax.bayes_ridge import predict_from_references
    from capjax.predict import _scatter

    ref = _references(task)
    if ref is None:
        return _fail_all(task, f"cross-candidate regression needs >= {MIN_REFERENCES} fully trained references")
    beta, acc = task.early(f"beta_{interaction}"), task.early("val_acc")
    ok = np.isfinite(beta[:, -1]) & np.isfinite(acc[:, -1])
    fit_ref = ref & ok
    if fit_ref.sum() < MIN_REFERENCES:
        return _fail_all(task, "too few references with a finite beta_eff at the budget")
    pred = predict_from_references(
        beta[ok], acc[ok], beta[fit_ref], acc[fit_ref], task.reference[fit_ref], key=task.seed
    )
    mean, lower, upper = (_scatter(v, ok) for v in (pred.mean, pred.lower, pred.upper))
    samples = np.where(ok, _scatter(pred.samples, ok), -np.inf)  # no finite beta_eff: never best
    return _from_scores(
        task, mean, "no finite beta_eff at the budget", mean=mean, lower=lower, upper=upper, samples=samples
    )


@register("beta_cross_coupling")
def beta_cross_coupling(task: Task) -> Forecast:
    """Cross-candidate regression on beta_eff (coupling interaction) and accuracy."""
    return _beta_cross(task, "coupling")


@register("beta_cross_hessian")
def beta_cross_hessian(task: Task) -> Forecast:
    """Cross-candidate regression on beta_eff (hessian interaction) and accuracy."""
    return _beta_cross(task, "hessian")
