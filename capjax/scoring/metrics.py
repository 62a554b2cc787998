"""How a predictor is scored against the true final accuracies of a candidate zoo (docs/method.md §5).

Every metric takes ``pred`` and ``true`` of shape ``(n_candidates,)``. The convention,
shared with every predictor in capjax: a HIGHER prediction means the candidate is
predicted to end up BETTER. Predictors of a loss (TSE, SoVL, spectral alpha) are negated
before they reach the scorer.

``true`` holds final accuracies as fractions in [0, 1] and must be finite: it is the
ground truth of the zoo. ``pred`` may hold NaN for candidates whose predictor failed; the
rank correlations refuse NaN (score on the finite subset, as :func:`score_predictor`
does), while :func:`top1_regret` and :func:`precision_at_k` rank a failed candidate last,
so that a predictor cannot improve its regret by failing on the hard candidates.

Ties are resolved by expectation over uniform tie-breaking rather than by array order,
so no metric depends on how the candidates happen to be listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError, check_accuracy

Metric = Callable[[np.ndarray, np.ndarray], float]


def _paired(
    pred: Any, true: Any, *, allow_nan_pred: bool, min_n: int = 2, name: str = "pred"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (pred, true) pair of 1-D candidate arrays; return float copies."""
    p = np.asarray(pred, dtype=float)
    t = check_accuracy("true final accuracy", true)
    if p.ndim != 1 or t.ndim != 1 or p.shape != t.shape:
        raise CapjaxInputError(
            f"{name} has shape {p.shape} and true has shape {t.shape}; pass one value per "
            "candidate, both of shape (n_candidates,)"
        )
    if p.size < min_n:
        raise CapjaxInputError(f"got {p.size} candidate(s); this metric needs at least {min_n}")
    if not np.all(np.isfinite(t)):
        raise CapjaxInputError(
            "true final accuracy holds NaN/inf; drop candidates whose full training "
            "result is unknown before scoring"
        )
    if np.isinf(p).any():
        raise CapjaxInputError(
            f"{name} holds inf; map failed candidates to NaN (scored as failures), not to inf"
        )
    if not allow_nan_pred and np.isnan(p).any():
        raise CapjaxInputError(
            f"{name} holds {int(np.isnan(p).sum())} NaN value(s) (failed candidates); score "
            "the finite subset, e.g. with capjax.scoring.metrics.score_predictor, which reports "
            "how many were dropped"
        )
    return p, t


def kendall_tau(pred: Any, true: Any) -> float:
    """Kendall's tau-b between predicted and true final accuracy (docs/method.md §5).

    ``tau_b = (C - D) / sqrt((n0 - n_p) (n0 - n_t))`` with C/D the concordant/discordant
    pairs, n0 = n(n-1)/2 and n_p, n_t the pairs tied in pred, true. Matches
    ``scipy.stats.kendalltau`` (variant "b"). NaN when either input is constant.

    Args:
      pred: (n,) predictions, higher = predicted better; no NaN.
      true: (n,) true final accuracies in [0, 1].
    """
    p, t = _paired(pred, true, allow_nan_pred=False)
    # n is a zoo of candidates (tens to a few thousand): the O(n^2) pair table is cheap.
    sp = np.sign(p[:, None] - p[None, :])
    st = np.sign(t[:, None] - t[None, :])
    untied_p = np.count_nonzero(sp)
    untied_t = np.count_nonzero(st)
    if untied_p == 0 or untied_t == 0:
        return float("nan")
    return float(np.sum(sp * st) / np.sqrt(float(untied_p) * float(untied_t)))


def spearman_rho(pred: Any, true: Any) -> float:
    """Spearman's rho: Pearson correlation of the average ranks (docs/method.md §5).

    Matches ``scipy.stats.spearmanr``. NaN when either input is constant.

    Args:
      pred: (n,) predictions, higher = predicted better; no NaN.
      true: (n,) true final accuracies in [0, 1].
    """
    from scipy.stats import rankdata  # here: scipy.stats is slow to import

    p, t = _paired(pred, true, allow_nan_pred=False)
    rp = rankdata(p) - (p.size + 1) / 2
    rt = rankdata(t) - (t.size + 1) / 2
    denom = np.sqrt(np.sum(rp * rp) * np.sum(rt * rt))
    if denom == 0:
        return float("nan")
    return float(np.sum(rp * rt) / denom)


