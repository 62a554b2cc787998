"""capjax's selection engine: rounds of training directed by a joint posterior (docs/method.md §6).

A prototype policy on a :class:`~capjax.selection.view.PaidView`, simulated like the
baselines; ``capjax select`` does not use it yet.

**The joint posterior.** In logit space, ``y_c(e) = logit(val_acc_c(e))``. A candidate at
epoch ``e`` is described by ``phi_c(e) = [1, y_c(e), y_c(e) - y_c(e - 1), log(e + 1)]``,
optionally followed by beta_eff's and the weight signals' change since epoch 0
(:data:`FEATURES`).
Its gain to a later epoch ``e'`` is modelled as

    y_c(e') - y_c(e) = h(e, e') * (w . phi_c(e)) + noise,    h(e, e') = log((e' + 1) / (e + 1)),

one Bayesian linear model for every candidate (:func:`capjax.bayes.regression_draws`,
the fast path). Its data are the pairs that candidates trained further than others
provide: for every candidate paid up to ``p`` and each ``e`` in ``1, 2, 4, ... < p``, the
pair (phi_c(e), y_c(p) - y_c(e)). Finished candidates are references like any other;
with no pair yet, every candidate's gain is N(0, 1) per log-epoch of horizon, the same
size for all, so the order of the current accuracies stands. The shared ``w`` makes the candidates'
draws of their final ``y_c(full)`` joint; the draws go back through the sigmoid, so
every mean and interval lies in [0, 1]. A candidate trained to the end is measured: its
draws are its final validation accuracy.

**Where the next epochs go** (:func:`allocate`). With ``l`` the leader (highest posterior
mean), a candidate's value is its expected opportunity loss ``E[(f_c - f_l)^+]`` (the
leader's own is ``E[(max_{j != l} f_j - f_l)^+]``): how much choosing the leader now could
cost because of what ``c`` might still become. Each round trains, by value per training
pass, candidates to twice their epochs (at least one more, at most ``full``). An
uncertain candidate with a lower mean can have a larger value than a certain one with a
higher mean: that is what halving by rank cannot do. Candidates worth less than
``HOPELESS`` stop.

**Stopping.** When the leader's P(best) passes ``p_best_stop``, when nothing is worth
training, or when what is left of the budget is what finishing the leader costs, the
leader is trained to the end; what budget is left then finishes the next candidates by
P(best), and the best finished one by validation accuracy is chosen.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit
from scipy.special import logit as _logit

from capjax.base.validation import CapjaxInputError
from capjax.bayes.decision import prob_best
from capjax.bayes.regression import regression_draws
from capjax.selection.policies import Outcome
from capjax.selection.view import PaidView

LOGIT_EPS = 1e-3
"""Accuracies are clipped to [LOGIT_EPS, 1 - LOGIT_EPS] before the logit."""
HOPELESS = 1e-4
"""A candidate whose expected opportunity loss is below this (accuracy) is not trained."""
NUM_DRAWS = 1000


def _logit_acc(view: PaidView, epoch: int, candidates: np.ndarray) -> np.ndarray:
    acc = view.read("val_acc", epoch, candidates)
    # a diverged candidate reads as chance-level failure: far below any healthy one
    return _logit(np.clip(np.where(np.isfinite(acc), acc, 0.0), LOGIT_EPS, 1 - LOGIT_EPS))


FEATURES = {
    "curve": ("one", "logit_acc", "logit_slope", "log_epoch"),
    "beta": ("beta_hessian", "beta_coupling"),
    "weights": ("l2_norm", "logme"),
}
"""Feature groups of ``phi_c(e)``: the learning curve (always), beta_eff's change since
epoch 0 (both interactions, ``asinh`` of beta over its median size at epoch 0), and the
change since epoch 0 of the weight norm and of LogME. A value the sweep did not record is 0."""


def _change(view: PaidView, field: str, epoch: int, candidates: np.ndarray) -> np.ndarray:
    """``asinh(x(epoch) / s) - asinh(x(0) / s)`` with ``s`` the median ``|x(0)|`` of every candidate."""
    start_all = view.read(field, 0, np.arange(len(view)))
    scale = np.nanmedian(np.abs(start_all)) if np.isfinite(start_all).any() else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    now = np.arcsinh(view.read(field, epoch, candidates) / scale)
    return np.nan_to_num(now - np.arcsinh(start_all[np.asarray(candidates)] / scale))


def _features(view: PaidView, epoch: int, candidates: np.ndarray, groups=("curve",)) -> np.ndarray:
    """``(len(candidates), F)`` rows ``phi_c(epoch)`` of the feature ``groups``; every
    candidate is paid to ``epoch``."""
    y = _logit_acc(view, epoch, candidates)
    cols = [np.ones_like(y), y, y - _logit_acc(view, epoch - 1, candidates), np.full_like(y, math.log(epoch + 1))]
    for group in groups[1:]:
        cols += [_change(view, field, epoch, candidates) for field in FEATURES[group]]
    return np.stack(cols, axis=1)


def _feature_names(groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for group in groups for name in FEATURES[group])


def _horizon(e: np.ndarray | int, later: np.ndarray | int) -> np.ndarray:
    return np.log((np.asarray(later) + 1.0) / (np.asarray(e) + 1.0))


def _pairs(view: PaidView, groups: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``h * phi_c(e)`` and gains ``y_c(p) - y_c(e)`` from every candidate paid to ``p >= 2``."""
    rows, gains = [], []
    for c in np.flatnonzero(view.paid >= 2):
        p = int(view.paid[c])
        y_p = _logit_acc(view, p, [c])[0]
        e = 1
        while e < p:
            phi = _features(view, e, np.array([c]), groups)[0]
            rows.append(_horizon(e, p) * phi)
            gains.append(y_p - phi[1])
            e *= 2
    width = len(_feature_names(groups))
    return np.array(rows).reshape(-1, width), np.array(gains)


