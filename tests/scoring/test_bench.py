import numpy as np

from capjax.predictors import PREDICTORS, Forecast, Needs, PredictorSpec
from capjax.scoring import protocol as bench
from tests._fake import fake_sweep, planted_curves


def test_split_is_seeded_disjoint_and_halves():
    dev = bench.split_candidates(61, seed=3)
    assert dev.sum() == 30 or dev.sum() == 31
    np.testing.assert_array_equal(dev, bench.split_candidates(61, seed=3))
    assert not np.array_equal(dev, bench.split_candidates(61, seed=4))


def test_budgets_are_at_least_one_epoch():
    assert [bench.budget_epochs(p, 50) for p in (1, 2, 5, 10, 20)] == [1, 1, 2, 5, 10]


def test_evaluate_scores_test_split_and_marks_a_breaking_predictor_failed(tmp_path, monkeypatch):
    fields, final = planted_curves(n=20)
    fields["test_acc"] = fields["val_acc"]  # the truth scored on; references see val_acc
    sweep = fake_sweep(tmp_path, fields)

    def broken(task):
        raise RuntimeError("curve fit did not converge")

    def cheat(task):  # reads the truth of every candidate: must only help on dev if scored there
        assert np.isnan(task.reference[~dev]).all(), "test candidates' truth leaked to a predictor"
        return Forecast(tuple(task.sweep.names), np.nan_to_num(task.reference, nan=0.0))

    dev = bench.split_candidates(20, seed=0)
    monkeypatch.setitem(PREDICTORS, "broken", PredictorSpec("broken", broken))
    monkeypatch.setitem(PREDICTORS, "cheat", PredictorSpec("cheat", cheat))
    scores = bench.evaluate(sweep, ["early_acc", "beta_coupling", "broken", "cheat"], [3, 8], 20, dev, seed=0)
    assert scores["broken"][3]["failed"].startswith("RuntimeError: curve fit did not converge")
    assert scores["early_acc"][8]["test"]["tau"] > 0.5
    assert scores["cheat"][8]["dev"]["tau"] == 1.0
    assert scores["beta_best"][8]["chosen_on_dev"] == "beta_coupling"
    # chosen on dev, reported with its test scores
    chosen = scores["single_best"][8]["chosen_on_dev"]
    assert scores[chosen][8]["dev"]["tau"] == 1.0
    assert scores["single_best"][8]["test"] == scores[chosen][8]["test"]
    table = bench.markdown_table(scores, [3, 8], [15, 40], "planted")
    assert "| broken | failed | failed |" in table and "early_acc" in table


def test_a_supervised_predictors_dev_score_is_cross_fitted_not_in_sample(tmp_path, monkeypatch):
    fields, _ = planted_curves(n=20)
    fields["test_acc"] = fields["val_acc"]
    sweep = fake_sweep(tmp_path, fields)

    def memorise(task):  # perfect in sample, worthless out of sample
        return Forecast(tuple(task.sweep.names), np.nan_to_num(task.reference, nan=0.0))

    monkeypatch.setitem(PREDICTORS, "memorise", PredictorSpec("memorise", memorise, Needs(references=1)))
    dev = bench.split_candidates(20, seed=0)
    scores = bench.evaluate(sweep, ["memorise", "early_acc"], [8], 20, dev, seed=0)
    assert not scores["memorise"][8]["dev"]["tau"] > 0.5  # held-out folds all predicted 0
    assert scores["single_best"][8]["chosen_on_dev"] == "early_acc"
