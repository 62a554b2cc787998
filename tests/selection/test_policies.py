"""Baseline selection policies on recorded sweeps: only paid epochs are read, budgets are kept."""

import numpy as np
import pytest

from capjax.selection import POLICIES, PaidView, UnpaidEpochError, smallest_budget, successive_halving
from capjax.selection.policies import _brackets, _halving_plan, _plan_cost, fitted_pool
from tests._fake import fake_sweep, planted_curves


def _view(tmp_path, n=60, full=30, seed=0, uneven=False):
    fields, final = planted_curves(n=n, epochs=full + 1, seed=seed)
    rng = np.random.default_rng(seed)
    fields["test_acc"] = np.clip(fields["val_acc"] + 0.01 * rng.standard_normal(fields["val_acc"].shape), 0, 1)
    if uneven:  # batch sizes that leave different remainders cost different passes per epoch
        fields["passes_train"] = fields["passes_train"] * rng.uniform(0.9, 1.1, size=(n, 1))
    return PaidView(fake_sweep(tmp_path, fields), full)


def test_a_policy_reads_only_what_it_paid_for(tmp_path):
    view = _view(tmp_path, n=4, full=5)  # every candidate 1000 passes an epoch
    with pytest.raises(UnpaidEpochError, match="not paid for"):
        view.val_acc(1, [0])
    view.train([0, 1], 3)
    view.train([0], 2)  # paying less never lowers what was paid
    assert view.paid.tolist() == [3, 3, 0, 0]
    assert view.val_acc(3, [0, 1]).shape == (2,)
    with pytest.raises(UnpaidEpochError):
        view.val_acc(4, [0])
    with pytest.raises(UnpaidEpochError):
        view.val_acc(1, [0, 2])
    assert view.fraction == pytest.approx(6 / 20)


def test_the_smallest_budget_and_halvings_eleven_percent():
    assert smallest_budget(12, 30) == pytest.approx(31 / 360)
    assert smallest_budget(1, 30) == 1.0
    plan = _halving_plan(60, 1, 30)
    assert plan == [(60, 1), (20, 3), (7, 9), (3, 27), (1, 30)]
    assert _plan_cost(plan, 30) / (60 * 30) == pytest.approx(0.1106, abs=1e-3)


def test_the_fitted_pool_is_everyone_where_halving_fits_and_the_largest_part_below():
    room = 0.2 * 60 * 30
    pool, plan = fitted_pool(60, 30, room)
    assert pool == 60 and _plan_cost(plan, 30) <= room
    assert _plan_cost(_halving_plan(60, plan[0][1] + 1, 30), 30) > room  # the largest first rung
    pool, plan = fitted_pool(60, 30, 0.05 * 60 * 30)  # halving of everyone needs 11.1%
    assert pool == 27 and plan == [(27, 1), (9, 3), (3, 9), (1, 27)]  # Hyperband's first bracket
    assert _plan_cost(plan, 30) <= 90 < _plan_cost(_halving_plan(28, 1, 30), 30)
    assert fitted_pool(60, 30, 31) == (2, [(2, 1), (1, 3)])  # the smallest budget of all
    assert fitted_pool(60, 30, 30) is None
    assert fitted_pool(1, 30, 30) == (1, [(1, 30)])


def test_halving_that_does_not_fit_says_what_it_needs(tmp_path):
    out = successive_halving(_view(tmp_path), 0.10)
    assert out.chosen is None and np.isnan(out.regret(np.ones(60))) and "11.1%" in out.reason


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("budget", [0.05, 0.1, 0.2, 0.3])
def test_every_policy_keeps_its_budget_and_finishes_its_winner(tmp_path, name, budget):
    view = _view(tmp_path, uneven=True)
    out = POLICIES[name](view, budget, np.random.default_rng(1))
    if out.chosen is None:
        assert out.reason and out.fraction == 0.0
        return
    assert out.fraction <= budget + 1e-9
    assert out.epochs[out.chosen] == 30
    assert 0.0 <= out.regret(view.final_truth()) <= 1.0


def test_hyperband_brackets_cover_distinct_candidates():
    brackets = _brackets(60, 30)
    assert [r for _, r in brackets] == [1, 3, 10, 30]
    assert sum(n for n, _ in brackets) <= 60


def test_a_dominant_candidate_is_found_at_no_regret(tmp_path):
    view = _view(tmp_path)
    truth = view.final_truth()
    for name in ("uniform", "successive_halving", "top_k_one_epoch"):
        fresh = PaidView(view._full, 30)
        out = POLICIES[name](fresh, 0.2)
        assert out.regret(truth) < 0.05, name
