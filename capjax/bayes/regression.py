"""Regressions across candidates: on fully trained references, and one fit at a time.

* :func:`predict_from_references`: the cross-candidate alternative of docs/method.md
  §2.4, one Bayesian ridge regression of the references' final accuracy on their early
  state, read at every candidate's early state; the shared coefficients make the
  candidates' draws joint.
* :func:`regression_draws`: the same regression on any features, the core that the
  combined predictor (docs/method.md §7) uses too.
* :func:`fit_bayes_ridge`: one fit in the style of scikit-learn's ``BayesianRidge``, the
  oracle the tests compare the model against.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from capjax.base.validation import CapjaxInputError, check_accuracy, is_concrete
from capjax.bayes.predict import Prediction, central_interval
from capjax.bayes.ridge import (
    DEGREE,
    Basis,
    Hyperprior,
    Intercept,
    Method,
    check_intercept,
    check_options,
    evidence_all,
    gauss,
    gauss_batch,
    hyper_draws,
    latent_moments,
    prepare_batch,
    prepare_one,
    split_key,
    total_moments,
    with_ones,
)


def paired_curves(
    name_beta: str, beta: Any, name_acc: str, acc: Any, n_early: int | None, paired: bool = True
):
    """(C, T) float arrays cut to the first n_early columns, and the mask of used pairs.

    ``paired``: require beta and acc to be NaN at the same places (every pair is used).
    """
    if not is_concrete(beta, acc):
        raise CapjaxInputError(
            f"{name_beta}/{name_acc} are JAX tracers: call this outside jax.jit/vmap"
        )
    b = np.asarray(beta, dtype=float)
    a = check_accuracy(name_acc, acc)
    if b.ndim == 1:
        b = b[None]
    if a.ndim == 1:
        a = a[None]
    if b.ndim != 2 or b.shape != a.shape:
        raise CapjaxInputError(
            f"{name_beta} has shape {np.shape(beta)} and {name_acc} {np.shape(acc)}; pass both "
            "as (n_candidates, n_observations) (or (n_observations,) for one candidate), "
            "NaN-padded where a run has fewer observations"
        )
    if b.shape[1] == 0:
        raise CapjaxInputError(f"{name_beta} has no observations")
    if n_early is not None:
        if int(n_early) != n_early or not 1 <= n_early <= b.shape[1]:
            raise CapjaxInputError(
                f"n_early={n_early!r}: must be an integer in [1, {b.shape[1]}], the number "
                "of observation pairs per candidate"
            )
        b, a = b[:, : int(n_early)], a[:, : int(n_early)]
    if np.isinf(b).any():
        raise CapjaxInputError(f"{name_beta} holds inf; check the run that measured beta_eff")
    fb, fa = np.isfinite(b), np.isfinite(a)
    if paired and (fb != fa).any():
        c, t = np.argwhere(fb != fa)[0]
        raise CapjaxInputError(
            f"{name_beta} and {name_acc} disagree on which observations exist (first at "
            f"candidate {c}, observation {t}): NaN-pad both at the same places"
        )
    return b, a, fb


def check_counts(name: str, n_used: np.ndarray, p: int, basis: str) -> None:
    short = np.flatnonzero(n_used < p + 1)
    if short.size:
        raise CapjaxInputError(
            f"{name} {short.tolist()} have {n_used[short].tolist()} observation pair(s); the "
            f"{basis} basis has {p} coefficients and needs at least {p + 1} pairs (one "
            "left for the noise): use more early epochs, or a smaller basis"
        )


def predict_from_references(
    beta: Any,
    acc: Any,
    ref_beta: Any,
    ref_acc: Any,
    ref_final_acc: Any,
    *,
    n_early: int | None = None,
    basis: Basis = "linear",
    use_accuracy: bool = True,
    intercept: Intercept = "flat",
    method: Method = "fast",
    hyperprior: Hyperprior | None = None,
    level: float = 0.9,
    num_samples: int = 2000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    key: Any = 0,
) -> Prediction:
    """Cross-candidate alternative: regress final accuracy on the early state of references.

    A few reference models are trained fully. Each model (reference or candidate) is
    described by its state at the last early observation ``n_early``: the basis in beta_eff
    (``beta``, and ``beta**2`` when quadratic) and, if ``use_accuracy``, its validation
    accuracy there. One Bayesian ridge regression of the references' final accuracy on these
    features (columns divided by their root mean square over the references) predicts the
    candidates. The coefficients are shared, so the candidates' predictions are correlated
    and ``samples`` holds proper joint draws.

    Args:
      beta, acc: (C, T) early curves of the candidates.
      ref_beta, ref_acc: (R, T_ref) early curves of the references, T_ref >= n_early.
      ref_final_acc: (R,) their final accuracies.
      Other arguments as in :func:`capjax.bayes.predict.predict_final`.
    """
    hp = Hyperprior() if hyperprior is None else hyperprior
    check_options(basis, intercept, method, False, num_samples, num_warmup, num_chains, level)
    # only the last early observation is read, so padding elsewhere need not agree
    b, a, _ = paired_curves("beta", beta, "acc", acc, n_early, paired=False)
    t = b.shape[1]
    rb, ra, _ = paired_curves("ref_beta", ref_beta, "ref_acc", ref_acc, None, paired=False)
    if rb.shape[1] < t:
        raise CapjaxInputError(
            f"the references have {rb.shape[1]} observations but the candidates are read at "
            f"observation {t}: pass longer reference curves or a smaller n_early"
        )
    rf = check_accuracy("ref_final_acc", ref_final_acc)
    if rf.shape != (rb.shape[0],) or not np.all(np.isfinite(rf)):
        raise CapjaxInputError(
            f"ref_final_acc has shape {rf.shape}; pass one finite final accuracy per reference "
            f"({rb.shape[0]})"
        )
    for name, bb, aa in (("candidates", b, a), ("references", rb, ra)):
        seen = np.isfinite(bb[:, t - 1]) & (np.isfinite(aa[:, t - 1]) | (not use_accuracy))
        missing = np.flatnonzero(~seen)
        if missing.size:
            raise CapjaxInputError(
                f"{name} {missing.tolist()} have no observation at n_early={t}, where the "
                "features are read: choose an n_early that every run reached"
            )

    degree = DEGREE[basis]

    def features(bb, aa):
        cols = [bb**j for j in range(1, degree + 1)] + ([aa] if use_accuracy else [])
        return np.stack(cols, axis=-1)

    F_ref = features(rb[:, t - 1], ra[:, t - 1])
    F = features(b[:, t - 1], a[:, t - 1])
    const = np.flatnonzero(np.ptp(F_ref, axis=0) == 0)
    if const.size:
        raise CapjaxInputError(
            f"feature column(s) {const.tolist()} are the same for every reference model, so "
            "their effect cannot be learned: use references that differ there"
        )
    p = F.shape[1] + (intercept == "flat")
    if len(rf) < p + 1:
        raise CapjaxInputError(
            f"{len(rf)} reference model(s) for {p} coefficients: the regression needs at "
            f"least {p + 1} (one left for the noise); add references, or use "
            "use_accuracy=False or a smaller basis"
        )
    scale = np.sqrt(np.mean(F_ref**2, axis=0))
    samples, latent, mean, std, theta, details = regression_draws(
        F_ref / scale,
        rf,
        F / scale,
        intercept=intercept,
        method=method,
        hyperprior=hp,
        num_samples=num_samples,
        num_warmup=num_warmup,
        num_chains=num_chains,
        key=key,
    )
    details["coef"] = np.asarray(theta.mean(0)) / np.concatenate([[1.0], scale])
    details["feature_scale"] = scale
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    samples = np.asarray(samples, dtype=float)
    lower, upper = central_interval(mean, std, samples, level, method == "fast")
    return Prediction(
        mean=mean,
        std=std,
        lower=np.asarray(lower),
        upper=np.asarray(upper),
        samples=samples,
        latent_samples=np.asarray(latent, dtype=float),
        level=float(level),
        method=method,
        gaussian=method == "fast",
        valid=np.ones(len(mean), bool),
        reasons={},
        coef=details["coef"],
        details=details,
        diagnostics={},
    )


def regression_draws(
    F_ref: np.ndarray,
    y_ref: np.ndarray,
    F: np.ndarray,
    *,
    intercept: Intercept = "flat",
    method: Method = "fast",
    hyperprior: Hyperprior | None = None,
    num_samples: int = 2000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    key: Any = 0,
    weights: np.ndarray | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
    """Joint posterior predictive draws of one Bayesian ridge regression (the model of docs/method.md §2.4).

    ``y = theta_0 + F theta + eps`` is fitted on the references ``(F_ref, y_ref)`` and read
    at the rows of ``F``; theta is integrated out analytically and the precisions are set by
    the evidence or sampled with NUTS (``method``). Every draw shares one coefficient
    vector across the rows, so the draws are joint.

    Args:
      F_ref: ``(R, k)`` reference features, finite, in units the ridge prior suits (scaled).
      y_ref: ``(R,)`` reference targets, finite, any units.
      F: ``(C, k)`` features of the rows to predict.
      weights: ``(R,)`` 1 for a reference row, 0 for padding (default: every row counts);
        callers that refit as rows arrive pad ``R`` to a few sizes so that the jitted
        algebra compiles once per size.

    The ridge prior keeps the posterior proper with more coefficients than references;
    callers that want a degree of freedom left for the noise check ``R`` themselves.

    Returns:
      ``samples`` and ``latent`` ``(S, C)`` (with and without the noise), the predictive
      ``mean`` and ``std`` ``(C,)``, ``theta`` ``(S, 1 + k)`` (intercept first) and the
      fit's details (precision draws; the MCMC object for NUTS).
    """
    flat = intercept == "flat"
    if not flat:
        F_ref, F = with_ones(F_ref), with_ones(F)
    if weights is None:
        data = prepare_one(F_ref, y_ref, flat)
    else:
        Xj = jnp.asarray(F_ref)
        data = prepare_batch(Xj[None], jnp.asarray(y_ref, Xj.dtype)[None], jnp.asarray(weights)[None] > 0, flat)
    k_mcmc, k_pred = split_key(key)
    alpha, prior_mean, prior_prec, details = hyper_draws(
        data,
        method=method,
        hp=Hyperprior() if hyperprior is None else hyperprior,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=k_mcmc,
    )
    draws = reference_draws(
        k_pred, data, alpha, prior_mean, prior_prec, jnp.asarray(F, data.X.dtype), num_samples, flat
    )
    return (*draws, details)


def log_evidence(
    F_ref: np.ndarray, y_ref: np.ndarray, weights: np.ndarray, *, intercept: Intercept = "ridge"
) -> np.ndarray:
    """``(G,)`` log evidence ``log p(y | alpha*, lambda*)`` of ``G`` regressions at their
    evidence-maximising precisions (the fast path of :func:`regression_draws`).

    ``F_ref`` is ``(G, R, k)``, ``y_ref`` and ``weights`` (1 for a row, 0 for padding) are
    ``(G, R)``: one vmapped fit per alternative, e.g. the same pairs under different
    transformations, so that the evidence can choose between them (docs/method.md §6).
    """
    check_intercept(intercept)
    flat = intercept == "flat"
    F = np.asarray(F_ref, dtype=float)
    Xj = jnp.asarray(F if flat else with_ones(F))
    data = prepare_batch(Xj, jnp.asarray(y_ref, Xj.dtype), jnp.asarray(weights) > 0, flat)
    alpha, lam = evidence_all(data, Hyperprior())
    return np.asarray(gauss_batch(data, alpha, lam)[3], dtype=float)


@partial(jax.jit, static_argnames=("num_samples", "flat"))
def reference_draws(key, data, alpha, prior_mean, prior_prec, Xc, num_samples: int, flat: bool):
    """Joint draws for candidates Xc (C, k) from one regression (data batched with C = 1).

    Every draw shares one coefficient vector across the candidates, so the draws carry the
    correlation that the shared fit induces.
    """
    d = jax.tree.map(lambda v: v[0], data)
    alpha, prior_mean, prior_prec = alpha[:, 0], prior_mean[:, 0], prior_prec[:, 0]
    m, cov, _, _ = jax.vmap(lambda a, pm, pp: gauss(d, a, pm, pp))(alpha, prior_mean, prior_prec)
    mean_h, var_h = jax.vmap(lambda m_, c_, a_: jax.vmap(lambda x: latent_moments(d, m_, c_, a_, x))(Xc))(
        m, cov, alpha
    )

    H = alpha.shape[0]
    S = num_samples if H == 1 else H
    idx = jnp.arange(S) % H
    kw, kxi, keps = jax.random.split(key, 3)
    z = jax.random.normal(kw, (S, m.shape[1]), m.dtype)
    w = m[idx] + jnp.einsum("sij,sj->si", jnp.linalg.cholesky(cov)[idx], z)
    # a flat intercept given w: ybar - xbar . w + N(0, 1/(n alpha))
    xi = jax.random.normal(kxi, (S,), m.dtype) * jnp.sqrt(d.flat / (d.n * alpha[idx]))
    latent = d.ybar + w @ (Xc - d.xbar).T + xi[:, None]  # (S, C)
    noise = jax.random.normal(keps, latent.shape, m.dtype) / jnp.sqrt(alpha[idx])[:, None]
    mean, std = total_moments(mean_h, var_h, alpha[:, None])
    theta = jnp.concatenate([(d.ybar - m @ d.xbar)[:, None], m], 1) if flat else m
    return latent + noise, latent, mean, std, theta


# ---------------------------------------------------------------------------------------
# One regression, scikit-learn style (the reference the tests compare against).
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BayesRidgeFit:
    """A fitted Bayesian ridge regression ``y = intercept + X @ coef + eps``.

    Attributes:
      coef: (F,) posterior mean of the feature coefficients.
      intercept: posterior mean of theta_0.
      cov: (F + 1, F + 1) posterior covariance of [theta_0, coef].
      alpha, lambda_: the noise and weight precisions used.
      log_evidence: log p(y | alpha, lambda), theta integrated out (a flat intercept counted
        with density 1).
    """

    coef: np.ndarray
    intercept: float
    cov: np.ndarray
    alpha: float
    lambda_: float
    log_evidence: float

    def predict(self, X: Any, return_std: bool = False):
        """Predictive mean (and std, noise and all coefficient uncertainty included)."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
            raise CapjaxInputError(
                f"X has shape {X.shape}; pass (n, {self.coef.shape[0]}) as at fit time"
            )
        mean = self.intercept + X @ self.coef
        if not return_std:
            return mean
        Z = with_ones(X)
        var = np.einsum("ni,ij,nj->n", Z, self.cov, Z) + 1.0 / self.alpha
        return mean, np.sqrt(var)


