"""capjax's engine: value of information, not rank, decides who survives a rung; budgets are kept."""

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.selection import PaidView, View, capjax_engine, smallest_budget
from capjax.selection.engine import (
    HOPELESS,
    exponent_weights,
    knowledge_gradient,
    opportunity_loss,
    posterior,
    survivors,
)
from tests._fake import fake_sweep, planted_curves


def _view(tmp_path, n=20, full=16, seed=0):
    fields, _ = planted_curves(n=n, epochs=full + 1, seed=seed)
    fields["test_acc"] = fields["val_acc"]
    return PaidView(fake_sweep(tmp_path, fields), full)


def test_an_uncertain_lower_mean_survives_where_halving_would_keep_a_certain_one(tmp_path):
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
    kept = survivors(view, draws, np.arange(3), size=2, epoch=4)
    assert set(kept.tolist()) == {0, 2}  # halving would keep the top two by mean: 0 and 1


def test_the_knowledge_gradient_of_a_move_grows_with_what_it_resolves():
    rng = np.random.default_rng(0)
    draws = np.stack([0.90 + 0.01 * rng.standard_normal(4000), 0.85 + 0.05 * rng.standard_normal(4000)], axis=1)
    kg = np.stack([knowledge_gradient(draws, np.full(2, s)) for s in (0.0, 0.1, 0.5, 1.0)])
    assert np.allclose(kg[0], 0, atol=1e-12) and np.all(np.diff(kg[:, 1]) > 0)
    # resolving everything about the runner-up is worth its expected improvement over the leader's mean
    assert kg[-1, 1] == pytest.approx(np.maximum(draws[:, 1] - draws[:, 0].mean(), 0).mean(), rel=1e-9)


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


def test_below_halvings_budget_the_engine_trains_a_random_part_of_the_pool(tmp_path):
    view = _view(tmp_path, n=60, full=30)  # halving of all 60 needs 11.1%
    out = capjax_engine(view, 0.05, rng=np.random.default_rng(3))
    tried = np.flatnonzero(out.epochs > 0)
    assert tried.size == 27 and out.fraction <= 0.05 + 1e-9  # Hyperband's first bracket
    assert out.chosen in tried and out.epochs[out.chosen] == 30
    again = capjax_engine(PaidView(view._full, 30), 0.05, rng=np.random.default_rng(4))
    assert set(np.flatnonzero(again.epochs > 0)) != set(tried)  # the pool is drawn, not the first 27
    # a candidate never trained is forecast like the pool: a mixture of the tried ones' forecasts
    untried = np.flatnonzero(out.epochs == 0)
    assert np.all((out.draws >= 0) & (out.draws <= 1))
    assert out.draws[:, untried].mean() == pytest.approx(out.draws[:, tried].mean(), abs=0.02)
    assert out.draws[:, untried].std(axis=0).min() > out.draws[:, tried].std(axis=0).mean()


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


def test_hopeless_candidates_stop(tmp_path):
    view = _view(tmp_path, n=4)
    view.train(np.arange(4), 1)
    rng = np.random.default_rng(1)
    sure = np.stack([0.95 + 0.001 * rng.standard_normal(4000), 0.80 + 0.001 * rng.standard_normal(4000),
                     0.70 + 0.001 * rng.standard_normal(4000), 0.60 + 0.001 * rng.standard_normal(4000)], axis=1)
    _, value = opportunity_loss(sure)
    assert (value[1:] < HOPELESS).all()
    assert survivors(view, sure, np.arange(4), size=4, epoch=3).tolist() == [0]  # only the leader goes on


def test_a_negative_epoch_is_never_a_way_to_the_final_one(tmp_path):
    from capjax.selection import UnpaidEpochError

    view = _view(tmp_path, n=3)
    with pytest.raises(UnpaidEpochError, match="outside"):
        view.read("val_acc", -1, [0])


class _Curves(View):
    """A view of hand-made validation curves ``(C, E + 1)``; candidate c diverges at ``diverge[c]``."""

    def __init__(self, acc: np.ndarray, diverge: np.ndarray | None = None):
        n, epochs = acc.shape
        super().__init__([f"c{i}" for i in range(n)], epochs - 1, np.ones(n))
        self.acc = acc
        self.diverge = np.full(n, 10**9) if diverge is None else np.asarray(diverge)

    def _table(self, field):
        if field != "val_acc":
            return np.full(self.acc.shape, np.nan)
        return np.where(np.arange(self.acc.shape[1])[None] >= self.diverge[:, None], np.nan, self.acc)

    @property
    def failed(self):
        return self.diverge <= self.paid


def _logistic_curves(n=30, epochs=31, seed=0):
    rng = np.random.default_rng(seed)
    e = np.log1p(np.arange(epochs))[None]
    y = rng.normal(-1, 0.5, (n, 1)) + rng.uniform(0.5, 2, (n, 1)) * e + rng.normal(0, 0.1, (n, epochs))
    return 1 / (1 + np.exp(-y))


@pytest.mark.parametrize("budget", [0.07, 0.088, 0.2])
def test_when_every_survivor_diverges_the_engine_says_so_and_keeps_its_budget(budget):
    view = _Curves(_logistic_curves(), diverge=np.full(30, 2))  # everyone diverges in epoch 2
    out = capjax_engine(view, budget)
    assert out.fraction <= budget + 1e-9
    assert out.chosen is None and "diverged" in out.reason


def test_noise_free_curves_leave_the_evidence_defined():
    acc = np.tile(np.linspace(0.5, 0.9, 13), (18, 1))  # every candidate the same, gains exact
    for noise in (0.0, 1e-4):
        curves = np.clip(acc + noise * np.random.default_rng(0).standard_normal(acc.shape), 0, 1)
        view = _Curves(curves)
        out = capjax_engine(view, 0.2)
        assert out.chosen is not None and np.isfinite(out.draws).all()
        assert np.isclose(exponent_weights(view).sum(), 1.0)
