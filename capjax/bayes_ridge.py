"""Final accuracy from early beta_eff, with its uncertainty (SPEC section 2.4).

Per candidate, the early observations are pairs ``(beta_t, acc_t)``. They are fitted with
the Bayesian ridge regression of scikit-learn's ``BayesianRidge``::

    acc_t = theta_0 + sum_j theta_j * (beta_t / s)**j + eps,      j = 1..degree
    theta ~ N(0, 1/lambda),  eps ~ N(0, 1/alpha),
    alpha ~ Gamma(alpha_1, alpha_2),  lambda ~ Gamma(lambda_1, lambda_2)      (shape, rate)

and the posterior predictive of accuracy is read at ``beta*`` (0 by default: at
convergence the errors vanish and so does beta_eff).

Choices the paper leaves open, all parameters here:

* ``basis``: ``"linear"`` (degree 1) or ``"quadratic"`` (degree 2) in beta.
* ``intercept``: ``"flat"`` (default) leaves theta_0 unpenalised, as ``BayesianRidge()``
  does with its default ``fit_intercept=True``; ``"ridge"`` puts the N(0, 1/lambda) prior on
  theta_0 too, which is ``BayesianRidge(fit_intercept=False)`` on the columns ``[1, beta, ..]``.
  With ``"flat"`` the improper prior on theta_0 is integrated out exactly; this costs the
  noise one degree of freedom, so the evidence update of alpha uses ``n - 1 - gamma`` where
  scikit-learn's centring uses ``n - gamma``, and the predictive variance includes the
  intercept's own ``1/(n alpha)``, which scikit-learn's ``predict(return_std=True)`` leaves
  out. Given the same alpha and lambda the posteriors are identical.
* ``method``: ``"evidence"`` fixes alpha and lambda at their type-II maximum-likelihood
  (MAP) values with MacKay's fixed point, as scikit-learn does; ``"nuts"`` samples them with
  NumPyro's NUTS. In both, theta is integrated out analytically (it is Gaussian given the
  precisions), so NUTS only explores the precisions.
* ``hierarchical`` (NUTS only): the penalised coefficients of every candidate share a
  population prior ``theta_cj ~ N(mu_j, tau_j^2)``, ``mu_j ~ N(0, prior_scale^2)``,
  ``tau_j ~ HalfNormal(prior_scale)``, in place of the per-candidate N(0, 1/lambda_c).
* ``n_early``: how many early observation pairs are used.
* ``rescale``: beta is divided by one scale ``s`` shared by all candidates (the root mean
  square of the beta values used), so that the ridge prior and the hierarchical prior see
  coefficients of order one whatever the units of beta; zero stays zero, so beta* keeps its
  meaning. Reported coefficients are in the units of the beta passed in.
* :func:`predict_from_references`: the cross-candidate alternative, one regression of final
  accuracy on the early state of a few fully trained reference models.

Across candidates, :func:`prob_best` and :func:`expected_regret` read the joint posterior
draws (``samples[s]`` is one joint draw of every candidate's final accuracy).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import cho_solve
from numpyro.infer import MCMC, NUTS, init_to_value
from scipy.stats import norm

from capjax.validation import CapjaxInputError, check_accuracy, is_concrete

Basis = Literal["linear", "quadratic"]
Intercept = Literal["flat", "ridge"]
Method = Literal["evidence", "nuts"]

_DEGREE = {"linear": 1, "quadratic": 2}
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


class _Data(NamedTuple):
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


def _prepare(X: jax.Array, y: jax.Array, w: jax.Array, flat: bool) -> _Data:
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
    return _Data(X, y, n, n - f, xbar, ybar, f, yvar)


@partial(jax.jit, static_argnames="flat")
def _prepare_batch(X: jax.Array, y: jax.Array, w: jax.Array, flat: bool) -> _Data:
    """:func:`_prepare` over a leading candidate axis."""
    return jax.vmap(lambda X_, y_, w_: _prepare(X_, y_, w_, flat))(X, y, w)


def _prepare_one(X: np.ndarray, y: np.ndarray, flat: bool) -> _Data:
    """One fully observed regression, X (n, k) and y (n,), as a batch of one candidate."""
    Xj = jnp.asarray(X)
    return _prepare_batch(Xj[None], jnp.asarray(y, Xj.dtype)[None], jnp.ones((1, len(y)), bool), flat)


def _gauss(d: _Data, alpha, prior_mean, prior_prec):
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


def _ridge_prior(lam: jax.Array, k: int, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """Mean and precision, each ``lam.shape + (k,)``, of the prior N(0, 1/lambda) on k coefficients."""
    prec = lam[..., None] * jnp.ones(k, dtype)
    return jnp.zeros_like(prec), prec


def _coef_prior(sites: dict[str, jax.Array], C: int, k: int, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """Prior mean and precision, each ``(..., C, k)``, of every candidate's penalised coefficients.

    ``sites`` are the hyperparameters by their NUTS site names, with any leading draw axes:
    ``mu`` and ``tau`` (..., k) for the hierarchical prior N(mu_j, tau_j^2) shared by all
    candidates, else ``lambda`` (..., C) for the independent N(0, 1/lambda_c).
    """
    if "mu" in sites:
        mu, tau = sites["mu"][..., None, :], sites["tau"][..., None, :]
        mean = jnp.broadcast_to(mu, mu.shape[:-2] + (C, k))
        return mean, jnp.broadcast_to(1.0 / tau**2, mean.shape)
    return _ridge_prior(sites["lambda"], k, dtype)


@jax.jit
def _gauss_batch(data: _Data, alpha: jax.Array, lam: jax.Array):
    """:func:`_gauss` over candidates with the independent prior N(0, 1/lambda_c)."""
    k = data.X.shape[-1]
    return jax.vmap(lambda d, a, l: _gauss(d, a, *_ridge_prior(l, k, data.X.dtype)))(data, alpha, lam)


def _evidence_max(d: _Data, hp: jax.Array, max_iter: int, tol: float):
    """MacKay's fixed point for (alpha, lambda), scikit-learn's algorithm and start."""
    a1, a2, l1, l2 = hp
    k = d.X.shape[1]

    def update(alpha, lam):
        m, cov, sse, _ = _gauss(d, alpha, *_ridge_prior(lam, k, d.X.dtype))
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


def _latent(d: _Data, m, cov, alpha, x):
    """Mean and variance of h(x) = theta_0 + x . theta (noise excluded)."""
    diff = x - d.xbar
    mean = d.ybar + diff @ m
    var = diff @ cov @ diff + d.flat / (d.n * alpha)
    return mean, var


@partial(jax.jit, static_argnames="flat")
def _moments(data: _Data, alpha, prior_mean, prior_prec, xs, flat: bool):
    """Latent mean and variance of h(x*), and [theta_0, ...], per hyperdraw and candidate.

    data is batched over candidates (C); alpha (H, C); prior_* (H, C, k); xs (C, k).
    """

    def one(d, a, pm, pp, x):
        m, cov, _, _ = _gauss(d, a, pm, pp)
        mean_h, var_h = _latent(d, m, cov, a, x)
        theta = jnp.concatenate([(d.ybar - d.xbar @ m)[None], m]) if flat else m
        return mean_h, var_h, theta

    over_c = jax.vmap(one)
    return jax.vmap(lambda a, pm, pp: over_c(data, a, pm, pp, xs))(alpha, prior_mean, prior_prec)


# ---------------------------------------------------------------------------------------
# Hyperparameters: evidence maximisation or NUTS. Both return draws shaped (H, C, ...),
# H = 1 for the evidence point estimate.
# ---------------------------------------------------------------------------------------


@jax.jit
def _evidence_batch(data: _Data, hp: jax.Array):
    # in float32, 1e-6 in log precision is within the updates' rounding noise: one candidate
    # that never gets below it keeps the whole vmapped loop running to max_iter
    tol = max(1e-6, 64 * float(jnp.finfo(data.X.dtype).eps))
    return jax.vmap(lambda d: _evidence_max(d, hp, 500, tol))(data)


def _evidence_all(data: _Data, hp: Hyperprior) -> tuple[jax.Array, jax.Array]:
    """Type-II ML alpha (C,) and lambda (C,) of every candidate under the hyperprior ``hp``."""
    return _evidence_batch(data, jnp.asarray([hp.alpha_1, hp.alpha_2, hp.lambda_1, hp.lambda_2], data.X.dtype))


def _nuts_model(data: _Data, hp: Hyperprior, hierarchical: bool, prior_scale: float):
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
    prior_mean, prior_prec = _coef_prior(sites, C, k, data.X.dtype)
    log_ev = jax.vmap(lambda d, a, pm, pp: _gauss(d, a, pm, pp)[3])(
        data, alpha, prior_mean, prior_prec
    )
    numpyro.factor("evidence", log_ev.sum())


def _hyper_draws(
    data: _Data,
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
    C, _, k = data.X.shape
    alpha_ml, lam_ml = _evidence_all(data, hp)
    if method == "evidence":
        details = {"alpha": np.asarray(alpha_ml), "lambda": np.asarray(lam_ml)}
        prior_mean, prior_prec = _coef_prior({"lambda": lam_ml[None]}, C, k, data.X.dtype)
        return alpha_ml[None], prior_mean, prior_prec, details

    init = {"alpha": alpha_ml}
    if hierarchical:
        m_ml = _gauss_batch(data, alpha_ml, lam_ml)[0]
        init["mu"] = m_ml.mean(0)
        init["tau"] = m_ml.std(0) + 0.1 * prior_scale
    else:
        init["lambda"] = lam_ml
    mcmc = MCMC(
        NUTS(_nuts_model, init_strategy=init_to_value(values=init), target_accept_prob=0.9),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(key, data, hp, hierarchical, prior_scale)
    draws = mcmc.get_samples()
    prior_mean, prior_prec = _coef_prior(draws, C, k, data.X.dtype)
    details = {name: np.asarray(v) for name, v in draws.items()}
    details["mcmc"] = mcmc
    return draws["alpha"], prior_mean, prior_prec, details


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FinalAccuracyPrediction:
    """Posterior predictive of each candidate's final accuracy.

    Attributes:
      mean, std: (C,) predictive mean and standard deviation (observation noise included).
      lower, upper: (C,) the central ``level`` interval.
      level: the interval's nominal coverage.
      samples: (S, C) joint posterior predictive draws; row s is one draw of all candidates.
      latent_samples: (S, C) the same draws without the observation noise: draws of h(beta*).
      gaussian: True when the predictive is exactly Gaussian (``method="evidence"``); the
        intervals are then the Gaussian ones, otherwise sample quantiles.
      method: ``"evidence"`` or ``"nuts"``.
      details: method-specific extras: ``alpha``, ``lambda`` (or ``mu``, ``tau``) as
        estimates (evidence, shape (C,)) or draws (NUTS, shape (S, C) or (S, k)); ``coef``,
        the posterior mean of [theta_0, theta_1, ...] in the units of the beta passed in;
        ``beta_scale``; ``n_used``; under NUTS the ``mcmc`` object, for diagnostics.
    """

    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    samples: np.ndarray
    latent_samples: np.ndarray
    gaussian: bool
    method: str
    details: dict[str, Any]

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central predictive interval at ``level`` for each candidate: (lower, upper)."""
        _check_level(level)
        if self.gaussian:
            z = norm.ppf(0.5 + level / 2)
            return self.mean - z * self.std, self.mean + z * self.std
        q = np.quantile(self.samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return q[0], q[1]

    def prob_best(self) -> np.ndarray:
        """P(candidate c ends up best), from the joint predictive draws. Shape (C,)."""
        return prob_best(self.samples)

    def expected_regret(self) -> np.ndarray:
        """E[best final accuracy - final accuracy of c], for choosing each c. Shape (C,)."""
        return expected_regret(self.samples)


def prob_best(samples: Any) -> np.ndarray:
    """P(candidate is best) from joint posterior draws ``samples`` of shape (S, C).

    Each row must be one joint draw of every candidate's final accuracy. ``-inf`` marks a
    candidate that cannot be best (e.g. one that failed); it gets probability 0.
    """
    s = _check_draws(samples)
    best = np.argmax(s, axis=1)
    return np.bincount(best, minlength=s.shape[1]) / s.shape[0]


def expected_regret(samples: Any) -> np.ndarray:
    """Expected regret of choosing each candidate: E[max_j acc_j - acc_c]. Shape (C,).

    A candidate marked ``-inf`` (see :func:`prob_best`) has infinite regret.
    """
    s = _check_draws(samples)
    return (s.max(axis=1, keepdims=True) - s).mean(axis=0)


def _check_draws(samples: Any) -> np.ndarray:
    s = np.asarray(samples, dtype=float)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise CapjaxInputError(
            f"samples has shape {s.shape}; pass joint draws shaped (n_draws, n_candidates)"
        )
    if np.isnan(s).any() or np.isposinf(s).any():
        raise CapjaxInputError(
            "samples holds NaN or +inf; draws of final accuracy must be finite, or -inf for "
            "a candidate that cannot be best"
        )
    if not np.isfinite(s).any(axis=1).all():
        raise CapjaxInputError("a row of samples is all -inf: no candidate can be best there")
    return s


def _total_moments(mean_h, var_h, alpha):
    """Predictive mean and std of each candidate from per-hyperdraw latent moments (H, C).

    ``alpha`` (noise precision) broadcasts against them; the variance follows the law of
    total variance over the hyperparameter draws.
    """
    return mean_h.mean(0), jnp.sqrt((var_h + 1.0 / alpha).mean(0) + mean_h.var(0))


@partial(jax.jit, static_argnames="num_samples")
def _draws(key, alpha, mean_h, var_h, num_samples: int):
    """Predictive draws, latent draws, mean and std from per-hyperdraw moments (H, C).

    H = 1 (a point estimate of the precisions) gives num_samples draws; otherwise one draw
    per hyperdraw.
    """
    k1, k2 = jax.random.split(key)
    H, C = mean_h.shape
    S = num_samples if H == 1 else H
    latent = mean_h + jnp.sqrt(var_h) * jax.random.normal(k1, (S, C), mean_h.dtype)
    samples = latent + jax.random.normal(k2, (S, C), mean_h.dtype) / jnp.sqrt(alpha)
    return samples, latent, *_total_moments(mean_h, var_h, alpha)


def _result(samples, latent, mean, std, level, method, details):
    out = FinalAccuracyPrediction(
        mean=np.asarray(mean, dtype=float),
        std=np.asarray(std, dtype=float),
        lower=np.empty(0),
        upper=np.empty(0),
        level=float(level),
        samples=np.asarray(samples, dtype=float),
        latent_samples=np.asarray(latent, dtype=float),
        gaussian=method == "evidence",
        method=method,
        details=details,
    )
    lo, hi = out.interval(level)
    return dataclasses.replace(out, lower=np.asarray(lo), upper=np.asarray(hi))


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise CapjaxInputError(f"level={level!r}: the interval's coverage must be in (0, 1)")


def _check_intercept(intercept: str) -> None:
    if intercept not in ("flat", "ridge"):
        raise CapjaxInputError(f"intercept={intercept!r}: use 'flat' or 'ridge'")


def _check_options(
    basis, intercept, method, hierarchical, num_samples, num_warmup, num_chains, level
):
    if basis not in _DEGREE:
        raise CapjaxInputError(f"basis={basis!r}: use one of {sorted(_DEGREE)}")
    _check_intercept(intercept)
    if method not in ("evidence", "nuts"):
        raise CapjaxInputError(f"method={method!r}: use 'evidence' or 'nuts'")
    if hierarchical and method != "nuts":
        raise CapjaxInputError(
            "hierarchical=True needs method='nuts' (the shared prior is sampled, not maximised)"
        )
    for name, v in (("num_samples", num_samples), ("num_warmup", num_warmup)):
        if int(v) != v or v < 1:
            raise CapjaxInputError(f"{name}={v!r}: must be a positive integer")
    if int(num_chains) != num_chains or num_chains < 1:
        raise CapjaxInputError(f"num_chains={num_chains!r}: must be a positive integer")
    _check_level(level)


def _curves(
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


def _check_counts(name: str, n_used: np.ndarray, p: int, basis: str) -> None:
    short = np.flatnonzero(n_used < p + 1)
    if short.size:
        raise CapjaxInputError(
            f"{name} {short.tolist()} have {n_used[short].tolist()} observation pair(s); the "
            f"{basis} basis has {p} coefficients and needs at least {p + 1} pairs (one "
            "left for the noise): use more early epochs, or a smaller basis"
        )


def _split_key(key: Any) -> tuple[jax.Array, jax.Array]:
    """Keys for the hyperparameter draws and for the predictive draws, from a key or a seed."""
    if isinstance(key, (int, np.integer)):
        key = jax.random.PRNGKey(int(key))
    k_hyper, k_pred = jax.random.split(key)
    return k_hyper, k_pred


def _with_ones(X: np.ndarray) -> np.ndarray:
    """``[1, X]``: X (n, k) with a leading column of ones, for an intercept."""
    return np.concatenate([np.ones((len(X), 1)), X], axis=1)


def _powers(b: np.ndarray, degree: int, flat: bool) -> np.ndarray:
    cols = [b**j for j in range(0 if not flat else 1, degree + 1)]
    return np.stack(cols, axis=-1)


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------


def predict_final_accuracy(
    beta: Any,
    acc: Any,
    *,
    n_early: int | None = None,
    beta_star: Any = 0.0,
    basis: Basis = "linear",
    intercept: Intercept = "flat",
    method: Method = "evidence",
    hierarchical: bool = False,
    hyperprior: Hyperprior | None = None,
    prior_scale: float = 1.0,
    rescale: bool = True,
    level: float = 0.9,
    num_samples: int = 2000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    key: Any = 0,
) -> FinalAccuracyPrediction:
    """Predict each candidate's final accuracy from its early (beta_eff, accuracy) pairs.

    Args:
      beta: (C, T) beta_eff of each candidate at each early observation (or (T,) for one);
        NaN-padded where a run has fewer observations.
      acc: (C, T) validation accuracy, as fractions in [0, 1], at the same observations.
      n_early: use only the first ``n_early`` observation pairs (default: all).
      beta_star: where to read the prediction; scalar or (C,). 0 = converged training.
      basis: ``"linear"`` or ``"quadratic"`` in beta.
      intercept: ``"flat"`` (theta_0 unpenalised) or ``"ridge"`` (theta_0 ~ N(0, 1/lambda)).
      method: ``"evidence"`` (type-II ML precisions, scikit-learn's) or ``"nuts"``.
      hierarchical: share a population prior over candidates' coefficients (NUTS only).
      hyperprior: Gamma hyperpriors on alpha and lambda; default scikit-learn's.
      prior_scale: scale of the hierarchical prior's mu and tau, in accuracy per unit of
        rescaled beta.
      rescale: divide beta by its root mean square over all used pairs first.
      level: nominal coverage of the reported interval.
      num_samples: draws returned (per chain under NUTS).
      num_warmup, num_chains: NUTS settings.
      key: a JAX PRNG key or an integer seed.

    Returns:
      A :class:`FinalAccuracyPrediction`; its ``prob_best()`` and ``expected_regret()`` rank
      the candidates from the joint posterior.
    """
    hp = Hyperprior() if hyperprior is None else hyperprior
    _check_options(
        basis, intercept, method, hierarchical, num_samples, num_warmup, num_chains, level
    )
    b, a, used = _curves("beta", beta, "acc", acc, n_early)
    C = b.shape[0]
    degree, flat = _DEGREE[basis], intercept == "flat"
    n_used = used.sum(1)
    _check_counts("candidates", n_used, degree + 1, basis)
    distinct = np.array([len(np.unique(bc[u])) for bc, u in zip(b, used, strict=True)])
    flat_beta = np.flatnonzero(distinct <= degree)
    if flat_beta.size:
        raise CapjaxInputError(
            f"candidates {flat_beta.tolist()} have only {distinct[flat_beta].tolist()} distinct "
            f"beta value(s); the {basis} basis needs {degree + 1} to tell accuracy's trend in "
            "beta, and without it the prediction at beta* is the prior's guess: drop them or "
            "use more early epochs"
        )
    bs = np.asarray(beta_star, dtype=float)
    if bs.shape not in ((), (C,)) or not np.all(np.isfinite(bs)):
        raise CapjaxInputError(
            f"beta_star has shape {bs.shape}; pass a finite scalar or one value per candidate"
        )

    scale = float(np.sqrt(np.mean(b[used] ** 2))) if rescale else 1.0
    X = jnp.asarray(_powers(np.where(used, b, 0.0) / scale, degree, flat))
    xs = jnp.asarray(_powers(np.broadcast_to(bs, (C,)) / scale, degree, flat))
    data = _prepare_batch(X, jnp.asarray(np.where(used, a, 0.0), X.dtype), jnp.asarray(used), flat)

    k_mcmc, k_pred = _split_key(key)
    alpha, prior_mean, prior_prec, details = _hyper_draws(
        data,
        method=method,
        hp=hp,
        hierarchical=hierarchical,
        prior_scale=prior_scale,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=k_mcmc,
    )

    mean_h, var_h, theta = _moments(data, alpha, prior_mean, prior_prec, xs, flat)
    details["coef"] = np.asarray(theta.mean(0)) / scale ** np.arange(degree + 1)
    details["beta_scale"] = scale
    details["n_used"] = n_used
    draws = _draws(k_pred, alpha, mean_h, var_h, num_samples)
    return _result(*draws, level, method, details)


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
    method: Method = "evidence",
    hyperprior: Hyperprior | None = None,
    level: float = 0.9,
    num_samples: int = 2000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    key: Any = 0,
) -> FinalAccuracyPrediction:
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
      Other arguments as in :func:`predict_final_accuracy`.
    """
    hp = Hyperprior() if hyperprior is None else hyperprior
    _check_options(basis, intercept, method, False, num_samples, num_warmup, num_chains, level)
    # only the last early observation is read, so padding elsewhere need not agree
    b, a, _ = _curves("beta", beta, "acc", acc, n_early, paired=False)
    t = b.shape[1]
    rb, ra, _ = _curves("ref_beta", ref_beta, "ref_acc", ref_acc, None, paired=False)
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

    degree = _DEGREE[basis]

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
    return _result(samples, latent, mean, std, level, method, details)


def regression_draws(
    F_ref: np.ndarray,
    y_ref: np.ndarray,
    F: np.ndarray,
    *,
    intercept: Intercept = "flat",
    method: Method = "evidence",
    hyperprior: Hyperprior | None = None,
    num_samples: int = 2000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    key: Any = 0,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
    """Joint posterior predictive draws of one Bayesian ridge regression (the SPEC 2.4 model).

    ``y = theta_0 + F theta + eps`` is fitted on the references ``(F_ref, y_ref)`` and read
    at the rows of ``F``; theta is integrated out analytically and the precisions are set by
    the evidence or sampled with NUTS (``method``). Every draw shares one coefficient
    vector across the rows, so the draws are joint.

    Args:
      F_ref: ``(R, k)`` reference features, finite, in units the ridge prior suits (scaled).
      y_ref: ``(R,)`` reference targets, finite, any units.
      F: ``(C, k)`` features of the rows to predict.

    The ridge prior keeps the posterior proper with more coefficients than references;
    callers that want a degree of freedom left for the noise check ``R`` themselves.

    Returns:
      ``samples`` and ``latent`` ``(S, C)`` (with and without the noise), the predictive
      ``mean`` and ``std`` ``(C,)``, ``theta`` ``(S, 1 + k)`` (intercept first) and the
      fit's details (precision draws; the MCMC object for NUTS).
    """
    flat = intercept == "flat"
    if not flat:
        F_ref, F = _with_ones(F_ref), _with_ones(F)
    data = _prepare_one(F_ref, y_ref, flat)
    k_mcmc, k_pred = _split_key(key)
    alpha, prior_mean, prior_prec, details = _hyper_draws(
        data,
        method=method,
        hp=Hyperprior() if hyperprior is None else hyperprior,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=k_mcmc,
    )
    draws = _reference_draws(
        k_pred, data, alpha, prior_mean, prior_prec, jnp.asarray(F, data.X.dtype), num_samples, flat
    )
    return (*draws, details)


@partial(jax.jit, static_argnames=("num_samples", "flat"))
def _reference_draws(key, data, alpha, prior_mean, prior_prec, Xc, num_samples: int, flat: bool):
    """Joint draws for candidates Xc (C, k) from one regression (data batched with C = 1).

    Every draw shares one coefficient vector across the candidates, so the draws carry the
    correlation that the shared fit induces.
    """
    d = jax.tree.map(lambda v: v[0], data)
    alpha, prior_mean, prior_prec = alpha[:, 0], prior_mean[:, 0], prior_prec[:, 0]
    m, cov, _, _ = jax.vmap(lambda a, pm, pp: _gauss(d, a, pm, pp))(alpha, prior_mean, prior_prec)
    mean_h, var_h = jax.vmap(lambda m_, c_, a_: jax.vmap(lambda x: _latent(d, m_, c_, a_, x))(Xc))(
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
    mean, std = _total_moments(mean_h, var_h, alpha[:, None])
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
        Z = _with_ones(X)
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
    _check_intercept(intercept)
    if (alpha is None) != (lambda_ is None):
        raise CapjaxInputError("pass both alpha and lambda_ to fix them, or neither")
    Xn = np.asarray(X, dtype=float)
    yn = np.asarray(y, dtype=float)
    if Xn.ndim != 2 or yn.shape != (Xn.shape[0],):
        raise CapjaxInputError(f"X has shape {Xn.shape} and y {yn.shape}; pass (n, F) and (n,)")
    if not (np.isfinite(Xn).all() and np.isfinite(yn).all()):
        raise CapjaxInputError("X or y holds NaN/inf; drop those rows first")
    flat = intercept == "flat"
    data = _prepare_one(Xn if flat else _with_ones(Xn), yn, flat)
    if alpha is None:
        a_, l_ = _evidence_all(data, hp)
    else:
        a_, l_ = jnp.full(1, alpha, data.X.dtype), jnp.full(1, lambda_, data.X.dtype)
    m, cov, _, log_ev = _gauss_batch(data, a_, l_)
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
