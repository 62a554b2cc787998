"""capjax's selection engine: halving's rungs, survivors chosen by a joint posterior (docs/method.md §6).

A policy on any :class:`~capjax.selection.view.View`: a :class:`PaidView` replays recorded
sweeps (the policy benchmark), a :class:`capjax.workflows.LiveView` trains for real
(``capjax select``).

**The joint posterior.** In logit space, ``y_c(e) = logit(val_acc_c(e))``. A gain from
epoch ``e`` to a later ``t`` is modelled as

    y_c(t) - y_c(e) = h (w . phi_c(e, t)) + h^gamma eps,    h = h(e, t) = log((t + 1) / (e + 1)),

with ``phi_c(e, t) = [1, y_c(e), y_c(e) - y_c(e - 1), (log(e + 1) + log(t + 1)) / 2]``,
optionally followed by beta_eff's and the weight signals' change since epoch 0
(:data:`FEATURES`): a rate per log-epoch read at the interval's midpoint, and noise whose
sd grows as ``h^gamma`` (the ridge intercept adds a constant ``h^gamma theta_0``, a drift
that grows like the noise). It is one Bayesian linear model for every candidate
(:func:`capjax.bayes.regression_draws`, the fast path, with the noise precision
integrated out: each joint draw is scaled by one chi-square draw, a Student-t with the
pairs' degrees of freedom). ``gamma`` is averaged over :data:`GAMMAS` by the evidence
(:func:`exponent_weights`). Its data are the pairs between consecutive stops of every
candidate (:attr:`~capjax.selection.view.View.stops`), so partially trained candidates
are references too; longer spans are left out because surviving them selected on their
gains. Queries are clipped to the range of states the pairs showed. With fewer than
:data:`MIN_DOF` degrees of freedom, every gain is normal with mean 0 and sd
``h^PRIOR_GAMMA``, the same for all, so the order of the current accuracies stands. The
draws go back through the sigmoid, so every mean and interval lies in [0, 1]. A candidate trained to the end is
measured: its draws are its final validation accuracy. :func:`test_draws` adds the
binomial noise between validation and test accuracy for the intervals a user reads.

**Where the epochs go** (:func:`engine`). The rungs are those of successive halving fitted
to the budget (:func:`~capjax.selection.policies.fitted_pool`: ``eta = 3`` with the
largest first rung, on the whole pool where that fits, else on the largest random part of
it that fits, as Hyperband's most exploratory bracket). After each rung
the posterior is refitted and the next rung's survivors are those of highest
:func:`knowledge_gradient` for the move (:func:`survivors`): the expected gain in the
value of the choice from what the move resolves. The leader always survives; hopeless
candidates (expected opportunity loss below :data:`HOPELESS`) stop. Successive halving
is this engine with the knowledge gradient replaced by the rank of current accuracy, and
without the early stop, the pruning of the hopeless and the extra finishes.

**Stopping.** When the leader's P(best) passes ``p_best_stop``, or after the last rung,
the leader among the candidates the budget can still finish is trained to the end, and
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
from capjax.bayes.regression import log_evidence, regression_draws
from capjax.selection.policies import Outcome, fitted_pool
from capjax.selection.view import View, smallest_epochs

LOGIT_EPS = 1e-3
"""Accuracies are clipped to [LOGIT_EPS, 1 - LOGIT_EPS] before the logit."""
HOPELESS = 1e-4
"""A candidate whose expected opportunity loss is below this (accuracy) is not trained."""
NUM_DRAWS = 1000
MIN_DOF = 3
"""Pairs beyond the features needed before the gain model is fitted (else the prior)."""
GAMMAS = (0.25, 0.5, 0.75, 1.0)
"""Exponents of the horizon in the gain noise, ``sd ∝ h^gamma``, that the posterior averages over
(0.5 is a random walk in log-epochs; 1 an unknown constant rate)."""
PRIOR_GAMMA = 1.0
"""The exponent before the gain model is fitted: an unknown rate N(0, 1) per log-epoch, the
widest of :data:`GAMMAS` over long horizons."""


def _logit_acc(view: View, epoch: int, candidates: np.ndarray) -> np.ndarray:
    acc = view.read("val_acc", epoch, candidates)
    # a diverged candidate reads as chance-level failure: far below any healthy one
    return _logit(np.clip(np.where(np.isfinite(acc), acc, 0.0), LOGIT_EPS, 1 - LOGIT_EPS))


FEATURES = {
    "curve": ("one", "logit_acc", "logit_slope", "log_epoch_mid"),
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


def _features(view: View, epoch: int, candidates: np.ndarray, groups=("curve",), later: int | None = None
              ) -> np.ndarray:
    """``(len(candidates), F)`` rows ``phi_c(epoch)`` of the feature ``groups`` for a gain from
    ``epoch`` to ``later`` (default: the end); every candidate is paid to ``epoch``.

    ``log_epoch_mid`` is the midpoint ``(log(epoch + 1) + log(later + 1)) / 2`` of the
    interval: a rate per log-epoch that changes linearly in log-epoch integrates to the
    rate at the midpoint times the horizon, so learning curves that slow down are
    extrapolated at the rate of the interval ahead, not of its start.
    """
    later = view.full_epochs if later is None else later
    y = _logit_acc(view, epoch, candidates)
    mid = 0.5 * (math.log(epoch + 1) + math.log(later + 1))
    cols = [np.ones_like(y), y, y - _logit_acc(view, epoch - 1, candidates), np.full_like(y, mid)]
    for group in groups[1:]:
        cols += [_change(view, field, epoch, candidates) for field in FEATURES[group]]
    return np.stack(cols, axis=1)


MIDPOINT = FEATURES["curve"].index("log_epoch_mid")


def _feature_names(groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for group in groups for name in FEATURES[group])


def _horizon(e: np.ndarray | int, later: np.ndarray | int) -> np.ndarray:
    return np.log((np.asarray(later) + 1.0) / (np.asarray(e) + 1.0))


def _pairs(view: View, groups: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``phi_c(e)``, logit gains ``y_c(t) - y_c(e)`` and horizons ``h(e, t)`` for every
    two consecutive stops ``e < t`` of every live candidate (:attr:`View.stops`).

    Only consecutive stops: the move from ``e`` to ``t`` was chosen on what was known at
    ``e``, whereas a candidate that reached ``t`` through later stops was kept because of
    its gains on the way, so longer pairs would teach the model the survivors' optimism.
    """
    rows, gains, horizons = [], [], []
    for c in np.flatnonzero((view.paid >= 2) & ~view.failed):
        stops = view.stops[c]
        for e, t in zip(stops[:-1], stops[1:], strict=True):
            phi = _features(view, e, np.array([c]), groups, later=t)[0]
            rows.append(phi)
            gains.append(_logit_acc(view, t, [c])[0] - phi[1])
            horizons.append(_horizon(e, t))
    width = len(_feature_names(groups))
    return np.array(rows).reshape(-1, width), np.array(gains), np.array(horizons)


