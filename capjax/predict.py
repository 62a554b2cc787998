"""Predict final accuracy from an early signal, and rank candidates by it (SPEC 2.4).

The public face of :mod:`capjax.bayes_ridge`: :func:`predict_final` takes one candidate's
early curve ``(T,)`` or a batch ``(n_candidates, T)`` of them, screens every candidate
for input it cannot use, and returns a :class:`Prediction` of each candidate's accuracy
at convergence (the signal read at ``at``, 0 by default) with a central interval and joint
posterior draws. :func:`rank` turns those draws into a decision: order by posterior mean,
P(candidate is best), and the expected regret of choosing each.

Two inference paths share the model of SPEC 2.4 (scikit-learn's ``BayesianRidge``):

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
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpyro.diagnostics import summary

from capjax.bayes_ridge import (
    _DEGREE,
    FinalAccuracyPrediction,
    expected_regret,
    predict_final_accuracy,
    prob_best,
)
from capjax.plots import plot_predictions
from capjax.validation import CapjaxInputError, check_accuracy, is_concrete

Method = Literal["auto", "fast", "nuts"]

#: ``method="auto"`` samples with NUTS up to this many candidates, beyond it uses "fast".
NUTS_MAX_CANDIDATES = 10

_BAYES_METHOD = {"fast": "evidence", "nuts": "nuts"}
# options forwarded to predict_final_accuracy (n_early is applied here, before screening)
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
    }
)
# NUTS sites with one value per candidate (see bayes_ridge._nuts_model); the others
# (the hierarchical mu and tau) have one value per coefficient
_CANDIDATE_SITES = frozenset({"alpha", "lambda"})


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Posterior predictive of each candidate's final accuracy (C candidates, S draws).

    A single ``(T,)`` input is a batch of one: every per-candidate array has C = 1.

    Attributes:
      mean, std: (C,) predictive mean and standard deviation (observation noise included).
      lower, upper: (C,) the central ``level`` predictive interval.
      samples: (S, C) joint posterior predictive draws; row s is one draw of every
        candidate's final accuracy, which is what :func:`rank` needs.
      level: the intervals' nominal coverage.
      method: ``"fast"`` or ``"nuts"``, the path that ran.
      valid: (C,) False where the candidate's input could not be used; its entries
        (mean, std, lower, upper, samples column, coef row) are then NaN.
      reasons: candidate index -> why it is invalid (only invalid candidates appear).
      coef: (C, degree + 1) posterior mean of [theta_0, theta_1, ...], in the units of
        the signal passed in.
      diagnostics: under NUTS, ``r_hat`` and ``ess`` (dicts site -> array: (C,) for the
        per-candidate precisions ``alpha`` and ``lambda``, NaN for invalid candidates;
        (degree,) for the hierarchical ``mu`` and ``tau``), ``max_r_hat`` (worst over all
        sites), ``divergences`` (count of divergent transitions), ``num_chains``. R-hat is
        numpyro's split R-hat, so it is informative with a single chain too (each chain is
        cut in halves that must agree). Empty for the fast path.
      fit: the :class:`~capjax.bayes_ridge.FinalAccuracyPrediction` of the valid
        candidates alone (its candidate j is ``np.flatnonzero(valid)[j]``); it holds
        the latent draws and, under NUTS, the hyperparameter draws and ``mcmc`` object.
    """

    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    samples: np.ndarray
    level: float
    method: str
    valid: np.ndarray
    reasons: dict[int, str]
    coef: np.ndarray
    diagnostics: dict[str, Any]
    fit: FinalAccuracyPrediction


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
    of SPEC 2.4, and returns the posterior predictive of accuracy at ``signal = at``
    (0 by default: at convergence the errors vanish and so does beta_eff).

    Args:
      signal: (T,) early signal of one candidate (e.g. beta_eff per epoch), or
        (n_candidates, T), NaN-padded where a run has fewer observations.
      accuracy: validation accuracy, fractions in [0, 1], same shape and padding.
      at: where to read the prediction: a finite scalar or one value per candidate.
      level: nominal coverage of the central interval.
      method: ``"fast"`` (evidence-maximising precisions, exact conjugate posterior),
        ``"nuts"`` (precisions sampled), or ``"auto"``: NUTS for at most
        :data:`NUTS_MAX_CANDIDATES` candidates or when ``hierarchical=True``, else fast.
      **options: passed on to :func:`~capjax.bayes_ridge.predict_final_accuracy`:
        ``n_early``, ``basis`` (``"linear"``/``"quadratic"``), ``intercept``,
        ``hierarchical`` (partial pooling of slopes across candidates, NUTS only),
        ``hyperprior``, ``prior_scale``, ``rescale``, ``num_samples``, ``num_warmup``,
        ``num_chains``, ``key``.

    Returns:
      A :class:`Prediction`; pass it to :func:`rank` to choose among candidates.

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
    if basis not in _DEGREE:
        raise CapjaxInputError(f"basis={basis!r}: use one of {sorted(_DEGREE)}")
    at_c = _check_at(at, n_cand)

    reasons = _screen(sig, acc, basis)
    if single and reasons:
        raise CapjaxInputError(f"the candidate cannot be predicted: {reasons[0]}")
    valid = np.array([c not in reasons for c in range(n_cand)])
    if not valid.any():
        listed = "; ".join(f"candidate {c}: {r}" for c, r in list(reasons.items())[:3])
        more = f" (and {n_cand - 3} more)" if n_cand > 3 else ""
        raise CapjaxInputError(f"none of the {n_cand} candidates can be predicted: {listed}{more}")

    fit = predict_final_accuracy(
        sig[valid],
        acc[valid],
        beta_star=at_c[valid],
        level=level,
        method=_BAYES_METHOD[chosen],
        **options,
    )
    return Prediction(
        mean=_scatter(fit.mean, valid),
        std=_scatter(fit.std, valid),
        lower=_scatter(fit.lower, valid),
        upper=_scatter(fit.upper, valid),
        samples=_scatter(fit.samples, valid),
        level=fit.level,
        method=chosen,
        valid=valid,
        reasons=reasons,
        coef=_scatter(fit.details["coef"].T, valid).T,
        diagnostics=_nuts_diagnostics(fit.details["mcmc"], valid) if chosen == "nuts" else {},
        fit=fit,
    )


