"""The Bayesian ridge model of docs/method.md §2.4: Gaussian algebra and its precisions.

One Gaussian linear regression per candidate (scikit-learn's ``BayesianRidge`` model)::

    y_t = theta_0 + x_t . theta + eps,   theta ~ N(0, 1/lambda),  eps ~ N(0, 1/alpha),
    alpha ~ Gamma(alpha_1, alpha_2),  lambda ~ Gamma(lambda_1, lambda_2)      (shape, rate)

computed mask-aware and vmapped over candidates. The coefficients are always integrated
out analytically; the precisions are either fixed at their evidence maximum (``"fast"``,
MacKay's fixed point, as scikit-learn does) or sampled with NumPyro's NUTS (``"nuts"``).
Both paths return hyperparameter draws shaped ``(H, C, ...)``, with ``H = 1`` for the
point estimate, so everything downstream is one code path.

Choices the papers leave open (docs/method.md §2.4, §8), all parameters of the callers:

* ``intercept``: ``"flat"`` (default) leaves theta_0 unpenalised, as ``BayesianRidge()``
  does; its improper prior is integrated out exactly, which costs the noise one degree of
  freedom (the evidence update of alpha uses ``n - 1 - gamma`` where scikit-learn's
  centring uses ``n - gamma``) and adds the intercept's own ``1/(n alpha)`` to the
  predictive variance. ``"ridge"`` puts N(0, 1/lambda) on theta_0 too, which is
  ``BayesianRidge(fit_intercept=False)`` on ``[1, x]``. Given alpha and lambda, the
  posteriors equal scikit-learn's.
* ``hierarchical`` (NUTS only): the penalised coefficients of every candidate share a
  population prior ``theta_cj ~ N(mu_j, tau_j^2)``, ``mu_j ~ N(0, prior_scale^2)``,
  ``tau_j ~ HalfNormal(prior_scale)``, in place of the per-candidate N(0, 1/lambda_c).

NumPyro is imported when NUTS runs, so that ``import capjax`` stays light.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

from capjax.base.validation import CapjaxInputError

Basis = Literal["linear", "quadratic"]
Intercept = Literal["flat", "ridge"]
Method = Literal["fast", "nuts"]

DEGREE = {"linear": 1, "quadratic": 2}
_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclasses.dataclass(frozen=True)
class Hyperprior:
    """Gamma(shape, rate) hyperpriors: alpha (noise precision), lambda (weight precision).

    The defaults are scikit-learn's ``BayesianRidge`` defaults, nearly flat on log alpha and
    log lambda. Under ``method="nuts"`` they are taken literally: with few early points and
    a weak trend, part of the posterior mass sits at large lambda (slope near 0), which
    pulls the prediction towards the mean early accuracy and widens the interval. Pass
    tighter values to change that.
    """

    alpha_1: float = 1e-6
    alpha_2: float = 1e-6
    lambda_1: float = 1e-6
    lambda_2: float = 1e-6

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not (np.isfinite(v) and v > 0):
                raise CapjaxInputError(
                    f"Hyperprior.{f.name}={v!r}: Gamma shape and rate must be finite and > 0"
                )


# ---------------------------------------------------------------------------------------
# One Gaussian linear regression, mask-aware; vmapped over candidates and posterior draws.
# ---------------------------------------------------------------------------------------


class RidgeData(NamedTuple):
    """A regression ready for the Gaussian algebra.

    ``X`` holds the penalised columns only. With a flat intercept, X and y are centred
    (an exact reparametrisation: the flat theta_0 absorbs the shift) and ``flat`` is 1.
    Unobserved rows are zero in X and y, so they drop out of every sum.
    """

    X: jax.Array  # (T, k)
    y: jax.Array  # (T,)
    n: jax.Array  # observations
    n_eff: jax.Array  # n - flat: the noise's degrees of freedom before the fit
    xbar: jax.Array  # (k,)
    ybar: jax.Array
    flat: jax.Array  # 1.0 for a flat intercept, else 0.0
    yvar: jax.Array  # variance of the observed y (initialises alpha)


def prepare(X: jax.Array, y: jax.Array, w: jax.Array, flat: bool) -> RidgeData:
    w = w.astype(X.dtype)
    X = jnp.where(w[:, None] > 0, X, 0.0)
    y = jnp.where(w > 0, y, 0.0)
    n = w.sum()
    ymean = (w * y).sum() / n
    yvar = (w * (y - ymean) ** 2).sum() / n
    if flat:
        xbar = (w[:, None] * X).sum(0) / n
        ybar = ymean
        X = (X - xbar) * w[:, None]
        y = (y - ybar) * w
    else:
        xbar = jnp.zeros(X.shape[1], X.dtype)
        ybar = jnp.zeros((), X.dtype)
    f = jnp.asarray(float(flat), X.dtype)
    return RidgeData(X, y, n, n - f, xbar, ybar, f, yvar)


@partial(jax.jit, static_argnames="flat")
def prepare_batch(X: jax.Array, y: jax.Array, w: jax.Array, flat: bool) -> RidgeData:
    """:func:`prepare` over a leading candidate axis."""
    return jax.vmap(lambda X_, y_, w_: prepare(X_, y_, w_, flat))(X, y, w)


def prepare_one(X: np.ndarray, y: np.ndarray, flat: bool) -> RidgeData:
    """One fully observed regression, X (n, k) and y (n,), as a batch of one candidate."""
    Xj = jnp.asarray(X)
    return prepare_batch(Xj[None], jnp.asarray(y, Xj.dtype)[None], jnp.ones((1, len(y)), bool), flat)


def gauss(d: RidgeData, alpha, prior_mean, prior_prec):
    """Posterior N(m, cov) of the penalised coefficients, the SSE at m, and the log evidence.

    Prior: coefficients ~ N(prior_mean, diag(1/prior_prec)); noise precision alpha. The log
    evidence is log p(y | alpha, prior), theta_0 integrated out when it is flat (the
    improper prior counted as density 1).
    """
    k = d.X.shape[1]
    A = alpha * d.X.T @ d.X + jnp.diag(prior_prec)
    L = jnp.linalg.cholesky(A)
    m = cho_solve((L, True), alpha * d.X.T @ d.y + prior_prec * prior_mean)
    cov = cho_solve((L, True), jnp.eye(k, dtype=A.dtype))
    sse = jnp.sum((d.y - d.X @ m) ** 2)
    dm = m - prior_mean
    log_ev = (
        0.5 * jnp.sum(jnp.log(prior_prec))
        + 0.5 * d.n_eff * (jnp.log(alpha) - _LOG_2PI)
        - 0.5 * alpha * sse
        - 0.5 * jnp.sum(prior_prec * dm**2)
        - jnp.sum(jnp.log(jnp.diag(L)))
        - 0.5 * d.flat * jnp.log(d.n)
    )
    return m, cov, sse, log_ev


def ridge_prior(lam: jax.Array, k: int, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """Mean and precision, each ``lam.shape + (k,)``, of the prior N(0, 1/lambda) on k coefficients."""
    prec = lam[..., None] * jnp.ones(k, dtype)
    return jnp.zeros_like(prec), prec


def coef_prior(sites: dict[str, jax.Array], C: int, k: int, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """Prior mean and precision, each ``(..., C, k)``, of every candidate's penalised coefficients.

    ``sites`` are the hyperparameters by their NUTS site names, with any leading draw axes:
    ``mu`` and ``tau`` (..., k) for the hierarchical prior N(mu_j, tau_j^2) shared by all
    candidates, else ``lambda`` (..., C) for the independent N(0, 1/lambda_c).
    """
    if "mu" in sites:
        mu, tau = sites["mu"][..., None, :], sites["tau"][..., None, :]
        mean = jnp.broadcast_to(mu, mu.shape[:-2] + (C, k))
        return mean, jnp.broadcast_to(1.0 / tau**2, mean.shape)
    return ridge_prior(sites["lambda"], k, dtype)


@jax.jit
def gauss_batch(data: RidgeData, alpha: jax.Array, lam: jax.Array):
    """:func:`gauss` over candidates with the independent prior N(0, 1/lambda_c)."""
    k = data.X.shape[-1]
    return jax.vmap(lambda d, a, l: gauss(d, a, *ridge_prior(l, k, data.X.dtype)))(data, alpha, lam)


def evidence_max(d: RidgeData, hp: jax.Array, max_iter: int, tol: float):
    """MacKay's fixed point for (alpha, lambda), scikit-learn's algorithm and start."""
    a1, a2, l1, l2 = hp
    k = d.X.shape[1]

    def update(alpha, lam):
        m, cov, sse, _ = gauss(d, alpha, *ridge_prior(lam, k, d.X.dtype))
        gamma = jnp.clip(k - lam * jnp.trace(cov), 0.0, k)
        lam_new = (gamma + 2 * l1) / (m @ m + 2 * l2)
        alpha_new = (d.n_eff - gamma + 2 * a1) / (sse + 2 * a2)
        return alpha_new, lam_new

    def cond(state):
        i, _, _, delta = state
        return (i < max_iter) & (delta > tol)

    def body(state):
        i, alpha, lam, _ = state
        alpha_new, lam_new = update(alpha, lam)
        delta = jnp.maximum(jnp.abs(jnp.log(alpha_new / alpha)), jnp.abs(jnp.log(lam_new / lam)))
        return i + 1, alpha_new, lam_new, delta

    eps = jnp.finfo(d.X.dtype).eps
    alpha0 = 1.0 / (d.yvar + eps)
    lam0 = jnp.ones((), d.X.dtype)
    inf = jnp.asarray(jnp.inf, d.X.dtype)
    _, alpha, lam, _ = jax.lax.while_loop(cond, body, (0, alpha0, lam0, inf))
    return alpha, lam


def latent_moments(d: RidgeData, m, cov, alpha, x):
    """Mean and variance of h(x) = theta_0 + x . theta (noise excluded)."""
    diff = x - d.xbar
    mean = d.ybar + diff @ m
    var = diff @ cov @ diff + d.flat / (d.n * alpha)
    return mean, var


@partial(jax.jit, static_argnames="flat")
def moments(data: RidgeData, alpha, prior_mean, prior_prec, xs, flat: bool):
    """Latent mean and variance of h(x*), and [theta_0, ...], per hyperdraw and candidate.

    data is batched over candidates (C); alpha (H, C); prior_* (H, C, k); xs (C, k).
    """

    def one(d, a, pm, pp, x):
        m, cov, _, _ = gauss(d, a, pm, pp)
        mean_h, var_h = latent_moments(d, m, cov, a, x)
        theta = jnp.concatenate([(d.ybar - d.xbar @ m)[None], m]) if flat else m
        return mean_h, var_h, theta

    over_c = jax.vmap(one)
    return jax.vmap(lambda a, pm, pp: over_c(data, a, pm, pp, xs))(alpha, prior_mean, prior_prec)


# ---------------------------------------------------------------------------------------
# Hyperparameters: evidence maximisation or NUTS. Both return draws shaped (H, C, ...),
# H = 1 for the evidence point estimate.
# ---------------------------------------------------------------------------------------


@jax.jit
def evidence_batch(data: RidgeData, hp: jax.Array):
    # in float32, 1e-6 in log precision is within the updates' rounding noise: one candidate
    # that never gets below it keeps the whole vmapped loop running to max_iter
    tol = max(1e-6, 64 * float(jnp.finfo(data.X.dtype).eps))
    return jax.vmap(lambda d: evidence_max(d, hp, 500, tol))(data)


def evidence_all(data: RidgeData, hp: Hyperprior) -> tuple[jax.Array, jax.Array]:
    """Type-II ML alpha (C,) and lambda (C,) of every candidate under the hyperprior ``hp``."""
    return evidence_batch(data, jnp.asarray([hp.alpha_1, hp.alpha_2, hp.lambda_1, hp.lambda_2], data.X.dtype))


def nuts_model(data: RidgeData, hp: Hyperprior, hierarchical: bool, prior_scale: float):
    """NumPyro model of the precisions; the coefficients are integrated out (``evidence`` factor)."""
    import numpyro
    import numpyro.distributions as dist

    C, _, k = data.X.shape
    sites = {}
    with numpyro.plate("candidates", C):
        alpha = numpyro.sample("alpha", dist.Gamma(hp.alpha_1, hp.alpha_2))
        if not hierarchical:
            sites["lambda"] = numpyro.sample("lambda", dist.Gamma(hp.lambda_1, hp.lambda_2))
    if hierarchical:
        with numpyro.plate("coefficients", k):
            sites["mu"] = numpyro.sample("mu", dist.Normal(0.0, prior_scale))
            sites["tau"] = numpyro.sample("tau", dist.HalfNormal(prior_scale))
    prior_mean, prior_prec = coef_prior(sites, C, k, data.X.dtype)
    log_ev = jax.vmap(lambda d, a, pm, pp: gauss(d, a, pm, pp)[3])(
        data, alpha, prior_mean, prior_prec
    )
    numpyro.factor("evidence", log_ev.sum())


def hyper_draws(
    data: RidgeData,
    *,
    method: Method,
    hp: Hyperprior,
    hierarchical: bool = False,
    prior_scale: float = 1.0,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, dict[str, Any]]:
    """alpha (H, C), prior mean (H, C, k), prior precision (H, C, k), and details."""
    from numpyro.infer import MCMC, NUTS, init_to_value

    C, _, k = data.X.shape
    alpha_ml, lam_ml = evidence_all(data, hp)
    if method == "fast":
        details = {"alpha": np.asarray(alpha_ml), "lambda": np.asarray(lam_ml)}
        prior_mean, prior_prec = coef_prior({"lambda": lam_ml[None]}, C, k, data.X.dtype)
        return alpha_ml[None], prior_mean, prior_prec, details

    init = {"alpha": alpha_ml}
    if hierarchical:
        m_ml = gauss_batch(data, alpha_ml, lam_ml)[0]
        init["mu"] = m_ml.mean(0)
        init["tau"] = m_ml.std(0) + 0.1 * prior_scale
    else:
        init["lambda"] = lam_ml
    mcmc = MCMC(
        NUTS(nuts_model, init_strategy=init_to_value(values=init), target_accept_prob=0.9),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(key, data, hp, hierarchical, prior_scale)
    draws = mcmc.get_samples()
    prior_mean, prior_prec = coef_prior(draws, C, k, data.X.dtype)
    details = {name: np.asarray(v) for name, v in draws.items()}
    details["mcmc"] = mcmc
    return draws["alpha"], prior_mean, prior_prec, details


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


def total_moments(mean_h, var_h, alpha):
    """Predictive mean and std of each candidate from per-hyperdraw latent moments (H, C).

    ``alpha`` (noise precision) broadcasts against them; the variance follows the law of
    total variance over the hyperparameter draws.
    """
    return mean_h.mean(0), jnp.sqrt((var_h + 1.0 / alpha).mean(0) + mean_h.var(0))


@partial(jax.jit, static_argnames="num_samples")
def predictive_draws(key, alpha, mean_h, var_h, num_samples: int):
    """Predictive draws, latent draws, mean and std from per-hyperdraw moments (H, C).

    H = 1 (a point estimate of the precisions) gives num_samples draws; otherwise one draw
    per hyperdraw.
    """
    k1, k2 = jax.random.split(key)
    H, C = mean_h.shape
    S = num_samples if H == 1 else H
    latent = mean_h + jnp.sqrt(var_h) * jax.random.normal(k1, (S, C), mean_h.dtype)
    samples = latent + jax.random.normal(k2, (S, C), mean_h.dtype) / jnp.sqrt(alpha)
    return samples, latent, *total_moments(mean_h, var_h, alpha)


@jax.jit
def noise_dof(data: RidgeData, alpha: jax.Array, lam: jax.Array) -> jax.Array:
    """Degrees of freedom ``n_eff - gamma`` left to the noise, per candidate ``(C,)``.

    ``gamma = k - lambda tr(cov)`` is the number of well-determined coefficients (MacKay),
    the same count the evidence update of alpha uses; with the precisions at that fixed
    point, ``1/alpha = SSE / (n_eff - gamma)``.
    """
    k = data.X.shape[-1]

    def one(d, a, l):
        _, cov, _, _ = gauss(d, a, *ridge_prior(l, k, d.X.dtype))
        return d.n_eff - jnp.clip(k - l * jnp.trace(cov), 0.0, k)

    return jax.vmap(one)(data, alpha, lam)


@partial(jax.jit, static_argnames="num_samples")
def student_draws(key, alpha, mean_h, var_h, dof, num_samples: int):
    """Draws of the Student-t predictive: :func:`predictive_draws` with the noise precision
    integrated out (docs/method.md §2.4).

    With ``alpha ~ Gamma(dof / 2, dof / (2 alpha_hat))`` around the point estimate, every
    draw shares one scale ``s = sqrt(alpha_hat / alpha)`` between the latent and the noise
    term, so each candidate's predictive is ``t_dof(mean, std)`` exactly (the H = 1 moments
    of the fast path: ``alpha`` (1, C), ``mean_h`` and ``var_h`` (1, C), ``dof`` (C,)).
    """
    k1, k2, k3 = jax.random.split(key, 3)
    C = mean_h.shape[1]
    g = jax.random.gamma(k3, dof / 2, (num_samples, C), mean_h.dtype) / (dof / 2)
    s = 1.0 / jnp.sqrt(g)
    latent = mean_h + jnp.sqrt(var_h) * s * jax.random.normal(k1, (num_samples, C), mean_h.dtype)
    samples = latent + s * jax.random.normal(k2, (num_samples, C), mean_h.dtype) / jnp.sqrt(alpha)
    return samples, latent, *total_moments(mean_h, var_h, alpha)


def check_level(level: float) -> None:
    if not 0 < level < 1:
        raise CapjaxInputError(f"level={level!r}: the interval's coverage must be in (0, 1)")


def check_intercept(intercept: str) -> None:
    if intercept not in ("flat", "ridge"):
        raise CapjaxInputError(f"intercept={intercept!r}: use 'flat' or 'ridge'")


def check_options(
    basis, intercept, method, hierarchical, num_samples, num_warmup, num_chains, level
):
    if basis not in DEGREE:
        raise CapjaxInputError(f"basis={basis!r}: use one of {sorted(DEGREE)}")
    check_intercept(intercept)
    if method not in ("fast", "nuts"):
        raise CapjaxInputError(f"method={method!r}: use 'fast' or 'nuts'")
    if hierarchical and method != "nuts":
        raise CapjaxInputError(
            "hierarchical=True needs method='nuts' (the shared prior is sampled, not maximised)"
        )
    for name, v in (("num_samples", num_samples), ("num_warmup", num_warmup)):
        if int(v) != v or v < 1:
            raise CapjaxInputError(f"{name}={v!r}: must be a positive integer")
    if int(num_chains) != num_chains or num_chains < 1:
        raise CapjaxInputError(f"num_chains={num_chains!r}: must be a positive integer")
    check_level(level)


def split_key(key: Any) -> tuple[jax.Array, jax.Array]:
    """Keys for the hyperparameter draws and for the predictive draws, from a key or a seed."""
    if isinstance(key, (int, np.integer)):
        key = jax.random.PRNGKey(int(key))
    k_hyper, k_pred = jax.random.split(key)
    return k_hyper, k_pred


def with_ones(X: np.ndarray) -> np.ndarray:
    """``[1, X]``: X (..., n, k) with a leading column of ones, for an intercept."""
    return np.concatenate([np.ones(X.shape[:-1] + (1,)), X], axis=-1)


def powers(b: np.ndarray, degree: int, flat: bool) -> np.ndarray:
    cols = [b**j for j in range(0 if not flat else 1, degree + 1)]
    return np.stack(cols, axis=-1)


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------