def _scaled(rows: np.ndarray, gains: np.ndarray, horizons: np.ndarray, gamma: float):
    """The gain model ``g = h (w . phi) + h^gamma eps`` divided by ``h^gamma``: a homoscedastic
    regression of ``g / h^gamma`` on ``h^(1 - gamma) phi``."""
    return rows * (horizons ** (1.0 - gamma))[:, None], gains / horizons**gamma


def _enough(rows: np.ndarray, gains: np.ndarray) -> bool:
    """Whether the pairs can fit the gain model: :data:`MIN_DOF` degrees of freedom left."""
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


def exponent_weights(view: View, groups: tuple[str, ...] = ("curve",)) -> np.ndarray:
    """Posterior weights ``(len(GAMMAS),)`` of the horizon exponents :data:`GAMMAS` of the gain
    noise, from the pairs paid so far under a uniform prior (all on :data:`PRIOR_GAMMA`
    before the gain model is fitted); docs/method.md §6.

    The evidence of the gains is that of the scaled regression (:func:`_scaled`) times the
    Jacobian ``prod h^-gamma`` of the scaling, so the alternatives are comparable. With
    pairs of a single horizon the exponent is not identified and the weights stay spread.
    """
    return _exponent_weights(*_pairs(view, groups), view)


def _exponent_weights(rows: np.ndarray, gains: np.ndarray, horizons: np.ndarray, view: View) -> np.ndarray:
    if not _enough(rows, gains):
        return (np.asarray(GAMMAS) == PRIOR_GAMMA).astype(float)
    scaled = [_padded(*_scaled(rows, gains, horizons, g), view) for g in GAMMAS]
    F, y, w = (np.stack(part) for part in zip(*scaled, strict=True))
    log_ev = log_evidence(F, y, w) - np.asarray(GAMMAS) * np.log(horizons).sum()
    # near noise-free gains can leave a float32 evidence undefined: that model drops out
    log_ev = np.where(np.isfinite(log_ev), log_ev, -np.inf)
    if not np.isfinite(log_ev).any():
        return (np.asarray(GAMMAS) == PRIOR_GAMMA).astype(float)
    weights = np.exp(log_ev - log_ev.max())
    return weights / weights.sum()