def _topk_membership(x: np.ndarray, k: int) -> np.ndarray:
    """P(candidate i is in the top k) under uniform tie-breaking; NaN counts as -inf.

    Candidates strictly above the k-th largest value are in for sure; the m candidates tied
    at that value share the remaining r slots, each with probability r/m.
    """
    x = np.where(np.isnan(x), -np.inf, x)
    kth = np.sort(x)[::-1][k - 1]
    above = x > kth
    tied = x == kth
    return np.where(above, 1.0, np.where(tied, (k - above.sum()) / tied.sum(), 0.0))


def top1_regret(pred: Any, true: Any) -> float:
    """True accuracy of the best candidate minus that of the candidate ranked first (docs/method.md §5).

    ``regret = max_i true_i - E[true_j | j ranked first by pred]``, in accuracy units
    (fractions). When several candidates tie for the top prediction the expectation is
    over a uniform pick among them. NaN predictions (failed candidates) are ranked last;
    the best candidate is taken over the whole zoo, failed ones included.

    Args:
      pred: (n,) predictions, higher = predicted better; NaN = failed.
      true: (n,) true final accuracies in [0, 1].
    """
    p, t = _paired(pred, true, allow_nan_pred=True)
    chosen = _topk_membership(p, 1)
    return float(t.max() - np.sum(chosen * t))


def precision_at_k(pred: Any, true: Any, k: int = 5) -> float:
    """|predicted top-k  ∩  true top-k| / k (docs/method.md §5).

    Ties at the k-th place (in pred or in true) are resolved in expectation, i.e. the
    result is ``sum_i P(i in pred top-k) P(i in true top-k) / k``. NaN predictions are
    ranked last.

    Args:
      pred: (n,) predictions, higher = predicted better; NaN = failed.
      true: (n,) true final accuracies in [0, 1].
      k: size of the shortlist, 1 <= k <= n.
    """
    p, t = _paired(pred, true, allow_nan_pred=True)
    if not 1 <= k <= p.size:
        raise CapjaxInputError(
            f"k={k} but the zoo has {p.size} candidates; pass 1 <= k <= n_candidates"
        )
    return float(np.sum(_topk_membership(p, k) * _topk_membership(t, k)) / k)


def interval_coverage(lower: Any, upper: Any, true: Any) -> float:
    """Fraction of candidates whose true final accuracy lies in [lower, upper] (docs/method.md §5).

    For a calibrated nominal-90% interval predictor this is close to 0.9.

    Args:
      lower, upper: (n,) interval bounds in accuracy units, lower <= upper, finite.
      true: (n,) true final accuracies in [0, 1].
    """
    lo, t = _paired(lower, true, allow_nan_pred=False, min_n=1, name="lower")
    hi, _ = _paired(upper, true, allow_nan_pred=False, min_n=1, name="upper")
    if np.any(lo > hi):
        raise CapjaxInputError(
            f"{int(np.sum(lo > hi))} interval(s) have lower > upper; pass (lower, upper) "
            "in that order"
        )
    return float(np.mean((lo <= t) & (t <= hi)))


