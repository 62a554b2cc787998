"""Baseline selection policies at equal compute (docs/method.md §6), simulated on full records.

Each policy reads a :class:`~capjax.selection.view.PaidView` through what it has paid for,
fits itself to a compute ``budget`` (a fraction of training every candidate fully) by the
rule its docstring states, always trains its winner to the end, and returns an
:class:`Outcome`. Plans are made in candidate-epochs before anything is observed, so a
policy cannot try a plan and take its compute back; the compute it reports is then
measured in training passes. A budget too small for a policy is an infeasible outcome
with the smallest budget it needs, never an overspent run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from capjax.selection.view import PaidView

ETA = 3
"""Successive halving and Hyperband keep the top ``1/ETA`` at each rung."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a policy chose and what it cost.

    Attributes:
      policy: its name.
      chosen: the chosen candidate's index, or None when the budget does not fit the policy.
      fraction: training passes spent over those of training every candidate fully.
      epochs: ``(C,)`` epochs each candidate was trained.
      reason: why the policy did not run (None when it did).
      draws: ``(S, C)`` joint posterior draws of every candidate's final validation accuracy
        when the policy has a posterior (capjax's engine), else None.
      rounds: the policy's rounds, ``(compute fraction, (C,) P(best))`` after each, when it
        has a posterior.
    """

    policy: str
    chosen: int | None
    fraction: float
    epochs: np.ndarray
    reason: str | None = None
    draws: np.ndarray | None = None
    rounds: tuple[tuple[float, np.ndarray], ...] = ()

    def regret(self, truth: np.ndarray) -> float:
        """Best final test accuracy minus the chosen candidate's (NaN when infeasible)."""
        if self.chosen is None:
            return math.nan
        return float(np.nanmax(truth) - np.nan_to_num(truth[self.chosen], nan=0.0))


def _finish(view: PaidView, name: str, winner: int) -> Outcome:
    view.train([winner], view.full_epochs)
    return Outcome(name, int(winner), view.fraction, view.paid.copy())


def _infeasible(view: PaidView, name: str, candidate_epochs: float) -> Outcome:
    needs = view.epochs_fraction(candidate_epochs)
    why = f"{name} needs a budget of at least {needs:.1%} of full training here"
    return Outcome(name, None, 0.0, view.paid.copy(), why)


def _best(view: PaidView, epoch: int, candidates: np.ndarray, k: int = 1) -> np.ndarray:
    """The ``k`` of ``candidates`` with the highest validation accuracy at ``epoch``, best first."""
    acc = view.val_acc(epoch, candidates)
    return candidates[np.argsort(-acc, kind="stable")[:k]]


def uniform(view: PaidView, budget: float, rng: np.random.Generator | None = None) -> Outcome:
    """Uniform early accuracy: every candidate for ``e`` epochs, the best one to the end.

    Rule: the largest ``e`` with ``N e + (full - e)`` candidate-epochs within the budget
    (:meth:`~capjax.selection.view.PaidView.epoch_budget`).
    """
    n, full = len(view), view.full_epochs
    e = min(full, math.floor((view.epoch_budget(budget) - full) / (n - 1))) if n > 1 else full
    if e < 1:
        return _infeasible(view, "uniform", n + full - 1)
    everyone = np.arange(n)
    view.train(everyone, e)
    return _finish(view, "uniform", _best(view, e, everyone)[0])


def top_k_one_epoch(view: PaidView, budget: float, rng: np.random.Generator | None = None) -> Outcome:
    """Top-k after one epoch (Egele et al. 2023): all for one epoch, the best ``k`` to the end.

    Rule: the largest ``k`` with ``N + k (full - 1)`` candidate-epochs within the budget; the
    winner is the best of the ``k`` by final validation accuracy.
    """
    n, full = len(view), view.full_epochs
    k = min(n, math.floor((view.epoch_budget(budget) - n) / (full - 1))) if full > 1 else n
    if k < 1:
        return _infeasible(view, "top_k_one_epoch", n + full - 1)
    everyone = np.arange(n)
    view.train(everyone, 1)
    top = _best(view, 1, everyone, k)
    view.train(top, full)
    return _finish(view, "top_k_one_epoch", _best(view, full, top)[0])


def _halving_plan(n: int, r0: int, full: int, eta: int = ETA) -> list[tuple[int, int]]:
    """``[(survivors, epoch), ...]`` of successive halving from ``n`` candidates at ``r0`` epochs.

    Rung ``k`` trains ``n_k`` candidates to ``min(r0 eta^k, full)``; ``n_{k+1} = ceil(n_k /
    eta)``; it ends when one is left or the rung reaches ``full``.
    """
    plan, alive, r = [], n, r0
    while True:
        plan.append((alive, min(r, full)))
        if alive == 1 or r >= full:
            return plan
        alive, r = math.ceil(alive / eta), r * eta


def _plan_cost(plan: list[tuple[int, int]], full: int) -> int:
    """Candidate-epochs of a plan, its winner trained to ``full``."""
    cost, last = 0, 0
    for alive, epoch in plan:
        cost += alive * (epoch - last)
        last = epoch
    return cost + (full - last)


def halving_cost(n: int, full: int, eta: int = ETA) -> int:
    """Candidate-epochs of the cheapest halving of all ``n`` candidates: one epoch each first."""
    return _plan_cost(_halving_plan(n, 1, full, eta), full)


def _run_halving(view: PaidView, candidates: np.ndarray, plan: list[tuple[int, int]]) -> int:
    alive = candidates
    for k, (size, epoch) in enumerate(plan):
        alive = alive[:size] if k == 0 else _best(view, plan[k - 1][1], alive, size)
        view.train(alive, epoch)
    return int(_best(view, plan[-1][1], alive)[0])


def _widest_plan(n: int, full: int, room: float, eta: int) -> list[tuple[int, int]] | None:
    """The halving plan of ``eta`` with the largest first rung that fits ``room`` candidate-epochs."""
    fits = [r0 for r0 in range(1, full + 1) if _plan_cost(_halving_plan(n, r0, full, eta), full) <= room]
    return _halving_plan(n, max(fits), full, eta) if fits else None


def fitted_pool(n: int, full: int, room: float, eta: int = ETA) -> tuple[int, list[tuple[int, int]]] | None:
    """``(m, plan)``: the largest pool ``m <= n`` whose halving plan of ``eta``
    (:func:`_halving_plan`, the largest first rung) fits ``room`` candidate-epochs, and that
    plan; None if not even two candidates fit (one, if that is all there is; docs/method.md §6).

    ``m = n`` wherever halving fits the whole pool. Below that (5% of 60 candidates of 30
    epochs) the pool shrinks, as in Hyperband's most exploratory bracket, rather than the
    rungs: on the policy benchmark, depth on a random part of the pool did better than one
    epoch of everyone. The smallest budget of all is two candidates one epoch each and the
    better to the end, ``full + 1`` candidate-epochs.
    """
    for m in range(n, min(n, 2) - 1, -1):
        plan = _widest_plan(m, full, room, eta)
        if plan is not None:
            return m, plan
    return None


def successive_halving(view: PaidView, budget: float, rng: np.random.Generator | None = None) -> Outcome:
    """Successive halving (Jamieson and Talwalkar 2016), ``eta = 3``, the winner to the end.

    Rule: the largest first rung ``r0`` whose plan (:func:`_halving_plan`) fits the budget in
    candidate-epochs. With 60 candidates and 30 epochs, ``r0 = 1`` already needs 11%.
    """
    n, full = len(view), view.full_epochs
    plan = _widest_plan(n, full, view.epoch_budget(budget), ETA)
    if plan is None:
        return _infeasible(view, "successive_halving", halving_cost(n, full))
    winner = _run_halving(view, np.arange(n), plan)
    return _finish(view, "successive_halving", winner)


def _brackets(n: int, full: int, eta: int = ETA) -> list[tuple[int, int]]:
    """Hyperband's brackets ``[(n_s, r_s), ...]``, most exploratory first, capped at ``n`` in all.

    ``s_max = floor(log_eta full)``; bracket ``s`` starts ``ceil((s_max + 1) / (s + 1)
    eta^s)`` candidates at ``max(1, round(full eta^-s))`` epochs (Li et al. 2017).
    """
    s_max = int(math.floor(math.log(full, eta) + 1e-9))
    out, left = [], n
    for s in range(s_max, -1, -1):
        size = min(left, math.ceil((s_max + 1) / (s + 1) * eta**s))
        if size < 1:
            break
        out.append((size, max(1, round(full * eta**-s))))
        left -= size
    return out


def hyperband(view: PaidView, budget: float, rng: np.random.Generator | None = None) -> Outcome:
    """Hyperband (Li et al. 2017), ``eta = 3``, its brackets on the fixed pool of candidates.

    Rule: the brackets of :func:`_brackets` run most exploratory first, each a successive
    halving on its own candidates (a seeded random partition of the pool), as long as the
    brackets so far fit the budget in candidate-epochs; the winner is the best bracket
    winner by final validation accuracy.
    """
    n, full = len(view), view.full_epochs
    rng = rng or np.random.default_rng(0)
    order = rng.permutation(n)
    chosen, total, start, winners = [], 0, 0, []
    for size, r0 in _brackets(n, full):
        plan = _halving_plan(size, r0, full)
        cost = _plan_cost(plan, full)
        if total + cost > view.epoch_budget(budget):
            break
        chosen.append((order[start:start + size], plan))
        total, start = total + cost, start + size
    if not chosen:
        size, r0 = _brackets(n, full)[0]
        return _infeasible(view, "hyperband", _plan_cost(_halving_plan(size, r0, full), full))
    for members, plan in chosen:
        winners.append(_run_halving(view, members, plan))
    winners = np.array(winners)
    view.train(winners, full)
    return _finish(view, "hyperband", _best(view, full, winners)[0])


def random_choice(view: PaidView, budget: float, rng: np.random.Generator | None = None) -> Outcome:
    """One candidate drawn at random (seeded), trained to the end; costs ``1 / N``."""
    if view.epoch_budget(budget) < view.full_epochs:
        return _infeasible(view, "random", view.full_epochs)
    rng = rng or np.random.default_rng(0)
    return _finish(view, "random", int(rng.integers(len(view))))


POLICIES: dict[str, Callable[..., Outcome]] = {
    "successive_halving": successive_halving,
    "hyperband": hyperband,
    "uniform": uniform,
    "top_k_one_epoch": top_k_one_epoch,
    "random": random_choice,
}
"""The baseline policies by the names the policy benchmark reports."""