def _padded(rows: np.ndarray, gains: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows padded to a power of two with weight 0, so each size compiles once."""
    n = len(gains)
    size = 1 << max(3, (n - 1).bit_length())
    weights = np.zeros(size)
    weights[:n] = 1.0
    pad = size - n
    return np.concatenate([rows, np.zeros((pad, rows.shape[1]))]), np.concatenate([gains, np.zeros(pad)]), weights


def posterior(view: PaidView, seed: int = 0, groups: tuple[str, ...] = ("curve",)) -> np.ndarray:
    """``(S, C)`` joint draws of every candidate's final validation accuracy from what was paid.

    Every candidate must be paid to at least one epoch.
    """
    full = view.full_epochs
    everyone = np.arange(len(view))
    paid = view.paid
    draws = np.empty((NUM_DRAWS, len(view)))
    done = paid >= full
    if done.any():
        draws[:, done] = view.read("val_acc", full, everyone[done])[None]
    open_ = everyone[~done]
    if open_.size:
        queries = np.stack([_horizon(paid[c], full) * _features(view, int(paid[c]), np.array([c]), groups)[0]
                            for c in open_])
        current = np.array([_logit_acc(view, int(paid[c]), [c])[0] for c in open_])
        rows, gains = _pairs(view, groups)
        if len(gains):
            F, y, w = _padded(rows, gains)
            samples, *_ = regression_draws(F, y, queries, intercept="ridge", num_samples=NUM_DRAWS, key=seed,
                                           weights=w)
            gain = np.asarray(samples, dtype=float)
        else:
            # nothing trained past epoch 1 yet: an unknown gain of the same size for every
            # candidate, N(0, 1) per log-epoch of horizon, so the order of the means stands
            rng = np.random.default_rng(seed)
            gain = rng.standard_normal((NUM_DRAWS, len(open_))) * _horizon(paid[open_], full)[None]
        draws[:, open_] = expit(current[None] + gain)
    return np.where(np.isfinite(draws), draws, 0.0)


def opportunity_loss(draws: np.ndarray) -> tuple[int, np.ndarray]:
    """The leader (highest posterior mean) and each candidate's ``E[(f_c - f_l)^+]``, ``(C,)``.

    The leader's own value is ``E[(max_{j != l} f_j - f_l)^+]``.
    """
    leader = int(np.argmax(draws.mean(axis=0)))
    f_l = draws[:, leader]
    value = np.maximum(draws - f_l[:, None], 0.0).mean(axis=0)
    others = np.delete(draws, leader, axis=1)
    value[leader] = np.maximum(others.max(axis=1) - f_l, 0.0).mean() if others.size else 0.0
    return leader, value


def allocate(view: PaidView, draws: np.ndarray, room: float) -> tuple[int, list[tuple[int, int]]]:
    """The leader and this round's ``[(candidate, epoch), ...]``, by value per training pass.

    Each candidate not yet finished may go to ``min(full, max(2 p, p + 1))``; candidates are
    taken in order of ``value / passes`` while their passes fit in ``room``, skipping the
    hopeless (value below :data:`HOPELESS`).
    """
    leader, value = opportunity_loss(draws)
    full = view.full_epochs
    target = np.minimum(full, np.maximum(2 * view.paid, view.paid + 1))
    cost = (target - view.paid) * view.passes_per_epoch
    order = [c for c in np.argsort(-value / np.maximum(cost, 1.0), kind="stable")
             if view.paid[c] < full and value[c] >= HOPELESS]
    plan, spent = [], 0.0
    for c in order:
        if spent + cost[c] <= room:
            plan.append((int(c), int(target[c])))
            spent += cost[c]
    return leader, plan


def engine(view: PaidView, budget: float, rng: np.random.Generator | None = None,
           p_best_stop: float = 0.95, seed: int = 0, features: tuple[str, ...] = ("curve",)) -> Outcome:
    """Select under ``budget`` (a fraction of training everyone fully) in rounds; see the module.

    The first round trains every candidate one epoch; the budget must also hold finishing
    one candidate, so the smallest that works is ``(N + full - 1) / (N full)``.
    ``features`` are groups of :data:`FEATURES`, ``"curve"`` first; the others are the
    ablations of the policy benchmark.
    """
    if not features or features[0] != "curve" or not set(features) <= set(FEATURES):
        raise CapjaxInputError(f"features={features!r}: start with 'curve', then any of {sorted(FEATURES)[1:]}")
    n, full = len(view), view.full_epochs
    total = budget * view.full_cost
    everyone = np.arange(n)
    if (n + full - 1) * view.passes_per_epoch.max() > total:
        needs = view.epochs_fraction(n + full - 1)
        return Outcome("capjax", None, 0.0, view.paid.copy(), f"capjax needs a budget of at least {needs:.1%} here")
    view.train(everyone, 1)
    safe = None  # a leader whose finish the budget still holds
    for _ in range(10 * full):  # rounds; each pays for at least one epoch or stops
        draws = posterior(view, seed, features)
        leader, _ = opportunity_loss(draws)
        room = total - view.spent - _finish_cost(view, leader)
        if room < 0:
            break
        safe = leader
        if prob_best(draws)[leader] >= p_best_stop:
            break
        _, plan = allocate(view, draws, room)
        if not plan:
            break
        for c, epoch in plan:
            view.train([c], epoch)
    draws = posterior(view, seed, features)
    leader, _ = opportunity_loss(draws)
    if view.spent + _finish_cost(view, leader) > total:
        leader = safe
    view.train([leader], full)
    # what is left finishes the next most likely best: a measured final beats a forecast
    p_best = prob_best(draws)
    for c in np.argsort(-p_best, kind="stable"):
        if view.paid[c] < full and p_best[c] > 0 and view.spent + _finish_cost(view, c) <= total:
            view.train([c], full)
    finished = np.flatnonzero(view.paid >= full)
    chosen = int(finished[np.argmax(view.val_acc(full, finished))])
    return Outcome("capjax", chosen, view.fraction, view.paid.copy())


def _finish_cost(view: PaidView, c: int) -> float:
    return float((view.full_epochs - view.paid[c]) * view.passes_per_epoch[c])