def bootstrap_interval(
    metric_fn: Metric,
    pred: Any,
    true: Any,
    *,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric_fn(pred, true)``, resampling candidates.

    Each replicate draws n candidates with replacement and recomputes the metric on the
    resampled (pred, true) pairs; the interval is the ((1-level)/2, (1+level)/2) quantile
    of the replicates. Replicates where the metric is undefined (e.g. a resample whose
    candidates all share one prediction gives NaN tau) are left out.

    Args:
      metric_fn: ``(pred, true) -> float``, e.g. :func:`kendall_tau`.
      pred, true: (n,) arrays as for the metric.
      n_boot: number of bootstrap replicates.
      level: nominal coverage of the interval, in (0, 1).
      seed: seed of the numpy generator that draws the resamples.

    Returns:
      (lo, hi); (NaN, NaN) when no replicate gives a finite metric.
    """
    p = np.asarray(pred, dtype=float)
    t = np.asarray(true, dtype=float)
    if not 0 < level < 1:
        raise CapjaxInputError(f"level={level}; pass a coverage in (0, 1), e.g. 0.9")
    if n_boot < 1:
        raise CapjaxInputError(f"n_boot={n_boot}; pass a positive number of replicates")
    if p.ndim != 1 or p.shape != t.shape:
        raise CapjaxInputError(
            f"pred has shape {p.shape} and true has shape {t.shape}; both must be (n_candidates,)"
        )
    idx = np.random.default_rng(seed).integers(0, p.size, size=(n_boot, p.size))
    reps = np.array([metric_fn(p[i], t[i]) for i in idx], dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def score_predictor(
    pred: Any,
    true: Any,
    *,
    lower: Any = None,
    upper: Any = None,
    k: int = 5,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """Every docs/method.md §5 metric of one predictor on one zoo, as a JSON-ready dict.

    Failed candidates (NaN in ``pred``, or in ``lower``/``upper`` when given) are handled
    explicitly: tau, rho, their bootstrap intervals and coverage are computed on the
    finite subset; regret and precision@k rank the failed candidates last against the
    whole zoo. ``n_dropped`` reports how many failed. With fewer than 2 finite
    predictions the correlations are NaN (a row is still produced, so sweeps never stop).

    Args:
      pred: (n,) predictions, higher = predicted better; NaN = failed.
      true: (n,) true final accuracies in [0, 1].
      lower, upper: optional (n,) interval bounds of an interval predictor (both or none).
      k: shortlist size for precision@k.
      n_boot, level, seed: bootstrap settings (:func:`bootstrap_interval`); ``level`` is
        the level of the tau/rho intervals, not of the predictor's intervals.

    Returns:
      dict with keys tau, tau_lo, tau_hi, rho, rho_lo, rho_hi, regret, precision_at_k,
      coverage (None without intervals), n_candidates, n_scored, n_dropped.
    """
    p, t = _paired(pred, true, allow_nan_pred=True)
    if (lower is None) != (upper is None):
        raise CapjaxInputError("pass both lower and upper for an interval predictor, or neither")
    failed = np.isnan(p)
    if lower is not None:
        lo = np.asarray(lower, dtype=float)
        hi = np.asarray(upper, dtype=float)
        if lo.shape != p.shape or hi.shape != p.shape:
            raise CapjaxInputError(
                f"lower {lo.shape} / upper {hi.shape} must match pred {p.shape}; pass one "
                "interval per candidate"
            )
        failed |= np.isnan(lo) | np.isnan(hi)
        # A candidate with a failed interval is a failed prediction for every metric.
        p = np.where(failed, np.nan, p)
    ok = ~failed
    nan = float("nan")
    row: dict[str, float | int | None] = dict.fromkeys(
        ["tau", "tau_lo", "tau_hi", "rho", "rho_lo", "rho_hi"], nan
    )
    if ok.sum() >= 2:
        for name, fn in (("tau", kendall_tau), ("rho", spearman_rho)):
            row[name] = fn(p[ok], t[ok])
            row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_interval(
                fn, p[ok], t[ok], n_boot=n_boot, level=level, seed=seed
            )
    row["regret"] = top1_regret(p, t)
    row["precision_at_k"] = precision_at_k(p, t, k)
    row["coverage"] = None
    if lower is not None:
        row["coverage"] = interval_coverage(lo[ok], hi[ok], t[ok]) if ok.any() else nan
    row["n_candidates"] = int(p.size)
    row["n_scored"] = int(ok.sum())
    row["n_dropped"] = int(failed.sum())
    return row