def posterior(view: View, seed: int = 0, groups: tuple[str, ...] = ("curve",),
              weights: np.ndarray | None = None) -> np.ndarray:
    """``(S, C)`` joint draws of every candidate's final validation accuracy from what was paid.

    ``weights`` are those of the horizon exponents (default: :func:`exponent_weights`); each
    draw comes from one exponent's model, drawn by its weight (Bayesian model averaging). A
    candidate never trained (paid 0, left out of a small budget's pool) is exchangeable with
    those that were, a random part of the pool: each of its draws is a random tried
    candidate's in a random draw (docs/method.md §6).
    """
    full = view.full_epochs
    everyone = np.arange(len(view))
    paid = view.paid
    if not (paid > 0).any():
        raise CapjaxInputError("no candidate has been trained; train some before asking for the posterior")
    draws = np.empty((NUM_DRAWS, len(view)))
    done = paid >= full
    if done.any():
        draws[:, done] = view.read("val_acc", full, everyone[done])[None]
    open_ = everyone[~done & (paid > 0)]
    rng = np.random.default_rng(seed)
    if open_.size:
        rows, gains, horizons = _pairs(view, groups)
        weights = _exponent_weights(rows, gains, horizons, view) if weights is None else weights
        queries = np.stack([_features(view, int(paid[c]), np.array([c]), groups)[0] for c in open_])
        h = _horizon(paid[open_], full)
        current = np.array([_logit_acc(view, int(paid[c]), [c])[0] for c in open_])
        if _enough(rows, gains):
            which = rng.choice(len(GAMMAS), NUM_DRAWS, p=weights)
            gain = np.empty((NUM_DRAWS, len(open_)))
            for g in np.unique(which):
                pick = which == g
                gain[pick] = _gain_draws(view, rows, gains, horizons, queries, h, GAMMAS[g], seed, rng)[pick]
        else:
            # too few pairs to fit: an unknown gain of the same size for every candidate,
            # mean 0 and sd h^PRIOR_GAMMA, so the order of the current accuracies stands
            gain = rng.standard_normal((NUM_DRAWS, len(open_))) * (h**PRIOR_GAMMA)[None]
        draws[:, open_] = expit(current[None] + gain)
    draws[:, view.failed] = 0.0  # a failed candidate is never best
    draws = np.where(np.isfinite(draws), draws, 0.0)
    tried, untried = np.flatnonzero(paid > 0), np.flatnonzero(paid == 0)
    if untried.size:
        # an independent draw of a random tried candidate: like the pool, not like any one of it
        shape = (NUM_DRAWS, untried.size)
        draws[:, untried] = draws[rng.integers(NUM_DRAWS, size=shape), tried[rng.integers(tried.size, size=shape)]]
    return draws