def fit_bayes_ridge(
    X: Any,
    y: Any,
    *,
    intercept: Intercept = "flat",
    hyperprior: Hyperprior | None = None,
    alpha: float | None = None,
    lambda_: float | None = None,
) -> BayesRidgeFit:
    """Fit one Bayesian ridge regression (the model of scikit-learn's ``BayesianRidge``).

    With ``intercept="ridge"`` this is ``BayesianRidge(fit_intercept=False)`` on
    ``[1, X]``. With ``"flat"`` it is ``BayesianRidge()`` except that the noise loses one
    degree of freedom to the intercept (see the module docstring). ``alpha`` and
    ``lambda_``, when both given, are used as they are instead of maximising the evidence.
    """
    hp = Hyperprior() if hyperprior is None else hyperprior
    check_intercept(intercept)
    if (alpha is None) != (lambda_ is None):
        raise CapjaxInputError("pass both alpha and lambda_ to fix them, or neither")
    Xn = np.asarray(X, dtype=float)
    yn = np.asarray(y, dtype=float)
    if Xn.ndim != 2 or yn.shape != (Xn.shape[0],):
        raise CapjaxInputError(f"X has shape {Xn.shape} and y {yn.shape}; pass (n, F) and (n,)")
    if not (np.isfinite(Xn).all() and np.isfinite(yn).all()):
        raise CapjaxInputError("X or y holds NaN/inf; drop those rows first")
    flat = intercept == "flat"
    data = prepare_one(Xn if flat else with_ones(Xn), yn, flat)
    if alpha is None:
        a_, l_ = evidence_all(data, hp)
    else:
        a_, l_ = jnp.full(1, alpha, data.X.dtype), jnp.full(1, lambda_, data.X.dtype)
    m, cov, _, log_ev = gauss_batch(data, a_, l_)
    d = jax.tree.map(lambda v: v[0], data)
    m, cov, log_ev, a_, l_ = m[0], cov[0], log_ev[0], a_[0], l_[0]
    m, cov = np.asarray(m, float), np.asarray(cov, float)
    if flat:
        xbar, ybar = np.asarray(d.xbar, float), float(d.ybar)
        b0 = ybar - xbar @ m
        # theta_0 = ybar - xbar . w + xi,  xi ~ N(0, 1/(n alpha)) independent of w
        J = np.concatenate([-xbar[None], np.eye(len(m))], axis=0)  # [theta_0, w] = J w + [xi, 0]
        full = J @ cov @ J.T
        full[0, 0] += 1.0 / (len(yn) * float(a_))
        return BayesRidgeFit(m, float(b0), full, float(a_), float(l_), float(log_ev))
    return BayesRidgeFit(m[1:], float(m[0]), cov, float(a_), float(l_), float(log_ev))
