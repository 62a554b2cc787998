"""capjax's selection engine: rounds of training directed by a joint posterior (docs/method.md §6).

A policy on any :class:`~capjax.selection.view.View`: a :class:`PaidView` replays recorded
sweeps (the policy benchmark), a :class:`capjax.workflows.LiveView` trains for real
(``capjax select``).

**The joint posterior.** In logit space, ``y_c(e) = logit(val_acc_c(e))``. A candidate at
epoch ``e`` is described by ``phi_c(e) = [1, y_c(e), y_c(e) - y_c(e - 1), log(e + 1)]``,
optionally followed by beta_eff's and the weight signals' change since epoch 0
(:data:`FEATURES`). Its gain to a later epoch ``e'`` is modelled as a rate per log-epoch,

    y_c(e') - y_c(e) = h(e, e') * (w . phi_c(e) + noise),    h(e, e') = log((e' + 1) / (e + 1)),

so that the uncertainty of a gain grows with its horizon. It is one Bayesian linear model
for every candidate (:func:`capjax.bayes.regression_draws`, the fast path, with the noise
precision integrated out: each joint draw is scaled by one chi-square draw, a Student-t
with the pairs' degrees of freedom). Its data are the pairs that candidates trained
further than others provide: for every candidate paid up to ``p`` and each ``e`` in
``1, 2, 4, ... < p``, the pair (phi_c(e), (y_c(p) - y_c(e)) / h(e, p)). Finished
candidates are references like any other; they are the leaders, a biased sample, which
is why the unfinished ones are the bulk of the data. With fewer than :data:`MIN_DOF`
degrees of freedom, every candidate's rate is N(0, 1), the same for all, so the order of
the current accuracies stands. The shared ``w`` makes the draws of every candidate's final
``y_c(full)`` joint; the draws go back through the sigmoid, so every mean and interval
lies in [0, 1]. A candidate trained to the end is measured: its draws are its final
validation accuracy. :func:`test_draws` adds the binomial noise between validation and
test accuracy for the intervals a user reads.

**Where the next epochs go** (:func:`allocate`). With ``l`` the leader (highest posterior
mean), a candidate's value is its expected opportunity loss ``E[(f_c - f_l)^+]`` (the
leader's own is ``E[(max_{j != l} f_j - f_l)^+]``): how much choosing the leader now could
cost because of what ``c`` might still become. A move resolves the share of that value
that its horizon covers; each round takes moves (double the epochs, or finish) by value
resolved per training pass. An uncertain candidate with a lower mean can be worth more
than a certain one with a higher mean: that is what halving by rank cannot do.
Candidates worth less than :data:`HOPELESS` stop.

**What is held back** (:func:`reserve`). Once the gain model is fitted, the engine keeps
enough budget to finish the smallest set of candidates, by P(best), whose expected regret
is at most ``tolerance``; exploration spends only the rest.

**Stopping.** When the leader's P(best) passes ``p_best_stop``, when nothing is worth
training, or when the reserve is all that is left, the leader is trained to the end and
what budget remains finishes the next candidates by P(best); the best finished one by
validation accuracy is chosen.
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
from capjax.selection.view import View

LOGIT_EPS = 1e-3
"""Accuracies are clipped to [LOGIT_EPS, 1 - LOGIT_EPS] before the logit."""
HOPELESS = 1e-4
"""A candidate whose expected opportunity loss is below this (accuracy) is not trained."""
NUM_DRAWS = 1000
TOLERANCE = 0.005
"""Expected regret (accuracy) of the finishing set that the engine holds budget back for."""
MIN_DOF = 3
"""Pairs beyond the features needed before the gain model is fitted (else the prior)."""


def _logit_acc(view: View, epoch: int, candidates: np.ndarray) -> np.ndarray:
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


def _change(view: View, field: str, epoch: int, candidates: np.ndarray) -> np.ndarray:
    """``asinh(x(epoch) / s) - asinh(x(0) / s)`` with ``s`` the median ``|x(0)|`` of every candidate."""
    start_all = view.read(field, 0, np.arange(len(view)))
    scale = np.nanmedian(np.abs(start_all)) if np.isfinite(start_all).any() else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    now = np.arcsinh(view.read(field, epoch, candidates) / scale)
    return np.nan_to_num(now - np.arcsinh(start_all[np.asarray(candidates)] / scale))


def _features(view: View, epoch: int, candidates: np.ndarray, groups=("curve",)) -> np.ndarray:
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


def _pairs(view: View, groups: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``phi_c(e)`` and gain rates ``(y_c(p) - y_c(e)) / h(e, p)`` from every candidate
    paid to ``p >= 2``."""
    rows, gains = [], []
    for c in np.flatnonzero((view.paid >= 2) & ~view.failed):
        p = int(view.paid[c])
        y_p = _logit_acc(view, p, [c])[0]
        e = 1
        while e < p:
            phi = _features(view, e, np.array([c]), groups)[0]
            rows.append(phi)
            gains.append((y_p - phi[1]) / _horizon(e, p))
            e *= 2
    width = len(_feature_names(groups))
    return np.array(rows).reshape(-1, width), np.array(gains)


