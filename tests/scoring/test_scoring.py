"""Scoring metrics (docs/method.md §5) against scipy and hand-worked cases."""

import numpy as np
import pytest
from scipy import stats

from capjax.base.validation import CapjaxInputError
from capjax.scoring.metrics import (
    bootstrap_interval,
    interval_coverage,
    kendall_tau,
    precision_at_k,
    score_predictor,
    spearman_rho,
    top1_regret,
)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_rank_correlations_match_scipy(seed, ties):
    rng = np.random.default_rng(seed)
    true = rng.uniform(0.5, 0.9, 30)
    pred = true + rng.normal(0, 0.1, 30)
    if ties:  # rounded values tie in both arrays
        true, pred = np.round(true, 1), np.round(pred, 1)
    assert kendall_tau(pred, true) == pytest.approx(stats.kendalltau(pred, true)[0], abs=1e-12)
    assert spearman_rho(pred, true) == pytest.approx(stats.spearmanr(pred, true)[0], abs=1e-12)


def test_constant_prediction_gives_nan_correlation():
    true = np.array([0.1, 0.5, 0.9])
    assert np.isnan(kendall_tau(np.ones(3), true))
    assert np.isnan(spearman_rho(np.ones(3), true))


def test_top1_regret():
    true = np.array([0.70, 0.90, 0.80])
    assert top1_regret(np.array([3.0, 2.0, 1.0]), true) == pytest.approx(0.20)
    assert top1_regret(np.array([1.0, 3.0, 2.0]), true) == 0.0
    # a tie for first: expected regret over a uniform pick
    assert top1_regret(np.array([2.0, 1.0, 2.0]), true) == pytest.approx(0.15)
    # a failed candidate is never chosen, and the best is taken over the whole zoo
    assert top1_regret(np.array([1.0, np.nan, 0.0]), true) == pytest.approx(0.20)


def test_precision_at_k():
    true = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert precision_at_k(true, true, k=2) == 1.0
    assert precision_at_k(-true, true, k=2) == 0.0
    assert precision_at_k(np.array([0, 0, 0, 1, 2.0]), true, k=3) == pytest.approx(
        (1 + 1 + 1 / 3) / 3
    )
    assert precision_at_k(np.array([np.nan, 0, 0, 1, 2.0]), true, k=3) == pytest.approx(
        (1 + 1 + 1 / 2) / 3
    )
    with pytest.raises(CapjaxInputError, match="k=6"):
        precision_at_k(true, true, k=6)


def test_interval_coverage():
    true = np.array([0.5, 0.6, 0.7, 0.8])
    assert interval_coverage(true - 0.01, true + 0.01, true) == 1.0
    assert interval_coverage(true + 0.01, true + 0.02, true) == 0.0
    with pytest.raises(CapjaxInputError, match="lower > upper"):
        interval_coverage(true + 0.01, true, true)


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.5, 0.9, 40)
    pred = true + rng.normal(0, 0.05, 40)
    lo, hi = bootstrap_interval(kendall_tau, pred, true, n_boot=300, seed=1)
    assert lo < kendall_tau(pred, true) < hi
    assert (lo, hi) == bootstrap_interval(kendall_tau, pred, true, n_boot=300, seed=1)
    lo50, hi50 = bootstrap_interval(kendall_tau, pred, true, n_boot=300, level=0.5, seed=1)
    assert lo <= lo50 <= hi50 <= hi


def test_score_predictor_drops_failed_candidates():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.5, 0.9, 12)
    pred = true.copy()
    pred[[0, 5]] = np.nan
    row = score_predictor(pred, true, lower=true - 0.1, upper=true + 0.1, k=3, n_boot=50)
    assert row["n_candidates"] == 12 and row["n_dropped"] == 2 and row["n_scored"] == 10
    assert row["tau"] == pytest.approx(1.0) and row["rho"] == pytest.approx(1.0)
    assert row["tau_lo"] <= row["tau"] <= row["tau_hi"]
    assert row["coverage"] == 1.0
    finite = np.delete(true, [0, 5])
    assert row["regret"] == pytest.approx(true.max() - finite.max())
    assert score_predictor(true, true, n_boot=10)["coverage"] is None


def test_score_predictor_survives_a_predictor_that_always_fails():
    row = score_predictor(np.full(4, np.nan), np.array([0.1, 0.2, 0.3, 0.4]), k=2, n_boot=10)
    assert np.isnan(row["tau"]) and row["n_dropped"] == 4
    assert row["regret"] == pytest.approx(0.4 - 0.25)


def test_bad_input_messages():
    with pytest.raises(CapjaxInputError, match="percentages"):
        kendall_tau([1.0, 2.0], [50.0, 60.0])
    with pytest.raises(CapjaxInputError, match="NaN"):
        kendall_tau([np.nan, 2.0, 3.0], [0.1, 0.2, 0.3])
    with pytest.raises(CapjaxInputError, match="shape"):
        spearman_rho([1.0, 2.0], [0.1, 0.2, 0.3])
    with pytest.raises(CapjaxInputError, match="both lower and upper"):
        score_predictor([1.0, 2.0], [0.1, 0.2], lower=[0.0, 0.0])
