"""Learning-curve baselines (docs/method.md §4): loss sums by hand, extrapolation on known curves."""

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.signals.curves import (
    FAMILIES,
    CurveFit,
    curve_extrapolation,
    early_val_accuracy,
    extrapolate_curve,
    sovl,
    tse,
    tse_e,
    tse_ema,
)

LOSS = np.array([[2.0, 1.0, 0.5, 0.25], [3.0, 2.0, np.nan, np.nan]])


def test_loss_sums_are_negated_and_windowed():
    np.testing.assert_allclose(tse(LOSS, 2), [-3.0, -5.0])
    np.testing.assert_allclose(sovl(LOSS, 2), [-3.0, -5.0])
    np.testing.assert_allclose(tse_e(LOSS, 3, E=2), [-1.5, np.nan])
    np.testing.assert_allclose(tse_ema(LOSS[0], 3, gamma=0.5), -(0.25 * 2.0 + 0.5 * 1.0 + 0.5))
    assert tse(LOSS[0], 4) == -3.75
    # gamma = 1 is plain TSE; E = budget is plain TSE
    np.testing.assert_allclose(tse_ema(LOSS, 2, gamma=1.0), tse(LOSS, 2))
    np.testing.assert_allclose(tse_e(LOSS, 2, E=2), tse(LOSS, 2))


def test_diverged_candidate_scores_nan():
    assert np.isnan(tse(np.array([1.0, np.inf, 0.5]), 3))


def test_early_val_accuracy():
    acc = np.array([[0.2, 0.5, 0.6], [0.3, np.nan, np.nan]])
    np.testing.assert_allclose(early_val_accuracy(acc, 1), [0.2, 0.3])
    np.testing.assert_allclose(early_val_accuracy(acc, 3), [0.6, np.nan])
    with pytest.raises(CapjaxInputError, match="percentages"):
        early_val_accuracy(acc * 100, 1)


def test_budget_checks():
    with pytest.raises(CapjaxInputError, match="budget=5"):
        tse(LOSS, 5)
    with pytest.raises(CapjaxInputError, match="whole number"):
        tse(LOSS, 2.0)
    with pytest.raises(CapjaxInputError, match="E=3"):
        tse_e(LOSS, 2, E=3)
    with pytest.raises(CapjaxInputError, match="shape"):
        sovl(np.zeros((2, 2, 2)), 1)


def test_each_family_recovers_its_own_noiseless_curve():
    # Curves drawn from the pow3 family: every family should fit the first 12 epochs
    # and land near the true epoch-60 value, since they all describe saturating curves.
    x = np.arange(1, 61, dtype=float)
    y = 0.9 - 0.5 * x**-0.7
    fit = extrapolate_curve(y[:12], 60)
    assert isinstance(fit, CurveFit) and fit.reason is None
    assert fit.per_family["pow3"] == pytest.approx(y[-1], abs=1e-3)
    assert abs(fit.value - y[-1]) < 0.05
    assert sum(fit.weights.values()) == pytest.approx(1.0)
    assert set(fit.per_family) | set(fit.failed) == set(FAMILIES)


def test_too_few_points_skip_big_families_and_batch_never_raises():
    acc = np.array([[0.3, 0.5, 0.6], [0.4, np.nan, np.nan]])
    fits = extrapolate_curve(acc, 20, families=["pow3", "pow4", "ilog2"])
    assert "needs at least 4" in fits[0].failed["pow4"]
    assert 0.6 <= fits[0].value <= 1.0
    assert np.isnan(fits[1].value) and "at least 2" in fits[1].reason
    scores = curve_extrapolation(acc, 3, 20, families=["pow3", "ilog2"])
    assert scores.shape == (2,) and np.isnan(scores[1])


def test_inverse_mse_weighting_prefers_better_fit():
    x = np.arange(1, 11, dtype=float)
    y = 0.9 - 0.5 * x**-0.7
    fit = extrapolate_curve(y, 50, families=["pow3", "ilog2"], weighting="inverse_mse")
    assert fit.weights["pow3"] > 0.9


def test_extrapolation_bad_input():
    with pytest.raises(CapjaxInputError, match="at least 2"):
        extrapolate_curve(np.array([0.5]), 10)
    with pytest.raises(CapjaxInputError, match="unknown curve families"):
        extrapolate_curve(np.array([0.5, 0.6]), 10, families=["pow5"])
    with pytest.raises(CapjaxInputError, match="percentages"):
        extrapolate_curve(np.array([50.0, 60.0]), 10)
