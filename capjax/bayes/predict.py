"""One front door to the per-candidate prediction of docs/method.md §2.4: :func:`predict_final`.

:func:`predict_final` takes one candidate's early curves ``(T,)`` or a batch
``(n_candidates, T)`` of them, screens every candidate for input it cannot use, fits the
Bayesian ridge regression of :mod:`capjax.bayes.ridge` to each usable candidate, and
returns one :class:`Prediction` of each candidate's accuracy where the signal is read
(``at``, 0 by default: at convergence the errors vanish and so does beta_eff), with a
central interval and joint posterior draws. :func:`capjax.bayes.decision.rank` turns
those draws into a decision.

Two inference paths share the model:

* ``"fast"``: the exact conjugate posterior at the evidence-maximising precisions (type-II
  maximum likelihood, MacKay's fixed point), computed for all candidates at once by
  vmapped, jitted kernels. Use it for sweeps of hundreds of candidates.
* ``"nuts"``: NumPyro's NUTS over the noise and weight precisions (the coefficients are
  integrated out exactly), so the intervals include the precisions' uncertainty; needed
  for the hierarchical prior. Diagnostics (split r_hat, effective sample size) come with it.

In a batch, a candidate with unusable input does not spoil the others: it is left out of
the fit, its entries are NaN, ``valid[c]`` is False and ``reasons[c]`` says why.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np

from capjax.base.validation import CapjaxInputError, check_accuracy, is_concrete
from capjax.bayes.decision import expected_regret, prob_best
from capjax.bayes.ridge import (
    DEGREE,
    Hyperprior,
    check_level,
    check_options,
    hyper_draws,
    moments,
    noise_dof,
    powers,
    predictive_draws,
    prepare_batch,
    split_key,
    student_draws,
)

Method = Literal["auto", "fast", "nuts"]

#: ``method="auto"`` samples with NUTS up to this many candidates, beyond it uses "fast".
NUTS_MAX_CANDIDATES = 10

_METHODS = ("fast", "nuts")
# options of the model (n_early is applied before screening, key splits into two streams)
_OPTIONS = frozenset(
    {
        "n_early",
        "basis",
        "intercept",
        "hierarchical",
        "hyperprior",
        "prior_scale",
        "rescale",
        "num_samples",
        "num_warmup",
        "num_chains",
        "key",
        "predictive",
    }
)
# NUTS sites with one value per candidate (see capjax.bayes.ridge.nuts_model); the others
# (the hierarchical mu and tau) have one value per coefficient
_CANDIDATE_SITES = frozenset({"alpha", "lambda"})


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Posterior predictive of each candidate's final accuracy (C candidates, S draws).

    The one result type of capjax's Bayesian prediction: :func:`predict_final` and
    :func:`capjax.bayes.regression.predict_from_references` both return it. A single
    ``(T,)`` input is a batch of one: every per-candidate array has C = 1.

    Attributes:
      mean, std: (C,) predictive mean and standard deviation (observation noise included).
      lower, upper: (C,) the central ``level`` predictive interval.
      samples: (S, C) joint posterior predictive draws; row s is one draw of every
        candidate's final accuracy, which is what ranking needs.
      latent_samples: (S, C) the same draws without the observation noise.
      level: the intervals' nominal coverage.
      method: ``"fast"`` or ``"nuts"``, the path that ran.
      gaussian: True when the predictive is exactly Gaussian (the fast path); intervals are
        then the Gaussian ones, otherwise sample quantiles (or, with ``dof``, Student-t).
      dof: (C,) degrees of freedom of the Student-t predictive (``predictive="student"``),
        whose scale ``std`` then is; None otherwise.
      valid: (C,) False where the candidate's input could not be used; its entries
        (mean, std, lower, upper, samples column, coef row) are then NaN.
      reasons: candidate index -> why it is invalid (only invalid candidates appear).
      coef: (C, degree + 1) posterior mean of [theta_0, theta_1, ...], in the units of
        the signal passed in (cross-candidate fits: (1 + F,), one shared vector).
      details: the fit's extras for the valid candidates: ``alpha``, ``lambda`` (or ``mu``,
        ``tau``) as estimates (fast, (C_valid,)) or draws (NUTS, (S, C_valid) or (S, k));
        ``beta_scale`` or ``feature_scale``; ``n_used``; under NUTS the ``mcmc`` object.
      diagnostics: under NUTS, ``r_hat`` and ``ess`` (dicts site -> array: (C,) for the
        per-candidate precisions ``alpha`` and ``lambda``, NaN for invalid candidates;
        (degree,) for the hierarchical ``mu`` and ``tau``), ``max_r_hat`` (worst over all
        sites), ``divergences`` (count of divergent transitions), ``num_chains``. R-hat is
        numpyro's split R-hat, so it is informative with a single chain too. Empty for the
        fast path.
    """

    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    samples: np.ndarray
    latent_samples: np.ndarray
    level: float
    method: str
    gaussian: bool
    valid: np.ndarray
    reasons: dict[int, str]
    coef: np.ndarray
    details: dict[str, Any]
    diagnostics: dict[str, Any]
    dof: np.ndarray | None = None

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central predictive interval at ``level`` for each candidate: (lower, upper)."""
        return central_interval(self.mean, self.std, self.samples, level, self.gaussian, self.dof)

    def prob_best(self) -> np.ndarray:
        """P(candidate c ends up best), from the joint draws; 0 for invalid candidates. (C,)."""
        return prob_best(np.where(self.valid, self.samples, -np.inf))

    def expected_regret(self) -> np.ndarray:
        """E[best final accuracy - that of c], for choosing each c; inf if invalid. (C,)."""
        return expected_regret(np.where(self.valid, self.samples, -np.inf))


def central_interval(
    mean: np.ndarray, std: np.ndarray, samples: np.ndarray, level: float, gaussian: bool, dof: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` interval: Student-t with ``dof``, Gaussian, or draw quantiles."""
    check_level(level)
    if dof is not None:
        from scipy.stats import t

        z = t.ppf(0.5 + level / 2, dof)
        return mean - z * std, mean + z * std
    if gaussian:
        from scipy.stats import norm

        z = norm.ppf(0.5 + level / 2)
        return mean - z * std, mean + z * std
    q = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return q[0], q[1]


