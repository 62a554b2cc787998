"""capjax's combined predictor: its features, its standardisation and its regression."""

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.linear_model import BayesianRidge
from sklearn.preprocessing import StandardScaler

from capjax.bayes import fit_bayes_ridge, regression_draws
from capjax.predictors import PREDICTORS, Task
from capjax.predictors.combined import COMBINED_FEATURES, combined_features, logit, standardise
from capjax.scoring.metrics import kendall_tau
from tests._fake import fake_sweep, planted_curves


def test_features_read_the_budget_epoch_and_zero_cost_proxies_at_init(tmp_path):
    fields, _ = planted_curves(n=6)
    fields["l2_norm"] = np.arange(6 * 21, dtype=float).reshape(6, 21) - 50.0
    fields["zc_synflow"] = np.where(np.arange(21) == 0, 1e6, np.nan) * np.ones((6, 1))
    sweep = fake_sweep(tmp_path, fields)
    X, names = combined_features(Task(sweep, budget=4, full_epochs=20))
    assert names == list(COMBINED_FEATURES) and X.shape == (6, len(COMBINED_FEATURES))
    col = dict(zip(names, X.T))
    np.testing.assert_allclose(col["logit_acc"], logit(fields["val_acc"][:, 4]))
    l2 = fields["l2_norm"][:, 4]
    np.testing.assert_allclose(col["l2_norm"], np.sign(l2) * np.log1p(np.abs(l2)))
    np.testing.assert_allclose(col["zc_synflow"], np.log1p(1e6))
    beta = fields["beta_hessian"]
    np.testing.assert_allclose(col["log_beta_change_hessian"], np.log(beta[:, 4]) - np.log(beta[:, 0]))
    assert np.isnan(col["logme"]).all()  # not recorded: missing, not an error


def test_standardise_is_sklearn_on_references_imputes_the_mean_and_drops_dead_columns():
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(2.0, 3.0, (10, 3)), np.ones(10), np.full(10, np.nan)]
    X[7, 0] = np.nan
    ref = np.arange(10) < 6
    Z = standardise(X, ref)
    assert Z.shape == (10, 3)  # the constant and the empty column carry nothing
    np.testing.assert_allclose(Z[:, 1:], StandardScaler().fit(X[ref, 1:3]).transform(X[:, 1:3]))
    assert Z[7, 0] == 0.0


def test_regression_draws_is_bayesian_ridge_with_more_features_than_references():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 20))
    y = X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.normal(size=12)
    Xq = rng.normal(size=(4, 20))
    samples, latent, mean, std, theta, _ = regression_draws(X, y, Xq)
    fit = fit_bayes_ridge(X, y)
    np.testing.assert_allclose(mean, fit.predict(Xq), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(theta.mean(0), [fit.intercept, *fit.coef], atol=0.05)
    # scikit-learn's evidence keeps no degree of freedom for the intercept: close, not equal
    sk = BayesianRidge().fit(X, y)
    assert kendalltau(np.asarray(mean), sk.predict(Xq)).statistic == 1.0
    assert samples.shape == latent.shape == (2000, 4) and std.shape == (4,)


@pytest.mark.slow
def test_combined_forecasts_accuracy_in_the_unit_interval_from_references_only(tmp_path):
    fields, final = planted_curves(n=24)
    sweep = fake_sweep(tmp_path, fields)
    dev = np.arange(24) % 2 == 0
    f = PREDICTORS["combined"](Task(sweep, 5, 20, reference=np.where(dev, final, np.nan)))
    assert kendall_tau(f.score[~dev], final[~dev]) > 0.6
    assert np.all((f.samples > 0) & (f.samples < 1))
    assert np.all(f.lower <= f.mean) and np.all(f.mean <= f.upper)
    covered = (f.lower[~dev] <= final[~dev]) & (final[~dev] <= f.upper[~dev])
    assert covered.mean() >= 0.7
