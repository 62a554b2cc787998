"""Learning-curve baselines: early accuracy, loss sums, curve extrapolation (docs/method.md §4).

SCORE CONVENTION -- read this before using any function here: every predictor returns a
score where HIGHER = PREDICTED BETTER, which is what :mod:`capjax.scoring.metrics` assumes. Loss
based predictors (SoVL, TSE, TSE-E, TSE-EMA) are therefore returned NEGATED: a score of
-3.2 beats -4.0.

Inputs are per-epoch curves, shape (T,) for one candidate or (n_candidates, T) for a
zoo; column j is epoch j + 1. NaN pads curves that were recorded for fewer epochs.
``budget`` is the number of early epochs the predictor may look at (1 <= budget <= T).
For VAccES and the loss sums, a candidate whose window of epochs 1..budget holds a
NaN/inf (it was not recorded that far, or it diverged) scores NaN, which the scorer
counts as a failed prediction, rather than a sum over fewer epochs that would not be
comparable with the others. Curve extrapolation fits whichever epochs are finite.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from capjax.base.validation import CapjaxInputError, check_accuracy


def _curves(x: Any, name: str) -> np.ndarray:
    """Check a (T,) or (n_candidates, T) curve array; return it as float."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise CapjaxInputError(
            f"{name} has shape {arr.shape}; pass per-epoch values of shape (T,) or "
            "(n_candidates, T), NaN-padded"
        )
    return arr


def _window(x: np.ndarray, budget: int, name: str) -> np.ndarray:
    """Epochs 1..budget of each curve, shape (..., budget)."""
    n_epochs = x.shape[-1]
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer):
        raise CapjaxInputError(f"budget={budget!r}; pass a whole number of epochs")
    if not 1 <= budget <= n_epochs:
        raise CapjaxInputError(
            f"budget={budget} but {name} covers {n_epochs} epoch(s); pass 1 <= budget <= {n_epochs}"
        )
    return x[..., :budget]


def _negated_weighted_sum(window: np.ndarray, weights: np.ndarray) -> np.ndarray | float:
    """``-sum_t w_t L_t`` per curve; NaN where the window is incomplete or diverged."""
    score = -np.sum(np.where(np.isfinite(window), window, 0.0) * weights, axis=-1)
    score = np.where(np.all(np.isfinite(window), axis=-1), score, np.nan)
    return score if score.ndim else float(score)


def early_val_accuracy(val_acc: Any, budget: int) -> np.ndarray | float:
    """VAccES: validation accuracy at epoch ``budget`` (docs/method.md §4). Higher = better.

    Args:
      val_acc: (T,) or (n, T) validation accuracy as fractions in [0, 1], NaN-padded.
      budget: number of early epochs available.

    Returns:
      () or (n,) accuracy at epoch ``budget``; NaN where that epoch is missing.
    """
    window = _window(_curves(check_accuracy("val_acc", val_acc), "val_acc"), budget, "val_acc")
    last = window[..., -1].copy()
    return last if last.ndim else float(last)


def sovl(val_loss: Any, budget: int) -> np.ndarray | float:
    """SoVL: minus the sum of validation losses over epochs 1..budget (docs/method.md §4).

    ``score = -sum_{t=1}^{budget} L_val(t)``. Higher = better (lower loss sum).

    Args:
      val_loss: (T,) or (n, T) per-epoch validation loss (e.g. mean cross-entropy, nats).
      budget: number of early epochs available.
    """
    window = _window(_curves(val_loss, "val_loss"), budget, "val_loss")
    return _negated_weighted_sum(window, np.ones(budget))


def tse(train_loss: Any, budget: int) -> np.ndarray | float:
    """TSE: minus the sum of per-epoch mean training losses over epochs 1..budget (docs/method.md §4).

    Ru et al. 2021 ("Speedy performance estimation for neural architecture search"):
    ``TSE(T) = sum_{t=1}^{T} Lbar_train(t)``, with ``Lbar_train(t)`` the mean of the
    mini-batch losses seen during epoch t. Returned as ``-TSE``: higher = better.

    Args:
      train_loss: (T,) or (n, T) per-epoch mean training loss.
      budget: T, the number of early epochs available.
    """
    window = _window(_curves(train_loss, "train_loss"), budget, "train_loss")
    return _negated_weighted_sum(window, np.ones(budget))