def _gain_draws(view: View, rows, gains, horizons, queries, h, gamma: float, seed: int,
                rng: np.random.Generator) -> np.ndarray:
    """``(S, Q)`` joint draws of the gains to the end of ``queries`` (horizons ``h``) under one exponent."""
    F, y, w = _padded(*_scaled(rows, gains, horizons, gamma), view)
    # the queries padded to every candidate too: one shape for every round
    padded = np.zeros((len(view), queries.shape[1]))
    # the model is linear: read it only inside the range of the candidates' states that the
    # pairs showed it (not of the log-epoch midpoint: reaching further is what it is for)
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    lo[MIDPOINT], hi[MIDPOINT] = -np.inf, np.inf
    inside = np.clip(queries, lo, hi)
    padded[: len(queries)] = inside * (h ** (1.0 - gamma))[:, None]
    samples, _, mean, *_ = regression_draws(F, y, padded, intercept="ridge", num_samples=NUM_DRAWS,
                                            key=seed, weights=w)
    samples = np.asarray(samples, dtype=float)[:, : len(queries)]
    mean = np.asarray(mean, dtype=float)[: len(queries)]
    # the noise precision integrated out: one chi-square scale per draw, shared by every
    # candidate so the draws stay joint (a Student-t with the pairs' degrees of freedom)
    dof = len(gains) - rows.shape[1] - 1
    scale = np.sqrt(dof / rng.chisquare(dof, NUM_DRAWS))[:, None]
    return (mean[None] + scale * (samples - mean[None])) * (h**gamma)[None]


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


def knowledge_gradient(draws: np.ndarray, share: np.ndarray) -> np.ndarray:
    """``(C,)`` expected gain in the value of the choice from a move that resolves the share
    ``share_c`` of candidate ``c``'s posterior variance (docs/method.md §6).

    With ``mu`` the posterior means and ``M_c`` the best mean of the others, the move leaves
    ``c``'s mean at ``mu_c' = mu_c + sqrt(share_c) (f_c - mu_c)`` (a draw shrunk by what
    stays unknown), and its knowledge gradient is ``E[max(mu_c', M_c)] - max(mu_c, M_c)``
    (Frazier, Powell and Dayanik 2008), computed on the draws. A short move on a candidate
    far behind is worth little: it cannot resolve enough to change the choice.
    """
    mu = draws.mean(axis=0)
    if mu.size < 2:
        return np.zeros_like(mu)
    first, second = np.argsort(-mu, kind="stable")[:2]
    best_other = np.where(np.arange(mu.size) == first, mu[second], mu[first])
    after = mu + np.sqrt(np.clip(share, 0.0, 1.0)) * (draws - mu)
    return np.maximum(after, best_other).mean(axis=0) - np.maximum(mu, best_other)


def survivors(view: View, draws: np.ndarray, alive: np.ndarray, size: int, epoch: int,
              gamma: float = PRIOR_GAMMA) -> np.ndarray:
    """The ``size`` of ``alive`` worth training to ``epoch`` most, by knowledge gradient.

    A move from ``p`` to ``epoch`` resolves the share ``1 - (h(epoch, full) / h(p,
    full))^(2 gamma)`` of the gain noise still ahead (sd ``∝ h^gamma``; docs/method.md §6);
    each candidate's :func:`knowledge_gradient` for that share ranks it. The leader always
    survives; the failed and the hopeless (expected opportunity loss below
    :data:`HOPELESS`) never do, so fewer than ``size`` may survive. An uncertain candidate
    with a lower mean can outrank a certain one with a higher mean, which halving by rank
    never does.
    """
    _, value = opportunity_loss(draws)
    full, paid = view.full_epochs, view.paid
    share = 1.0 - (_horizon(epoch, full) / np.maximum(_horizon(paid, full), 1e-12)) ** (2 * gamma)
    worth = knowledge_gradient(draws, share)
    live = alive[~view.failed[alive]]
    if not live.size:
        return live
    # the leader of those still training (the overall one may have stopped at a rung before)
    leader = live[np.argmax(draws.mean(axis=0)[live])]
    worth[leader] = np.inf
    keep = live[(value[live] >= HOPELESS) | (live == leader)]
    return keep[np.argsort(-worth[keep], kind="stable")[:size]]


def finish_order(view: View, draws: np.ndarray) -> np.ndarray:
    """Live candidates by P(best), most likely first (those finished come first: they cost nothing)."""
    p_best = prob_best(draws) + (view.paid >= view.full_epochs)
    live = ~view.failed
    order = np.argsort(-p_best, kind="stable")
    return order[live[order]]


