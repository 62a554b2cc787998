"""capjax's engine: value of information, not rank, decides who trains; budgets are kept."""

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.selection import PaidView, capjax_engine, smallest_budget
from capjax.selection.engine import allocate, opportunity_loss, posterior
from tests._fake import fake_sweep, planted_curves


def _view(tmp_path, n=20, full=16, seed=0):
    fields, _ = planted_curves(n=n, epochs=full + 1, seed=seed)
    fields["test_acc"] = fields["val_acc"]
    return PaidView(fake_sweep(tmp_path, fields), full)


def test_an_uncertain_lower_mean_is_trained_where_halving_would_keep_a_certain_one(tmp_path):
    rng = np.random.default_rng(0)
    draws = np.stack([
        0.90 + 0.005 * rng.standard_normal(4000),  # the leader
        0.85 + 0.001 * rng.standard_normal(4000),  # second by mean, and certain: hopeless
        0.84 + 0.050 * rng.standard_normal(4000),  # third by mean, but it may still end up best
    ], axis=1)
    leader, value = opportunity_loss(draws)
    assert leader == 0 and value[2] > 100 * value[1]
    view = _view(tmp_path, n=3)
    view.train([0, 1, 2], 1)
    room = 2.5 * view.passes_per_epoch.max()  # two candidates' next epoch
    _, plan = allocate(view, draws, room)
    trained = set(plan)
    assert 2 in trained and 1 not in trained  # halving would keep the top two by mean: 0 and 1


def test_the_posterior_stays_in_the_unit_interval_and_measured_candidates_are_known(tmp_path):
    view = _view(tmp_path)
    view.train(np.arange(20), 1)
    view.train([0, 1, 2], 4)
    view.train([3], 16)
    draws = posterior(view)
    assert draws.shape[1] == 20 and np.all((draws >= 0) & (draws <= 1))
    assert np.ptp(draws[:, 3]) == 0 and draws[0, 3] == view.read("val_acc", 16, [3])[0]


@pytest.mark.parametrize("budget", [0.15, 0.2, 0.3])
def test_the_engine_keeps_its_budget_and_finishes_its_winner(tmp_path, budget):
    view = _view(tmp_path)
    out = capjax_engine(view, budget)
    assert out.chosen is not None and out.epochs[out.chosen] == 16
    assert out.fraction <= budget + 1e-9
    assert out.regret(view.final_truth()) < 0.1


def test_below_the_smallest_budget_the_engine_says_what_it_needs(tmp_path):
    view = _view(tmp_path)
    out = capjax_engine(view, 0.9 * smallest_budget(20, 16))
    assert out.chosen is None and f"{smallest_budget(20, 16):.1%}" in out.reason


def test_the_ablations_read_beta_eff_and_the_weight_signals_when_recorded(tmp_path):
    view = _view(tmp_path)  # the planted sweep records beta_eff but no weight signals (read as 0)
    for features in (("curve", "beta"), ("curve", "beta", "weights")):
        fresh = PaidView(view._full, 16)
        out = capjax_engine(fresh, 0.2, features=features)
        assert out.chosen is not None and out.fraction <= 0.2 + 1e-9
    with pytest.raises(CapjaxInputError, match="start with 'curve'"):
        capjax_engine(PaidView(view._full, 16), 0.2, features=("beta",))


def test_hopeless_candidates_stop_and_the_reserve_follows_the_posterior(tmp_path):
    from capjax.selection.engine import HOPELESS, reserve

    view = _view(tmp_path, n=4)
    view.train(np.arange(4), 1)
    rng = np.random.default_rng(1)
    sure = np.stack([0.95 + 0.001 * rng.standard_normal(4000), 0.80 + 0.001 * rng.standard_normal(4000),
                     0.70 + 0.001 * rng.standard_normal(4000), 0.60 + 0.001 * rng.standard_normal(4000)], axis=1)
    _, value = opportunity_loss(sure)
    assert (value[1:] < HOPELESS).all()
    _, plan = allocate(view, sure, room=1e12)
    assert set(plan) <= {0}  # only the leader may still be worth an epoch
    finish_one = 15 * view.passes_per_epoch[0]
    assert reserve(view, sure, 0.005, left=1e12) == pytest.approx(finish_one)
    vague = 0.8 + 0.1 * rng.standard_normal((4000, 4))
    assert reserve(view, vague, 0.005, left=1e12) == pytest.approx(4 * finish_one)
    assert reserve(view, vague, 0.005, left=2.5 * finish_one) == pytest.approx(2 * finish_one)


def test_a_negative_epoch_is_never_a_way_to_the_final_one(tmp_path):
    from capjax.selection import UnpaidEpochError

    view = _view(tmp_path, n=3)
    with pytest.raises(UnpaidEpochError, match="outside"):
        view.read("val_acc", -1, [0])