def tse_e(train_loss: Any, budget: int, E: int) -> np.ndarray | float:
    """TSE-E: minus the sum of mean training losses over the last E epochs of the budget.

    ``TSE-E(T) = sum_{t=T-E+1}^{T} Lbar_train(t)`` (Ru et al. 2021; docs/method.md §4), returned
    negated: higher = better.

    Args:
      train_loss: (T,) or (n, T) per-epoch mean training loss.
      budget: T, the number of early epochs available.
      E: how many of the most recent epochs to sum, 1 <= E <= budget.
    """
    window = _window(_curves(train_loss, "train_loss"), budget, "train_loss")
    if not 1 <= E <= budget:
        raise CapjaxInputError(f"E={E} with budget={budget}; pass 1 <= E <= budget")
    return _negated_weighted_sum(window, (np.arange(budget) >= budget - E).astype(float))


def tse_ema(train_loss: Any, budget: int, gamma: float = 0.9) -> np.ndarray | float:
    """TSE-EMA: exponentially weighted sum of mean training losses, recent epochs heaviest.

    ``TSE-EMA(T) = sum_{t=1}^{T} gamma^(T-t) Lbar_train(t)`` (Ru et al. 2021; docs/method.md §4),
    returned negated: higher = better.

    Args:
      train_loss: (T,) or (n, T) per-epoch mean training loss.
      budget: T, the number of early epochs available.
      gamma: decay per epoch into the past, in (0, 1].
    """
    window = _window(_curves(train_loss, "train_loss"), budget, "train_loss")
    if not 0 < gamma <= 1:
        raise CapjaxInputError(f"gamma={gamma}; pass a decay in (0, 1], e.g. 0.9")
    return _negated_weighted_sum(window, gamma ** np.arange(budget - 1, -1, -1.0))


# --- Learning-curve extrapolation (Domhan, Springenberg, Hutter, IJCAI 2015) -----------


@dataclasses.dataclass(frozen=True)
class CurveFamily:
    """One parametric learning-curve family ``y = f(x; theta)`` with x the epoch (>= 1).

    ``guess(x, y)`` turns the observed curve into a starting point inside ``bounds``.
    """

    fn: Callable[..., np.ndarray]
    guess: Callable[[np.ndarray, np.ndarray], list[float]]
    bounds: tuple[list[float], list[float]]

    @property
    def n_params(self) -> int:
        return len(self.bounds[0])


_INF = np.inf
# Guesses are clipped away from 0 and 1 so logs and ratios below stay finite.
_EPS = 1e-3


def _asymptote(y: np.ndarray) -> float:
    """Starting asymptote: a little above the best accuracy seen, at most 1."""
    return float(min(1.0, y.max() + 0.1 * (1.0 - y.max()) + _EPS))