def engine(view: View, budget: float, rng: np.random.Generator | None = None,
           p_best_stop: float = 0.95, seed: int = 0, features: tuple[str, ...] = ("curve",)) -> Outcome:
    """Select under ``budget`` (a fraction of training everyone fully) in rungs; see the module.

    The rungs are successive halving's shape fitted to the budget
    (:func:`~capjax.selection.policies.fitted_pool`): ``eta = 3`` with the largest first rung,
    on every candidate where that fits, else on the largest random part of the pool (drawn
    from ``rng``, default seeded by ``seed``) where it does; the others stay untrained. Who
    survives each rung is the joint posterior's choice (:func:`survivors`), not the rank of
    current accuracy. The smallest budget that works is two candidates one epoch each and
    the better to the end (:func:`~capjax.selection.view.smallest_epochs`). ``features`` are
    groups of :data:`FEATURES`, ``"curve"`` first; the others are the ablations of the policy
    benchmark. The outcome carries the last posterior's draws and P(best) after every rung.
    """
    if not features or features[0] != "curve" or not set(features) <= set(FEATURES):
        raise CapjaxInputError(f"features={features!r}: start with 'curve', then any of {sorted(FEATURES)[1:]}")
    n, full = len(view), view.full_epochs
    total = budget * view.full_cost
    fitted = fitted_pool(n, full, view.epoch_budget(budget))
    if fitted is None:
        needs = view.epochs_fraction(smallest_epochs(n, full))
        return Outcome("capjax", None, 0.0, view.paid.copy(), f"capjax needs a budget of at least {needs:.1%} here")
    pool, plan = fitted
    rng = np.random.default_rng(seed) if rng is None else rng
    # below halving's budget, a random part of the pool, as Hyperband's first bracket draws it
    alive, rounds = np.sort(rng.permutation(n)[:pool]), []
    for k, (size, epoch) in enumerate(plan):
        if k:
            weights = exponent_weights(view, features)
            draws = posterior(view, seed, features, weights)
            p_best = prob_best(draws)
            rounds.append((view.fraction, p_best))
            leader, _ = opportunity_loss(draws)
            if p_best[leader] >= p_best_stop:
                break
            alive = survivors(view, draws, alive, size, epoch, float(weights @ np.asarray(GAMMAS)))
        view.train(alive, epoch)
    draws = posterior(view, seed, features)
    # the leader of those the budget can still finish (the plan pays for one of the last
    # rung's) to the end, then, with what is left, the next most likely best: a measured
    # final beats a forecast. Decided at once, so that a live view trains them together.
    cost = _finish_costs(view)
    affordable = (cost <= total - view.spent) & ~view.failed
    if not affordable.any():  # only rounding can leave the plan's own finish out
        affordable[alive] = ~view.failed[alive]
    if not affordable.any():
        return Outcome("capjax", None, view.fraction, view.paid.copy(),
                       "every candidate the budget could still finish diverged", draws, tuple(rounds))
    leader = int(np.flatnonzero(affordable)[np.argmax(draws.mean(axis=0)[affordable])])
    p_best = prob_best(draws)
    finish, left = [leader], total - view.spent - cost[leader]
    for c in finish_order(view, draws):
        if c != leader and view.paid[c] < full and p_best[c] > 0 and cost[c] <= left:
            finish.append(int(c))
            left -= cost[c]
    view.train_to({c: full for c in finish})
    draws = posterior(view, seed, features)
    rounds.append((view.fraction, prob_best(draws)))
    finished = np.flatnonzero((view.paid >= full) & ~view.failed)
    if not finished.size:
        return Outcome("capjax", None, view.fraction, view.paid.copy(), "every candidate it finished diverged",
                       draws, tuple(rounds))
    chosen = int(finished[np.argmax(view.val_acc(full, finished))])
    return Outcome("capjax", chosen, view.fraction, view.paid.copy(), None, draws, tuple(rounds))


def _finish_costs(view: View) -> np.ndarray:
    """``(C,)`` training passes that finishing each candidate from where it is would cost."""
    return (view.full_epochs - view.paid) * view.passes_per_epoch