def _as_batch(signal: Any, accuracy: Any) -> tuple[bool, np.ndarray, np.ndarray]:
    """(single, signal (C, T), accuracy (C, T)) as float arrays; shapes checked."""
    if not is_concrete(signal, accuracy):
        raise CapjaxInputError("signal/accuracy are JAX tracers: call predict_final outside jit")
    sig = np.asarray(signal, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
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
    if method not in _BAYES_METHOD:
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
    degree = _DEGREE[basis]
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


def _scatter(values: Any, valid: np.ndarray) -> np.ndarray:
    """Put values for the valid candidates (last axis) back among all, NaN elsewhere."""
    values = np.asarray(values, dtype=float)
    if valid.all():
        return values
    out = np.full(values.shape[:-1] + valid.shape, np.nan)
    out[..., valid] = values
    return out


def _nuts_diagnostics(mcmc: Any, valid: np.ndarray) -> dict[str, Any]:
    """Split r_hat and effective sample size per NUTS site; see :class:`Prediction`."""
    stats = summary(mcmc.get_samples(group_by_chain=True))
    r_hat, ess = {}, {}
    for site, s in stats.items():
        spread = site in _CANDIDATE_SITES
        r_hat[site] = _scatter(s["r_hat"], valid) if spread else np.asarray(s["r_hat"])
        ess[site] = _scatter(s["n_eff"], valid) if spread else np.asarray(s["n_eff"])
    return {
        "r_hat": r_hat,
        "ess": ess,
        "max_r_hat": float(max(np.nanmax(v) for v in r_hat.values())),
        "divergences": int(np.sum(mcmc.get_extra_fields()["diverging"])),
        "num_chains": mcmc.num_chains,
    }


# ---------------------------------------------------------------------------------------
# Decisions from the joint posterior
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Candidates ranked by predicted final accuracy, with the decision-relevant numbers.

    All per-candidate arrays are in candidate order (index c), not rank order.

    Attributes:
      order: (C,) candidate indices, best posterior mean first, invalid candidates last.
      names: one name per candidate.
      mean, lower, upper: (C,) predictive mean and central ``level`` interval.
      level: the intervals' nominal coverage.
      p_best: (C,) P(candidate ends up best) from the joint draws; sums to 1 over the
        valid candidates, 0 for invalid ones.
      expected_regret: (C,) E[best final accuracy - this candidate's] if it is chosen;
        inf for invalid candidates.
      valid: (C,) as in the :class:`Prediction`.
      reasons: candidate index -> why it is invalid.
    """

    order: np.ndarray
    names: tuple[str, ...]
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    p_best: np.ndarray
    expected_regret: np.ndarray
    valid: np.ndarray
    reasons: dict[int, str]

    def table(self) -> list[dict[str, Any]]:
        """One dict per candidate in rank order, JSON-ready (non-finite numbers are None).

        Keys: rank, name, mean, lower, upper, p_best, expected_regret, valid, reason.
        """
        return [
            {
                "rank": r + 1,
                "name": self.names[c],
                "mean": _finite_or_none(self.mean[c]),
                "lower": _finite_or_none(self.lower[c]),
                "upper": _finite_or_none(self.upper[c]),
                "p_best": float(self.p_best[c]),
                "expected_regret": _finite_or_none(self.expected_regret[c]),
                "valid": bool(self.valid[c]),
                "reason": self.reasons.get(int(c)),
            }
            for r, c in enumerate(self.order)
        ]


def rank(prediction: Prediction, names: Any = None) -> Ranking:
    """Rank candidates by posterior mean, with P(best) and expected regret from joint draws.

    Args:
      prediction: a :class:`Prediction` from :func:`predict_final`.
      names: one name per candidate (default: their indices as strings).

    Returns:
      A :class:`Ranking`; ``ranking.table()`` lists it row by row, :func:`plot_ranking`
      draws it.
    """
    C = prediction.mean.shape[0]
    names = tuple(str(c) for c in range(C)) if names is None else tuple(map(str, names))
    if len(names) != C:
        raise CapjaxInputError(f"{len(names)} names for {C} candidates: pass one per candidate")
    # an invalid candidate can be neither best nor chosen: -inf in every draw
    draws = np.where(prediction.valid, prediction.samples, -np.inf)
    key = np.where(prediction.valid, prediction.mean, -np.inf)
    return Ranking(
        order=np.argsort(-key, kind="stable"),
        names=names,
        mean=prediction.mean,
        lower=prediction.lower,
        upper=prediction.upper,
        level=prediction.level,
        p_best=prob_best(draws),
        expected_regret=expected_regret(draws),
        valid=prediction.valid,
        reasons=prediction.reasons,
    )


def plot_ranking(
    ranking: Ranking,
    path: str | Path,
    *,
    truth: Any = None,
    title: str = "predicted final accuracy",
) -> Path:
    """PNG of each candidate's predicted final accuracy and interval, best first.

    Args:
      ranking: from :func:`rank`.
      path: where to write the PNG.
      truth: (C,) true final accuracies in candidate order, drawn as crosses when known.
      title: the figure's title.

    Returns:
      The path written.
    """
    if truth is not None and np.shape(truth) != ranking.mean.shape:
        raise CapjaxInputError(
            f"truth has shape {np.shape(truth)}; pass one final accuracy per candidate "
            f"{ranking.mean.shape}, in candidate order"
        )
    labels = [
        f"{n}  P(best)={p:.2f}" if ok else f"{n}  (invalid)"
        for n, p, ok in zip(ranking.names, ranking.p_best, ranking.valid, strict=True)
    ]
    return plot_predictions(
        labels,
        ranking.mean,
        ranking.lower,
        ranking.upper,
        path,
        truth=truth,
        level=ranking.level,
        title=title,
    )


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