def predict_final(
    signal: Any,
    accuracy: Any,
    *,
    at: Any = 0.0,
    level: float = 0.9,
    method: Method = "auto",
    **options: Any,
) -> Prediction:
    """Predict each candidate's final accuracy from its early (signal, accuracy) pairs.

    Fits ``accuracy_t = h(signal_t) + noise`` per candidate, the Bayesian ridge regression
    of docs/method.md §2.4, and returns the posterior predictive of accuracy at
    ``signal = at`` (0 by default: at convergence the errors vanish and so does beta_eff).

    Args:
      signal: (T,) early signal of one candidate (e.g. beta_eff per epoch), or
        (n_candidates, T), NaN-padded where a run has fewer observations.
      accuracy: validation accuracy, fractions in [0, 1], same shape and padding.
      at: where to read the prediction: a finite scalar or one value per candidate.
      level: nominal coverage of the central interval.
      method: ``"fast"`` (evidence-maximising precisions, exact conjugate posterior),
        ``"nuts"`` (precisions sampled), or ``"auto"``: NUTS for at most
        :data:`NUTS_MAX_CANDIDATES` candidates or when ``hierarchical=True``, else fast.
      **options: the model's settings:
        ``n_early`` (use the first n observations), ``basis`` (``"linear"`` or
        ``"quadratic"`` in the signal), ``intercept`` (``"flat"`` or ``"ridge"``),
        ``hierarchical`` (partial pooling of slopes across candidates, NUTS only),
        ``hyperprior`` (a :class:`~capjax.bayes.ridge.Hyperprior`; scikit-learn's by
        default), ``prior_scale`` (of the hierarchical mu and tau, in accuracy per unit of
        rescaled signal), ``rescale`` (divide the signal by its root mean square over the
        used pairs first; default True), ``num_samples`` (draws returned, per chain under
        NUTS; 2000), ``num_warmup`` (1000), ``num_chains`` (1), ``key`` (a PRNG key or an
        int seed; 0), ``predictive`` (fast path only: ``"student"``, the default, integrates
        the noise precision out, giving a Student-t with ``n - 1 - gamma`` degrees of
        freedom, calibrated with as few as 3 early points; ``"gaussian"`` plugs in the
        evidence-maximising precisions, which under-covers with few points; docs/method.md §2.4).

    Returns:
      A :class:`Prediction`; pass it to :func:`capjax.bayes.decision.rank` to choose.

    Raises:
      CapjaxInputError: for bad options or shapes; for a single (T,) candidate whose input
        is unusable (too few finite pairs for the basis, a constant signal, accuracies
        outside [0, 1], signal and accuracy NaN at different places); for a batch in which
        no candidate is usable. In a batch, unusable candidates are marked invalid instead.
    """
    single, sig, acc = _as_batch(signal, accuracy)
    n_cand = sig.shape[0]
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise CapjaxInputError(f"unknown option(s) {unknown}: predict_final accepts {sorted(_OPTIONS)}")
    chosen = _choose_method(method, n_cand, bool(options.get("hierarchical", False)))
    if chosen == "nuts" and options.get("num_samples", 4) < 4:
        raise CapjaxInputError(f"num_samples={options['num_samples']!r}: split r_hat needs at least 4 draws per chain")
    sig, acc = _first(sig, acc, options.pop("n_early", None))
    basis = options.get("basis", "linear")
    if basis not in DEGREE:
        raise CapjaxInputError(f"basis={basis!r}: use one of {sorted(DEGREE)}")
    at_c = _check_at(at, n_cand)

    reasons = _screen(sig, acc, basis)
    if single and reasons:
        raise CapjaxInputError(f"the candidate cannot be predicted: {reasons[0]}")
    valid = np.array([c not in reasons for c in range(n_cand)])
    if not valid.any():
        listed = "; ".join(f"candidate {c}: {r}" for c, r in list(reasons.items())[:3])
        more = f" (and {n_cand - 3} more)" if n_cand > 3 else ""
        raise CapjaxInputError(f"none of the {n_cand} candidates can be predicted: {listed}{more}")

    if options.get("predictive", "student") not in ("gaussian", "student"):
        raise CapjaxInputError(f"predictive={options['predictive']!r}: use 'gaussian' or 'student'")
    if options.get("predictive") == "student" and chosen != "fast":
        raise CapjaxInputError("predictive='student' is the fast path's: pass method='fast' (NUTS samples the noise)")
    fit = _fit(sig[valid], acc[valid], at_c[valid], level=level, method=chosen, **options)
    return Prediction(
        mean=scatter_valid(fit["mean"], valid),
        std=scatter_valid(fit["std"], valid),
        lower=scatter_valid(fit["lower"], valid),
        upper=scatter_valid(fit["upper"], valid),
        samples=scatter_valid(fit["samples"], valid),
        latent_samples=scatter_valid(fit["latent"], valid),
        level=float(level),
        method=chosen,
        gaussian=chosen == "fast" and fit["dof"] is None,
        valid=valid,
        reasons=reasons,
        coef=scatter_valid(fit["details"]["coef"].T, valid).T,
        details=fit["details"],
        diagnostics=_nuts_diagnostics(fit["details"]["mcmc"], valid) if chosen == "nuts" else {},
        dof=None if fit["dof"] is None else scatter_valid(fit["dof"], valid),
    )