def _first_gap(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(asymptote guess c, its gap c - y_first > 0) used by the saturating families."""
    c = _asymptote(y)
    return c, max(c - float(y[0]), _EPS)


def _vap_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    # log y is linear in (1, 1/x, log x): solve that least-squares problem exactly.
    design = np.stack([np.ones_like(x), 1.0 / x, np.log(x)], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.log(np.clip(y, _EPS, None)), rcond=None)
    return [float(v) for v in coef]


def _pow3_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, gap = _first_gap(x, y)
    return [c, gap * x[0] ** 0.5, 0.5]


def _pow4_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, gap = _first_gap(x, y)
    return [c, 0.5 / (gap * x[0]), 0.5 / gap, 1.0]


def _mmf_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, _ = _first_gap(x, y)
    # kappa = 1/x_first, delta = 1 puts y_first halfway between beta and alpha.
    return [c, float(np.clip(2 * y[0] - c, 0.0, c)), 1.0 / x[0], 1.0]


def _janoschek_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, gap = _first_gap(x, y)
    return [c, 0.0, float(np.log(c / gap)) / x[0] + _EPS, 1.0]


def _exp4_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, gap = _first_gap(x, y)
    return [c, 0.5, float(np.log(gap)) + 0.5 * x[0], 1.0]


def _ilog2_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, gap = _first_gap(x, y)
    return [c, gap * float(np.log(x[0] + 1))]


def _log_power_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, _ = _first_gap(x, y)
    y0 = float(np.clip(y[0], _EPS, c - _EPS)) if c > 2 * _EPS else c / 2
    return [c, float(np.log(x[0] * (c / y0 - 1))), -1.0]


def _hill3_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    c, _ = _first_gap(x, y)
    y0 = float(np.clip(y[0], _EPS, c - _EPS)) if c > 2 * _EPS else c / 2
    return [c, 1.0, x[0] * (c / y0 - 1)]


def _loglog_linear_guess(x: np.ndarray, y: np.ndarray) -> list[float]:
    span = float(np.log(x[-1]) - np.log(x[0])) or 1.0
    a = max((float(np.exp(y[-1])) - float(np.exp(y[0]))) / span, _EPS)
    return [a, max(float(np.exp(y[0])) - a * float(np.log(x[0])), _EPS)]


def _safe_power(base: np.ndarray, exponent: Any) -> np.ndarray:
    """``base ** exponent`` for base >= 0 without warnings at the bounds of the search."""
    with np.errstate(all="ignore"):
        return np.power(np.maximum(base, 0.0), exponent)


# Forms of Domhan et al. 2015, Table 1. Asymptotes (c, alpha, y_max, a of log_power) are
# bounded to [0, 1] because the curves are accuracies; shapes are bounded to increasing,
# saturating curves, the prior Domhan et al. also impose.
FAMILIES: dict[str, CurveFamily] = {
    # y = c - a x^-alpha
    "pow3": CurveFamily(
        lambda x, c, a, alpha: c - a * _safe_power(x, -alpha),
        _pow3_guess,
        ([0.0, 0.0, 0.0], [1.0, _INF, 10.0]),
    ),
    # y = c - (a x + b)^-alpha
    "pow4": CurveFamily(
        lambda x, c, a, b, alpha: c - _safe_power(a * x + b, -alpha),
        _pow4_guess,
        ([0.0, _EPS, 0.0, 0.0], [1.0, _INF, _INF, 10.0]),
    ),
    # y = alpha - (alpha - beta) / (1 + (kappa x)^delta)     (Morgan-Mercer-Flodin)
    "mmf": CurveFamily(
        lambda x, alpha, beta, kappa, delta: (
            alpha - (alpha - beta) / (1.0 + _safe_power(kappa * x, delta))
        ),
        _mmf_guess,
        ([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, _INF, 10.0]),
    ),
    # y = alpha - (alpha - beta) exp(-kappa x^delta)
    "janoschek": CurveFamily(
        lambda x, alpha, beta, kappa, delta: (
            alpha - (alpha - beta) * np.exp(-kappa * _safe_power(x, delta))
        ),
        _janoschek_guess,
        ([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, _INF, 10.0]),
    ),
    # y = alpha - (alpha - beta) exp(-(kappa x)^delta)
    "weibull": CurveFamily(
        lambda x, alpha, beta, kappa, delta: (
            alpha - (alpha - beta) * np.exp(-_safe_power(kappa * x, delta))
        ),
        _janoschek_guess,
        ([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, _INF, 10.0]),
    ),
    # y = c - exp(-a x^alpha + b)
    "exp4": CurveFamily(
        lambda x, c, a, b, alpha: c - np.exp(np.minimum(-a * _safe_power(x, alpha) + b, 50.0)),
        _exp4_guess,
        ([0.0, 0.0, -_INF, 0.0], [1.0, _INF, _INF, 10.0]),
    ),
    # y = c - a / log(x + 1). Domhan et al. write log(x); with epochs counted from 1 that
    # is infinite at the first epoch, so capjax shifts x by one.
    "ilog2": CurveFamily(
        lambda x, c, a: c - a / np.log(x + 1.0),
        _ilog2_guess,
        ([0.0, 0.0], [1.0, _INF]),
    ),
    # y = a / (1 + (x / e^b)^c), increasing for c < 0
    "log_power": CurveFamily(
        lambda x, a, b, c: a / (1.0 + _safe_power(x * np.exp(-b), c)),
        _log_power_guess,
        ([0.0, -_INF, -10.0], [1.0, _INF, 0.0]),
    ),
    # y = exp(a + b/x + c log x)     (vapor pressure)
    "vap": CurveFamily(
        lambda x, a, b, c: np.exp(np.minimum(a + b / x + c * np.log(x), 50.0)),
        _vap_guess,
        ([-_INF, -_INF, -_INF], [_INF, _INF, _INF]),
    ),
    # y = y_max x^eta / (kappa^eta + x^eta)
    "hill3": CurveFamily(
        lambda x, y_max, eta, kappa: y_max / (1.0 + _safe_power(kappa / x, eta)),
        _hill3_guess,
        ([0.0, 0.0, 0.0], [1.0, 10.0, _INF]),
    ),
    # y = log(a log x + b)
    "loglog_linear": CurveFamily(
        lambda x, a, b: np.log(np.maximum(a * np.log(x) + b, 1e-300)),
        _loglog_linear_guess,
        ([0.0, _EPS], [_INF, _INF]),
    ),
}


@dataclasses.dataclass(frozen=True)
class CurveFit:
    """Result of :func:`extrapolate_curve` for one candidate.

    Attributes:
      value: combined prediction of the accuracy at ``final_epoch`` in [0, 1]; NaN when
        every family failed.
      per_family: each fitted family's own prediction at ``final_epoch``.
      weights: each fitted family's weight in ``value`` (they sum to 1).
      failed: family name -> why it was skipped.
      reason: why ``value`` is NaN (None when it is not).
    """

    value: float
    per_family: dict[str, float]
    weights: dict[str, float]
    failed: dict[str, str]
    reason: str | None = None


def _fit_family(
    family: CurveFamily, x: np.ndarray, y: np.ndarray, final_epoch: int, maxfev: int
) -> tuple[float, float]:
    """Least-squares fit of one family; returns (prediction at final_epoch, mean sq. residual).

    Raises ValueError/RuntimeError with the reason when the fit is unusable.
    """
    if x.size < family.n_params:
        raise ValueError(f"needs at least {family.n_params} epochs, got {x.size}")
    lo, hi = (np.asarray(b, dtype=float) for b in family.bounds)
    p0 = np.clip(np.asarray(family.guess(x, y), dtype=float), lo, hi)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", OptimizeWarning)
        theta, _ = curve_fit(family.fn, x, y, p0=p0, bounds=(lo, hi), maxfev=maxfev)
        fitted = family.fn(x, *theta)
        value = float(family.fn(np.asarray(float(final_epoch)), *theta))
    mse = float(np.mean((fitted - y) ** 2))
    if not (np.isfinite(value) and np.isfinite(mse)):
        raise ValueError("fit is not finite")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"extrapolates outside [0, 1] (to {value:.6g})")
    return value, mse


def _extrapolate_one(
    acc: np.ndarray,
    final_epoch: int,
    names: Sequence[str],
    weighting: str,
    mse_floor: float,
    maxfev: int,
) -> CurveFit:
    epochs = np.arange(1, acc.size + 1, dtype=float)
    seen = np.isfinite(acc)
    x, y = epochs[seen], acc[seen]
    if x.size < 2:
        reason = f"only {x.size} finite epoch(s); extrapolation needs at least 2"
        return CurveFit(float("nan"), {}, {}, dict.fromkeys(names, reason), reason)
    values: dict[str, float] = {}
    mses: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in names:
        try:
            values[name], mses[name] = _fit_family(FAMILIES[name], x, y, final_epoch, maxfev)
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as err:
            failed[name] = str(err)
    if not values:
        return CurveFit(float("nan"), {}, {}, failed, "every family failed to fit")
    if weighting == "equal":
        raw = dict.fromkeys(values, 1.0)
    else:
        raw = {name: 1.0 / max(mse, mse_floor) for name, mse in mses.items()}
    total = sum(raw.values())
    weights = {name: w / total for name, w in raw.items()}
    value = float(np.clip(sum(weights[n] * values[n] for n in values), 0.0, 1.0))
    return CurveFit(value, values, weights, failed)


def extrapolate_curve(
    acc: Any,
    final_epoch: int,
    *,
    families: Sequence[str] | None = None,
    weighting: Literal["equal", "inverse_mse"] = "equal",
    mse_floor: float = 1e-8,
    maxfev: int = 500,
) -> CurveFit | list[CurveFit]:
    """Predict the accuracy at ``final_epoch`` by extrapolating the early curve (docs/method.md §4).

    Each family of :data:`FAMILIES` (Domhan et al. 2015, Table 1) is fitted by bounded
    least squares (``scipy.optimize.curve_fit``, trust-region reflective, at most
    ``maxfev`` evaluations) to the observed points (epoch t, acc_t), t = 1..T, NaN
    epochs skipped, and evaluated at ``final_epoch``. A family is skipped, with its
    reason, when it has more parameters than there are observed epochs, does not
    converge, or extrapolates outside [0, 1]. The rest are averaged:

      ``value = clip(sum_f w_f yhat_f(final_epoch), 0, 1)``

    with ``w_f`` equal (default: flexible families fit the early noise best, so inverse
    residual weights tend to favour the most over-fitted one) or proportional to
    ``1 / max(MSE_f, mse_floor)`` (``weighting="inverse_mse"``). Domhan et al. weight the
    families by MCMC over a combined model; both choices here are cheap stand-ins.

    Never raises on a candidate that cannot be fitted (returns NaN with the reason), so a
    sweep over a zoo always completes; raises :class:`CapjaxInputError` only for bad input.

    Args:
      acc: (T,) or (n_candidates, T) accuracy fractions in [0, 1], NaN-padded; T >= 2.
      final_epoch: epoch at which to predict (the end of full training), >= 1.
      families: names from :data:`FAMILIES` to use; all of them by default.
      weighting: "equal" or "inverse_mse".
      mse_floor: lower bound on a family's MSE in inverse-MSE weighting, so an exact fit
        (as many parameters as points) cannot take all the weight.
      maxfev: cap on function evaluations per family fit.

    Returns:
      a :class:`CurveFit` for (T,) input, a list of them for (n_candidates, T) input.
    """
    curves = _curves(check_accuracy("acc", acc), "acc")
    if curves.shape[-1] < 2:
        raise CapjaxInputError(
            f"acc covers {curves.shape[-1]} epoch; extrapolating a curve needs at least 2"
        )
    if isinstance(final_epoch, bool) or not isinstance(final_epoch, int | np.integer):
        raise CapjaxInputError(f"final_epoch={final_epoch!r}; pass a whole number of epochs")
    if final_epoch < 1:
        raise CapjaxInputError(f"final_epoch={final_epoch}; epochs count from 1")
    names = list(FAMILIES) if families is None else list(families)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown or not names:
        raise CapjaxInputError(
            f"unknown curve families {unknown or names}; choose from {sorted(FAMILIES)}"
        )
    if weighting not in ("equal", "inverse_mse"):
        raise CapjaxInputError(f"weighting={weighting!r}; pass 'equal' or 'inverse_mse'")
    fits = [
        _extrapolate_one(row, int(final_epoch), names, weighting, mse_floor, maxfev)
        for row in np.atleast_2d(curves)
    ]
    return fits[0] if curves.ndim == 1 else fits


def curve_extrapolation(
    val_acc: Any, budget: int, final_epoch: int, **kwargs: Any
) -> np.ndarray | float:
    """The extrapolation baseline as a score: predicted final accuracy from epochs 1..budget.

    Same signature convention as :func:`early_val_accuracy`; higher = better; NaN where
    every family failed. ``kwargs`` go to :func:`extrapolate_curve`.

    Args:
      val_acc: (T,) or (n, T) validation accuracy fractions, NaN-padded.
      budget: number of early epochs to fit, >= 2.
      final_epoch: epoch at which to predict.
    """
    window = _window(_curves(val_acc, "val_acc"), budget, "val_acc")
    fits = extrapolate_curve(window, final_epoch, **kwargs)
    if isinstance(fits, CurveFit):
        return fits.value
    return np.array([fit.value for fit in fits])
