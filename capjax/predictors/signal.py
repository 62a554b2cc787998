"""Predictors from one recorded signal each (docs/method.md §3, §4), and their direction.

* one per scalar signal (:data:`SCALAR_SIGNALS`): the signal at the budget epoch (epoch 0
  for zero-cost proxies) times a direction chosen by :func:`signal_direction`: the sign
  of Kendall's tau against the final accuracy of the *reference* candidates when at least
  :data:`MIN_DIRECTION_REFERENCES` have both, else the literature's direction;
* ``ph_dim``: the persistent-homology dimension of the weight trajectory over epochs
  0..budget, from the sweep's snapshots, directed the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import jax
import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.predictors.registry import Forecast, Needs, Task, from_scores, register, with_reasons
from capjax.records.fields import ZERO_COST_FIELDS
from capjax.records.sweep import load_snapshots
from capjax.signals.topology import ph_dimension, subset_sizes

MIN_DIRECTION_REFERENCES = 3
"""Reference candidates (finite signal and truth) needed to learn a signal's direction."""


def reference_truth(task: Task) -> np.ndarray:
    """``(C,)`` reference truth, NaN where unknown; checks its shape."""
    n = len(task.sweep.names)
    if task.reference is None:
        return np.full(n, np.nan)
    ref = np.asarray(task.reference, dtype=float)
    if ref.shape != (n,):
        raise CapjaxInputError(
            f"task.reference has shape {ref.shape} for {n} candidates; pass one final "
            "accuracy per candidate in the sweep's order (NaN for non-reference ones)"
        )
    return ref


def signal_direction(
    values: np.ndarray, reference: np.ndarray, higher_is_better: bool
) -> tuple[float, str]:
    """Whether higher ``values`` predict higher final accuracy: ``(+1 or -1, how decided)``.

    With at least :data:`MIN_DIRECTION_REFERENCES` candidates whose value and reference
    truth are both finite, the sign of Kendall's tau between them on those candidates
    only; otherwise (or when tau is 0 or undefined, e.g. a constant signal) the
    literature's direction ``higher_is_better``.

    Args:
      values: ``(C,)`` the signal per candidate.
      reference: ``(C,)`` true final accuracy of the reference candidates, NaN elsewhere.
      higher_is_better: the literature's direction.
    """
    ok = np.isfinite(values) & np.isfinite(reference)
    if ok.sum() >= MIN_DIRECTION_REFERENCES:
        from scipy.stats import kendalltau

        tau = kendalltau(values[ok], reference[ok]).statistic
        if np.isfinite(tau) and tau != 0:
            return float(np.sign(tau)), f"Kendall tau {tau:+.2f} on {ok.sum()} reference candidates"
    return (1.0 if higher_is_better else -1.0), "literature"


def _directed(
    task: Task,
    values: np.ndarray,
    higher_is_better: bool,
    why: str,
    reasons: Mapping[str, str] | None = None,
) -> Forecast:
    """Score = direction x value; NaN values get ``reasons[name]`` or ``why``."""
    sign, _ = signal_direction(values, reference_truth(task), higher_is_better)
    return with_reasons(task, from_scores(task, sign * values, why), reasons or {})


# ---------------------------------------------------------------------------------------
# Scalar-signal predictors


@dataclasses.dataclass(frozen=True)
class ScalarSignal:
    """A recorded scalar read as a predictor.

    Attributes:
      field: the record field.
      higher_is_better: the literature's direction, used without enough references.
      source: where that direction comes from.
      at_init: read at epoch 0 (zero-cost proxies) instead of at the budget epoch.
    """

    field: str
    higher_is_better: bool
    source: str
    at_init: bool = False


_NO_DIRECTION = "no rank rule is given; higher is taken as better until references exist"
_ZERO_COST = "zero-cost proxies score higher for better architectures (Abdelfattah et al. 2021)"