def _fit(
    b: np.ndarray,
    a: np.ndarray,
    at: np.ndarray,
    *,
    level: float,
    method: str,
    basis: str = "linear",
    intercept: str = "flat",
    hierarchical: bool = False,
    hyperprior: Hyperprior | None = None,
    prior_scale: float = 1.0,
    rescale: bool = True,
    num_samples: int = 2000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    key: Any = 0,
    predictive: str = "student",
) -> dict[str, Any]:
    """The regression of every screened candidate's (C, T) curves, read at ``at`` (C,)."""
    hp = Hyperprior() if hyperprior is None else hyperprior
    check_options(basis, intercept, method, hierarchical, num_samples, num_warmup, num_chains, level)
    used = np.isfinite(b)
    C = b.shape[0]
    degree, flat = DEGREE[basis], intercept == "flat"
    scale = float(np.sqrt(np.mean(b[used] ** 2))) if rescale else 1.0
    X = jnp.asarray(powers(np.where(used, b, 0.0) / scale, degree, flat))
    xs = jnp.asarray(powers(np.broadcast_to(at, (C,)) / scale, degree, flat))
    data = prepare_batch(X, jnp.asarray(np.where(used, a, 0.0), X.dtype), jnp.asarray(used), flat)

    k_mcmc, k_pred = split_key(key)
    alpha, prior_mean, prior_prec, details = hyper_draws(
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
    mean_h, var_h, theta = moments(data, alpha, prior_mean, prior_prec, xs, flat)
    details["coef"] = np.asarray(theta.mean(0)) / scale ** np.arange(degree + 1)
    details["beta_scale"] = scale
    details["n_used"] = used.sum(1)
    dof = None
    if predictive == "student" and method == "fast":  # NUTS samples the noise precision itself
        dof_j = noise_dof(data, alpha[0], jnp.asarray(details["lambda"], data.X.dtype))
        draws = student_draws(k_pred, alpha, mean_h, var_h, dof_j, num_samples)
        dof = np.asarray(dof_j, dtype=float)
    else:
        draws = predictive_draws(k_pred, alpha, mean_h, var_h, num_samples)
    samples, latent, mean, std = (np.asarray(v, dtype=float) for v in draws)
    lower, upper = central_interval(mean, std, samples, level, method == "fast", dof)
    return {"mean": mean, "std": std, "lower": np.asarray(lower), "upper": np.asarray(upper),
            "samples": samples, "latent": latent, "details": details, "dof": dof}


def _as_batch(signal: Any, accuracy: Any) -> tuple[bool, np.ndarray, np.ndarray]:
    """(single, signal (C, T), accuracy (C, T)) as float arrays; shapes checked."""
    if not is_concrete(signal, accuracy):
        raise CapjaxInputError("signal/accuracy are JAX tracers: call predict_final outside jit")
    try:
        sig = np.asarray(signal, dtype=float)
        acc = np.asarray(accuracy, dtype=float)
    except (ValueError, TypeError):
        raise CapjaxInputError(
            "signal and accuracy must be rectangular numeric arrays, (T,) or (n_candidates, T); pad ragged "
            "candidates with NaN to a common T"
        ) from None
    if sig.shape != acc.shape or sig.ndim not in (1, 2) or sig.shape[-1] == 0:
        raise CapjaxInputError(
            f"signal has shape {sig.shape} and accuracy {acc.shape}; pass both as (T,) for "
            "one candidate or (n_candidates, T) for many, NaN-padded at the same places "
            "where a run has fewer observations"
        )
    single = sig.ndim == 1
    return single, np.atleast_2d(sig), np.atleast_2d(acc)


def _choose_method(method: str, n_candidates: int, hierarchical: bool) -> str:
    if method == "auto":
        return "nuts" if hierarchical or n_candidates <= NUTS_MAX_CANDIDATES else "fast"
    if method not in _METHODS:
        raise CapjaxInputError(f"method={method!r}: use 'auto', 'fast' or 'nuts'")
    if hierarchical and method == "fast":
        raise CapjaxInputError("hierarchical=True needs method='nuts' (or 'auto'): the shared prior is sampled")
    return method


def _first(sig: np.ndarray, acc: np.ndarray, n_early: Any) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_early`` observations (all when None)."""
    if n_early is None:
        return sig, acc
    T = sig.shape[1]
    if isinstance(n_early, bool) or int(n_early) != n_early or not 1 <= n_early <= T:
        raise CapjaxInputError(
            f"n_early={n_early!r}: must be an integer in [1, {T}], the number of early observations per candidate"
        )
    return sig[:, : int(n_early)], acc[:, : int(n_early)]


def _check_at(at: Any, n_cand: int) -> np.ndarray:
    a = np.asarray(at, dtype=float)
    if a.shape not in ((), (n_cand,)) or not np.all(np.isfinite(a)):
        raise CapjaxInputError(
            f"at has shape {a.shape}; pass a finite scalar or one finite value per candidate ({n_cand})"
        )
    return np.broadcast_to(a, (n_cand,))


def _screen(sig: np.ndarray, acc: np.ndarray, basis: str) -> dict[int, str]:
    """Why each candidate's (C, T) curves cannot be fitted with ``basis``: index -> reason.

    Vectorised over candidates (sweeps screen thousands); messages are built only for the
    candidates that fail, each for the first check it fails.
    """
    seen_sig, seen_acc = np.isfinite(sig), np.isfinite(acc)
    n = seen_sig.sum(1)
    degree = DEGREE[basis]
    need = degree + 2
    # distinct finite signal values per candidate: sort, count the steps
    ordered = np.sort(np.where(seen_sig, sig, np.inf), axis=1)
    with np.errstate(invalid="ignore"):  # inf - inf and comparisons with NaN padding
        steps = (np.diff(ordered, axis=1) > 0) & np.isfinite(ordered[:, 1:])
        bad_acc = np.isinf(acc) | (seen_acc & ((acc < 0) | (acc > 1)))
    distinct = steps.sum(1) + (n > 0)

    def accuracy_reason(c: int) -> str:
        try:
            check_accuracy("accuracy", acc[c])
        except CapjaxInputError as err:
            return str(err)
        raise AssertionError("unreachable: the row was flagged as out of range")

    checks = [
        (bad_acc.any(1), accuracy_reason),
        (np.isinf(sig).any(1), lambda c: "signal holds inf; check the run that measured it"),
        (
            (seen_sig != seen_acc).any(1),
            lambda c: (
                "signal and accuracy disagree on which observations exist (at "
                f"{np.flatnonzero(seen_sig[c] != seen_acc[c]).tolist()}): NaN-pad both at "
                "the same places"
            ),
        ),
        (
            n < need,
            lambda c: (
                f"{n[c]} finite observation pair(s); the {basis} basis has {degree + 1} "
                f"coefficients and needs at least {need} pairs (one left for the noise): use "
                "more early epochs" + (", or basis='linear'" if degree > 1 else "")
            ),
        ),
        (
            distinct <= degree,
            lambda c: (
                f"the signal takes only {distinct[c]} distinct value(s) (singular design): the "
                f"{basis} basis needs {degree + 1} to tell accuracy's trend in the signal, and "
                "without it the prediction is the prior's guess"
            ),
        ),
    ]
    reasons: dict[int, str] = {}
    for failed, why in checks:
        for c in np.flatnonzero(failed):
            reasons.setdefault(int(c), why(int(c)))
    return dict(sorted(reasons.items()))


def scatter_valid(values: Any, valid: np.ndarray) -> np.ndarray:
    """Put values for the valid candidates (last axis) back among all, NaN elsewhere."""
    values = np.asarray(values, dtype=float)
    if valid.all():
        return values
    out = np.full(values.shape[:-1] + valid.shape, np.nan)
    out[..., valid] = values
    return out


def _nuts_diagnostics(mcmc: Any, valid: np.ndarray) -> dict[str, Any]:
    """Split r_hat and effective sample size per NUTS site; see :class:`Prediction`."""
    from numpyro.diagnostics import summary

    stats = summary(mcmc.get_samples(group_by_chain=True))
    r_hat, ess = {}, {}
    for site, s in stats.items():
        spread = site in _CANDIDATE_SITES
        r_hat[site] = scatter_valid(s["r_hat"], valid) if spread else np.asarray(s["r_hat"])
        ess[site] = scatter_valid(s["n_eff"], valid) if spread else np.asarray(s["n_eff"])
    return {
        "r_hat": r_hat,
        "ess": ess,
        "max_r_hat": float(max(np.nanmax(v) for v in r_hat.values())),
        "divergences": int(np.sum(mcmc.get_extra_fields()["diverging"])),
        "num_chains": mcmc.num_chains,
    }

