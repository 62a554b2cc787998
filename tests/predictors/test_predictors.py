import numpy as np
import pytest

from capjax.predictors import PREDICTORS, Task
from capjax.scoring.metrics import kendall_tau
from tests._fake import fake_sweep, planted_curves


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    fields, final = planted_curves()
    return fake_sweep(tmp_path_factory.mktemp("sweep"), fields), final


def test_paper_predictor_recovers_final_accuracy_when_its_premise_holds(planted):
    sweep, final = planted
    f = PREDICTORS["beta_coupling"](Task(sweep, budget=8, full_epochs=20))
    np.testing.assert_allclose(f.mean, final, atol=0.03)
    assert np.all(f.lower <= f.mean) and np.all(f.mean <= f.upper)
    p_best = f.prob_best()
    assert p_best.sum() == pytest.approx(1.0)
    assert np.argmax(p_best) == np.argmax(final) or final[np.argmax(p_best)] > final.max() - 0.02


@pytest.mark.parametrize("name", ["early_acc", "sovl", "tse", "tse_e", "tse_ema", "curve"])
def test_curve_baselines_score_every_candidate_with_higher_is_better(planted, name):
    sweep, final = planted
    f = PREDICTORS[name](Task(sweep, budget=8, full_epochs=20))
    assert np.isfinite(f.score).all()
    assert kendall_tau(f.score, final) > 0.3


def test_failed_candidates_are_nan_with_their_reason_and_the_rest_are_scored(tmp_path):
    fields, _ = planted_curves(n=8)
    fields["val_acc"][2, 2:] = np.nan
    sweep = fake_sweep(tmp_path, fields, failed={"c02": "loss is NaN at epoch 2"})
    for name in ("early_acc", "beta_coupling"):
        f = PREDICTORS[name](Task(sweep, budget=5, full_epochs=20))
        assert np.isnan(f.score[2]) and f.reasons["c02"] == "loss is NaN at epoch 2"
        assert np.isfinite(np.delete(f.score, 2)).all()


def test_specific_reasons_replace_the_generic_one_and_a_divergence_is_always_reported(tmp_path):
    fields, _ = planted_curves(n=8)
    for c in (2, 3):  # c02 diverged at epoch 2, c03 just stopped
        fields["val_acc"][c, 2:] = np.nan
        fields["beta_coupling"][c, 2:] = np.nan
    sweep = fake_sweep(tmp_path, fields, failed={"c02": "loss is NaN at epoch 2"})
    task = Task(sweep, budget=5, full_epochs=20)
    beta = PREDICTORS["beta_coupling"](task)
    assert beta.reasons["c02"] == "loss is NaN at epoch 2"
    assert beta.reasons["c03"].startswith("2 finite observation pair(s)")
    curve = PREDICTORS["curve"](task)
    assert curve.reasons["c02"] == "loss is NaN at epoch 2"
    assert curve.reasons["c03"] == "only 1 finite epoch(s); extrapolation needs at least 2"
    assert set(beta.reasons) == set(curve.reasons) == {"c02", "c03"}


def test_too_short_budget_is_a_reason_not_an_error(planted):
    sweep, _ = planted
    f = PREDICTORS["curve"](Task(sweep, budget=1, full_epochs=20))
    assert np.isnan(f.score).all() and "2 epochs" in next(iter(f.reasons.values()))


@pytest.mark.parametrize("name", ["combined", "beta_cross_coupling"])
def test_supervised_predictors_fit_on_references_only(planted, name):
    sweep, final = planted
    dev = np.arange(len(final)) % 2 == 0
    assert np.isnan(PREDICTORS[name](Task(sweep, 5, 20)).score).all()  # no references: every candidate fails
    f = PREDICTORS[name](Task(sweep, 5, 20, reference=np.where(dev, final, np.nan)))
    assert kendall_tau(f.score[~dev], final[~dev]) > 0.6
    assert f.samples.shape[1] == len(final) and np.all(f.lower <= f.upper)