SCALAR_SIGNALS: dict[str, ScalarSignal] = {
    "l2_norm": ScalarSignal(
        "l2_norm",
        False,
        "norm-based capacity (Neyshabur et al. 2015): a smaller norm bounds a smaller "
        "generalisation gap; Tan et al. (arXiv 2406.02234) find it beats PH dimensions",
    ),
    "spectral_alpha": ScalarSignal(
        "spectral_alpha",
        False,
        "heavier tails (smaller alpha) go with better-trained layers (Martin & Mahoney 2021)",
    ),
    "strength": ScalarSignal("strength", True, "La Malfa et al.: " + _NO_DIRECTION),
    "fluctuation": ScalarSignal("fluctuation", True, "La Malfa et al.: " + _NO_DIRECTION),
    "rolled_degree": ScalarSignal("rolled_degree_mean", True, "Vahedian et al.: " + _NO_DIRECTION),
    "fractal": ScalarSignal("fractal", True, "Moharil et al.: " + _NO_DIRECTION),
    "logme": ScalarSignal("logme", True, "higher evidence = more transferable (You et al. 2021)"),
    "hscore": ScalarSignal("hscore", True, "higher = more transferable (Bao et al. 2019)"),
    "transrate": ScalarSignal("transrate", True, "higher = more transferable (Huang et al. 2022)"),
    **{f: ScalarSignal(f, True, _ZERO_COST, at_init=True) for f in ZERO_COST_FIELDS},
}
"""Predictor name -> the scalar signal it ranks by (one registered predictor each)."""


def scalar_forecast(task: Task, signal: ScalarSignal) -> Forecast:
    """Rank candidates by ``signal`` at the budget epoch (epoch 0 if ``at_init``), directed.

    The direction is :func:`signal_direction` on the reference candidates. Candidates
    without a finite value are NaN with the reason.
    """
    epoch = 0 if signal.at_init else task.budget
    values = task.sweep.initial(signal.field) if signal.at_init else task.early(signal.field)[:, -1]
    why = (
        f"no finite {signal.field} at epoch {epoch} (record it with "
        f"capjax.training.record_fns(['{signal.field}']))"
    )
    return _directed(task, values, signal.higher_is_better, why)


for _name, _signal in SCALAR_SIGNALS.items():
    register(_name, Needs(fields=(_signal.field,)))(
        functools.update_wrapper(functools.partial(scalar_forecast, signal=_signal), scalar_forecast)
    )


# ---------------------------------------------------------------------------------------
# Persistent-homology dimension of the weight trajectory

MIN_PH_ITERATES = 5
"""Snapshots (epochs 0..budget, so budget >= 4) below which ``ph_dim`` is not estimated.

The dimension is a log-log slope of MST energy over subset sizes; with fewer iterates it
rests on two or three sizes of two or three points.
"""


def trajectory_ph_dim(task: Task, name: str) -> tuple[float, str | None]:
    """PH_0 dimension of one candidate's snapshots over epochs 0..budget; ``(value, reason)``.

    Birdal et al. (2021) via :func:`capjax.signals.topology.ph_dimension` with
    ``alpha = 1``, the subset sizes of :func:`capjax.signals.topology.subset_sizes` from 2
    up, and random subsets keyed by ``task.seed`` (the same draws for every candidate).
    The points are the flattened ``{"backbone", "head"}`` parameters saved after each
    epoch (the probe is frozen). Birdal et al. read late iterates; here the trajectory is
    the early one the budget allows.
    """
    try:
        epochs, flat = load_snapshots(task.sweep.out_dir, name)
    except CapjaxInputError as err:
        return math.nan, str(err)
    points = flat[epochs <= task.budget]
    if len(points) < MIN_PH_ITERATES:
        return math.nan, (
            f"{len(points)} snapshot(s) in epochs 0..{task.budget}; the PH dimension needs "
            f">= {MIN_PH_ITERATES} (a budget of >= {MIN_PH_ITERATES - 1} epochs)"
        )
    try:
        value = float(ph_dimension(points, jax.random.key(task.seed), sizes=subset_sizes(len(points), min_size=2)))
    except CapjaxInputError as err:
        return math.nan, str(err)
    if not (math.isfinite(value) and value > 0):
        # alpha / (1 - m) with m >= 1: the MST energy grew at least linearly in n, as for
        # iterates spread evenly in more dimensions than so few points can resolve.
        return math.nan, (
            "the MST energy grew at least linearly with the number of iterates (slope >= 1), "
            "so the PH dimension is unbounded; a longer budget gives more iterates"
        )
    return value, None


@register("ph_dim", Needs(snapshots=True, min_budget=MIN_PH_ITERATES - 1))
def ph_dim(task: Task) -> Forecast:
    """Persistent-homology dimension of the weight trajectory (docs/method.md §3; Tan et al.'s critique).

    Literature direction: a lower dimension bounds a smaller generalisation gap (Birdal
    et al. 2021), so lower = better without references.
    """
    pairs = [trajectory_ph_dim(task, name) for name in task.sweep.names]
    values = np.array([v for v, _ in pairs])
    reasons = {n: r for n, (_, r) in zip(task.sweep.names, pairs, strict=True) if r}
    return _directed(task, values, False, "no PH dimension", reasons)