def _enough(rows: np.ndarray, gains: np.ndarray) -> bool:
    """Whether the pairs can fit the gain model: :data:`MIN_DOF` degrees of freedom left.

    (Also asking for pairs ending at two epochs or more was tried on the development seed:
    it kept the prior longer at 5% and then trusted an overconfident fit at 20%; worse.)"""
    return len(gains) - rows.shape[1] - 1 >= MIN_DOF


def _padded(rows: np.ndarray, gains: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows padded with weight 0 to the most pairs the view can give, so that the jitted
    regression compiles once per zoo rather than once per round."""
    n = len(gains)
    most = len(view) * max(1, math.ceil(math.log2(view.full_epochs)))
    size = 1 << max(3, (max(n, most) - 1).bit_length())
    weights = np.zeros(size)
    weights[:n] = 1.0
    pad = size - n
    return np.concatenate([rows, np.zeros((pad, rows.shape[1]))]), np.concatenate([gains, np.zeros(pad)]), weights


def fitted(view: View, groups: tuple[str, ...] = ("curve",)) -> bool:
    """Whether the pairs paid for so far are enough to fit the gain model (:data:`MIN_DOF`)."""
    return _enough(*_pairs(view, groups))


def posterior(view: View, seed: int = 0, groups: tuple[str, ...] = ("curve",)) -> np.ndarray:
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
        queries = np.stack([_features(view, int(paid[c]), np.array([c]), groups)[0] for c in open_])
        h = _horizon(paid[open_], full)
        current = np.array([_logit_acc(view, int(paid[c]), [c])[0] for c in open_])
        rows, gains = _pairs(view, groups)
        rng = np.random.default_rng(seed)
        dof = len(gains) - rows.shape[1] - 1
        if _enough(rows, gains):
            F, y, w = _padded(rows, gains, view)
            # the queries padded to every candidate too: one shape for every round
            padded = np.zeros((len(view), queries.shape[1]))
            padded[: len(open_)] = queries
            samples, _, mean, *_ = regression_draws(F, y, padded, intercept="ridge", num_samples=NUM_DRAWS,
                                                    key=seed, weights=w)
            samples = np.asarray(samples, dtype=float)[:, : len(open_)]
            mean = np.asarray(mean, dtype=float)[: len(open_)]
            # the noise precision integrated out: one chi-square scale per draw, shared by
            # every candidate so the draws stay joint (a Student-t with dof degrees of freedom)
            scale = np.sqrt(dof / rng.chisquare(dof, NUM_DRAWS))[:, None]
            gain = (mean[None] + scale * (samples - mean[None])) * h[None]
        else:
            # too few pairs to fit: an unknown rate of the same size for every candidate,
            # N(0, 1) per log-epoch of horizon, so the order of the current accuracies stands
            gain = rng.standard_normal((NUM_DRAWS, len(open_))) * h[None]
        draws[:, open_] = expit(current[None] + gain)
    draws[:, view.failed] = 0.0  # a failed candidate is never best
    return np.where(np.isfinite(draws), draws, 0.0)


def test_draws(view: View, draws: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(S, C)`` draws of every candidate's final *test* accuracy, from those of its validation accuracy.

    Validation and test accuracy are two binomial measurements of one model: the test
    accuracy adds ``p (1 - p) (1 / n_val + 1 / n_test)`` of variance, with ``n_val = n_test``
    half of :attr:`~capjax.selection.view.View.eval_examples` (no noise when unknown).
    Measured candidates get it too: their validation accuracy is not their test accuracy.
    """
    if not view.eval_examples:
        return draws
    rng = np.random.default_rng(seed + 1)
    p = np.clip(draws, 0.0, 1.0)
    noise = np.sqrt(p * (1 - p) * 4.0 / view.eval_examples) * rng.standard_normal(draws.shape)
    return np.clip(p + noise, 0.0, 1.0)


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


def allocate(view: View, draws: np.ndarray, room: float) -> tuple[int, dict[int, int]]:
    """The leader and this round's plan ``{candidate: epoch}``, by value resolved per pass.

    Each live candidate not yet finished has two moves: to double its epochs
    (``min(full, max(2 p, p + 1))``) or to finish. A move from ``p`` to ``t`` resolves the
    share ``h(p, t) / h(p, full)`` of the log-horizon left (docs/method.md §6), so it is
    worth ``value * h(p, t) / h(p, full)``, where ``value`` is the expected opportunity loss
    (:func:`opportunity_loss`). Each candidate takes its move of higher worth per training
    pass; candidates are taken in that order while their passes fit in ``room``, skipping
    the hopeless (value below :data:`HOPELESS`) and the failed.
    """
    leader, value = opportunity_loss(draws)
    full, paid = view.full_epochs, view.paid
    double = np.minimum(full, np.maximum(2 * paid, paid + 1))
    share = _horizon(paid, double) / np.maximum(_horizon(paid, full), 1e-12)
    per_pass = view.passes_per_epoch
    worth_double = value * share / np.maximum((double - paid) * per_pass, 1.0)
    worth_finish = value / np.maximum((full - paid) * per_pass, 1.0)
    target = np.where(worth_finish > worth_double, full, double)
    worth = np.maximum(worth_double, worth_finish)
    cost = (target - paid) * per_pass
    failed = view.failed
    order = [c for c in np.argsort(-worth, kind="stable")
             if paid[c] < full and value[c] >= HOPELESS and not failed[c]]
    plan, spent = {}, 0.0
    for c in order:
        if spent + cost[c] <= room:
            plan[int(c)] = int(target[c])
            spent += cost[c]
    return leader, plan


def finish_order(view: View, draws: np.ndarray) -> np.ndarray:
    """Live candidates by P(best), most likely first (those finished come first: they cost nothing)."""
    p_best = prob_best(draws) + (view.paid >= view.full_epochs)
    live = ~view.failed
    order = np.argsort(-p_best, kind="stable")
    return order[live[order]]


def reserve(view: View, draws: np.ndarray, tolerance: float, left: float) -> float:
    """Passes to hold back for finishing, out of the ``left`` that remain.

    With ``S_k`` the first ``k`` of :func:`finish_order`, finishing ``S_k`` and choosing its
    best leaves an expected regret ``E[max_j f_j - max_{c in S_k} f_c]`` under the joint
    posterior (docs/method.md §6). The engine holds back the cost of finishing the
    smallest ``S_k`` whose expected regret is at most ``tolerance`` (every live candidate
    when none is), or of as many of its first candidates as ``left`` pays for: what could
    not finish one more candidate is better spent on learning which to finish.
    """
    order = finish_order(view, draws)
    best = draws.max(axis=1, initial=0.0)[:, None]
    regret = (best - np.maximum.accumulate(draws[:, order], axis=1)).mean(axis=0)
    k = int(np.argmax(regret <= tolerance)) + 1 if (regret <= tolerance).any() else len(order)
    costs = np.cumsum([_finish_cost(view, c) for c in order[:k]])
    return float(costs[costs <= left][-1]) if (costs <= left).any() else 0.0


def engine(view: View, budget: float, rng: np.random.Generator | None = None,
           p_best_stop: float = 0.95, tolerance: float = TOLERANCE, seed: int = 0,
           features: tuple[str, ...] = ("curve",)) -> Outcome:
    """Select under ``budget`` (a fraction of training everyone fully) in rounds; see the module.

    The first round trains every candidate one epoch; the budget must also hold finishing
    one candidate, so the smallest that works is ``(N + full - 1) / (N full)``.
    ``features`` are groups of :data:`FEATURES`, ``"curve"`` first; the others are the
    ablations of the policy benchmark. The outcome carries the last posterior's draws and
    P(best) after every round.
    """
    if not features or features[0] != "curve" or not set(features) <= set(FEATURES):
        raise CapjaxInputError(f"features={features!r}: start with 'curve', then any of {sorted(FEATURES)[1:]}")
    n, full = len(view), view.full_epochs
    total = budget * view.full_cost
    if (n + full - 1) * view.passes_per_epoch.max() > total:
        needs = view.epochs_fraction(n + full - 1)
        return Outcome("capjax", None, 0.0, view.paid.copy(), f"capjax needs a budget of at least {needs:.1%} here")
    view.train_to({c: 1 for c in range(n)})
    rounds = []
    safe = None  # a leader whose finish the budget still holds
    for _ in range(10 * full):  # rounds; each pays for at least one epoch or stops
        draws = posterior(view, seed, features)
        p_best = prob_best(draws)
        rounds.append((view.fraction, p_best))
        leader, _ = opportunity_loss(draws)
        if total - view.spent - _finish_cost(view, leader) < 0:
            break
        safe = leader
        # the prior is too vague to say what finishing set suffices: hold back only the
        # leader's finish until the gain model is fitted
        left = total - view.spent
        held = reserve(view, test_draws(view, draws, seed), tolerance, left) if fitted(view, features) else 0.0
        room = left - max(_finish_cost(view, leader), held)
        if room <= 0:
            break
        if p_best[leader] >= p_best_stop:
            break
        _, plan = allocate(view, draws, room)
        if not plan:
            break
        view.train_to(plan)
    draws = posterior(view, seed, features)
    leader, _ = opportunity_loss(draws)
    if view.spent + _finish_cost(view, leader) > total:
        leader = safe
    # the leader to the end, then, with what is left, the next most likely best: a measured
    # final beats a forecast. Decided at once, so that a live view trains them together.
    p_best = prob_best(draws)
    finish, left = [leader], total - view.spent - _finish_cost(view, leader)
    for c in finish_order(view, draws):
        cost = _finish_cost(view, c)
        if c != leader and view.paid[c] < full and p_best[c] > 0 and cost <= left:
            finish.append(int(c))
            left -= cost
    view.train_to({c: full for c in finish})
    draws = posterior(view, seed, features)
    rounds.append((view.fraction, prob_best(draws)))
    finished = np.flatnonzero((view.paid >= full) & ~view.failed)
    if not finished.size:
        return Outcome("capjax", None, view.fraction, view.paid.copy(), "every candidate it finished diverged",
                       draws, tuple(rounds))
    chosen = int(finished[np.argmax(view.val_acc(full, finished))])
    return Outcome("capjax", chosen, view.fraction, view.paid.copy(), None, draws, tuple(rounds))


def _finish_cost(view: View, c: int) -> float:
    return float((view.full_epochs - view.paid[c]) * view.passes_per_epoch[c])
