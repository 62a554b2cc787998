"""Bayesian ridge prediction of final accuracy (docs/method.md §2.4), against scikit-learn and exact math."""

import functools

import numpy as np
import pytest
from scipy.stats import gamma, norm
from sklearn.linear_model import BayesianRidge

from capjax import CapjaxInputError
from capjax.bayes import (
    Hyperprior,
    expected_regret,
    fit_bayes_ridge,
    predict_final,
    predict_from_references,
    prob_best,
)

# the model's fast path (evidence-maximising precisions); tests pass method="nuts" to sample
predict_fast = functools.partial(predict_final, method="fast")


def _regression(seed=0, n=12, f=2, noise=0.02):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    y = 0.7 + X @ rng.normal(0, 0.1, size=f) + noise * rng.normal(size=n)
    return X, y


def _curves(seed=0, C=4, T=6, noise=0.01):
    """Early curves: beta_eff falls towards 0 while accuracy rises to h(0)."""
    rng = np.random.default_rng(seed)
    beta = np.sort(rng.uniform(0.2, 2.0, size=(C, T)), axis=1)[:, ::-1] * 0.01
    h0 = rng.uniform(0.8, 0.9, size=C)
    slope = rng.uniform(-20, -5, size=C)
    acc = h0[:, None] + slope[:, None] * beta + noise * rng.normal(size=(C, T))
    return beta, acc, h0


def _sk_log_evidence(sk):
    """scikit-learn's last score minus its hyperprior terms: log p(y | alpha, lambda)."""
    a, l = sk.alpha_, sk.lambda_
    prior = sk.lambda_1 * np.log(l) - sk.lambda_2 * l + sk.alpha_1 * np.log(a) - sk.alpha_2 * a
    return sk.scores_[-1] - prior


# --- one regression against scikit-learn -------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ridge_intercept_is_sklearn_without_intercept_on_ones_column(seed):
    X, y = _regression(seed)
    Z = np.c_[np.ones(len(X)), X]
    sk = BayesianRidge(fit_intercept=False, tol=1e-12, max_iter=10_000, compute_score=True)
    sk.fit(Z, y)
    fit = fit_bayes_ridge(X, y, intercept="ridge")
    np.testing.assert_allclose(fit.alpha, sk.alpha_, rtol=1e-4)
    np.testing.assert_allclose(fit.lambda_, sk.lambda_, rtol=1e-4)
    np.testing.assert_allclose(np.r_[fit.intercept, fit.coef], sk.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fit.cov, sk.sigma_, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(fit.log_evidence, _sk_log_evidence(sk), rtol=1e-4)
    Xq = np.random.default_rng(9).normal(size=(5, X.shape[1]))
    mean, std = fit.predict(Xq, return_std=True)
    sk_mean, sk_std = sk.predict(np.c_[np.ones(5), Xq], return_std=True)
    np.testing.assert_allclose(mean, sk_mean, rtol=1e-5)
    np.testing.assert_allclose(std, sk_std, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_flat_intercept_is_sklearn_given_its_precisions(seed):
    """Same alpha and lambda: same posterior. The std adds the intercept's 1/(n alpha)."""
    X, y = _regression(seed)
    sk = BayesianRidge(tol=1e-12, max_iter=10_000).fit(X, y)
    fit = fit_bayes_ridge(X, y, alpha=sk.alpha_, lambda_=sk.lambda_)
    np.testing.assert_allclose(fit.coef, sk.coef_, rtol=1e-4)
    np.testing.assert_allclose(fit.intercept, sk.intercept_, rtol=1e-5)
    np.testing.assert_allclose(fit.cov[1:, 1:], sk.sigma_, rtol=1e-3)
    Xq = np.random.default_rng(9).normal(size=(5, X.shape[1]))
    mean, std = fit.predict(Xq, return_std=True)
    sk_mean, sk_std = sk.predict(Xq, return_std=True)
    np.testing.assert_allclose(mean, sk_mean, rtol=1e-5)
    np.testing.assert_allclose(std**2, sk_std**2 + 1 / (len(y) * sk.alpha_), rtol=1e-4)


def test_flat_intercept_evidence_update_keeps_one_dof_for_the_intercept():
    """The fixed point maximises the (flat-intercept) evidence times the Gamma hyperpriors."""
    X, y = _regression(3, n=8)
    hp = Hyperprior()
    fit = fit_bayes_ridge(X, y)

    def objective(a, l):
        ev = fit_bayes_ridge(X, y, alpha=a, lambda_=l).log_evidence
        return (
            ev + hp.alpha_1 * np.log(a) - hp.alpha_2 * a + hp.lambda_1 * np.log(l) - hp.lambda_2 * l
        )

    best = objective(fit.alpha, fit.lambda_)
    for fa, fl in [(1.05, 1), (1 / 1.05, 1), (1, 1.05), (1, 1 / 1.05)]:
        assert objective(fit.alpha * fa, fit.lambda_ * fl) < best
    # scikit-learn's centring counts n, not n - 1, degrees of freedom for the noise
    sk = BayesianRidge(tol=1e-12, max_iter=10_000).fit(X, y)
    assert fit.alpha < sk.alpha_


@pytest.mark.parametrize("intercept", ["ridge", "flat"])
def test_log_evidence_is_the_dense_gaussian_marginal(intercept):
    X, y = _regression(4, n=7)
    a, l = 900.0, 3.0
    Z = np.c_[np.ones(len(X)), X]
    s2 = 1e6  # a flat intercept is the limit of a very wide Gaussian one
    prior_var = np.diag([1 / l if intercept == "ridge" else s2] + [1 / l] * X.shape[1])
    K = np.eye(len(y)) / a + Z @ prior_var @ Z.T
    sign, logdet = np.linalg.slogdet(K)
    dense = -0.5 * (y @ np.linalg.solve(K, y) + logdet + len(y) * np.log(2 * np.pi))
    if intercept == "flat":
        dense += 0.5 * np.log(2 * np.pi * s2)
    fit = fit_bayes_ridge(X, y, intercept=intercept, alpha=a, lambda_=l)
    np.testing.assert_allclose(fit.log_evidence, dense, rtol=2e-5, atol=1e-3)


# --- per-candidate prediction ------------------------------------------------------------


@pytest.mark.parametrize("basis", ["linear", "quadratic"])
@pytest.mark.parametrize("intercept", ["flat", "ridge"])
def test_evidence_prediction_is_one_regression_per_candidate(basis, intercept):
    beta, acc, _ = _curves(C=3, T=7)
    beta[1, 5:] = acc[1, 5:] = np.nan  # a shorter run
    out = predict_fast(beta, acc, basis=basis, intercept=intercept, at=0.0, predictive="gaussian")
    s = out.details["beta_scale"]
    np.testing.assert_allclose(s, np.sqrt(np.nanmean(beta**2)), rtol=1e-12)
    degree = 1 if basis == "linear" else 2
    for c in range(3):
        ok = np.isfinite(acc[c])
        feats = np.stack([(beta[c, ok] / s) ** j for j in range(1, degree + 1)], axis=1)
        fit = fit_bayes_ridge(feats, acc[c, ok], intercept=intercept)
        mean, std = fit.predict(np.zeros((1, degree)), return_std=True)
        np.testing.assert_allclose(out.mean[c], mean[0], rtol=1e-5)
        np.testing.assert_allclose(out.std[c], std[0], rtol=1e-4)
        coef = np.r_[fit.intercept, fit.coef] / s ** np.arange(degree + 1)
        np.testing.assert_allclose(out.details["coef"][c], coef, rtol=1e-3)
    z = norm.ppf(0.95)
    np.testing.assert_allclose(out.lower, out.mean - z * out.std, rtol=1e-6)
    np.testing.assert_allclose(out.upper, out.mean + z * out.std, rtol=1e-6)
    # the draws are the Gaussian predictive
    np.testing.assert_allclose(out.samples.mean(0), out.mean, atol=4 * out.std.max() / 40)
    np.testing.assert_array_equal(out.details["n_used"], [7, 5, 7])


def test_prediction_is_equivariant_to_accuracy_shift_and_beta_units():
    beta, acc, _ = _curves(1)
    base = predict_fast(beta, acc)
    shifted = predict_fast(beta, acc - 0.05)
    np.testing.assert_allclose(shifted.mean, base.mean - 0.05, atol=2e-6)
    np.testing.assert_allclose(shifted.std, base.std, rtol=1e-4)
    for basis in ["linear", "quadratic"]:
        a = predict_fast(beta, acc, basis=basis)
        b = predict_fast(beta * 1e4, acc, basis=basis)
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-5)
        np.testing.assert_allclose(b.std, a.std, rtol=1e-4)


def test_n_early_and_at():
    beta, acc, _ = _curves(2, T=8)
    cut = predict_fast(beta[:, :4], acc[:, :4])
    early = predict_fast(beta, acc, n_early=4)
    np.testing.assert_allclose(early.mean, cut.mean, rtol=1e-6)
    # reading at the first observed beta gives (about) the first observed accuracy
    at_start = predict_fast(beta, acc, at=beta[:, 0])
    np.testing.assert_allclose(at_start.mean, acc[:, 0], atol=0.03)


def test_recovers_the_final_accuracy_of_clean_curves():
    beta, acc, h0 = _curves(3, C=5, T=6, noise=0.002)
    out = predict_fast(beta, acc)
    np.testing.assert_allclose(out.mean, h0, atol=0.01)
    assert np.all((out.lower <= h0) & (h0 <= out.upper))
    assert np.argmax(out.prob_best()) == np.argmax(h0)
    assert np.argmin(out.expected_regret()) == np.argmax(h0)


# --- NUTS against exact quadrature over the precisions ------------------------------------


def _quadrature(b, y, hp, intercept, x_star=0.0, n_grid=160):
    """Exact posterior predictive at x_star on a (log alpha, log lambda) grid, float64."""
    T = len(y)
    Phi = np.c_[np.ones(T), b]
    la, ll = np.meshgrid(
        np.linspace(np.log(1e2), np.log(1e6), n_grid),
        np.linspace(np.log(1e-3), np.log(1e4), n_grid),
        indexing="ij",
    )
    a, l = np.exp(la.ravel()), np.exp(ll.ravel())
    s2 = 1e6
    v0 = 1 / l if intercept == "ridge" else np.full_like(l, s2)
    P = np.zeros((len(a), 2, 2))
    P[:, 0, 0], P[:, 1, 1] = v0, 1 / l
    K = np.eye(T) / a[:, None, None] + Phi @ P @ Phi.T
    Kinv_y = np.linalg.solve(K, y[None, :, None])[..., 0]
    logp = -0.5 * np.einsum("t,gt->g", y, Kinv_y) - 0.5 * np.linalg.slogdet(K)[1]
    logp += gamma.logpdf(a, hp.alpha_1, scale=1 / hp.alpha_2) + np.log(a)
    logp += gamma.logpdf(l, hp.lambda_1, scale=1 / hp.lambda_2) + np.log(l)
    xs = np.array([1.0, x_star])
    kx = np.einsum("tk,gkj,j->gt", Phi, P, xs)
    mu = np.einsum("gt,gt->g", kx, Kinv_y)
    var = np.einsum("k,gkj,j->g", xs, P, xs) - np.einsum(
        "gt,gt->g", kx, np.linalg.solve(K, kx[..., None])[..., 0]
    )
    var = var + 1 / a
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = w @ mu
    sd = np.sqrt(w @ (var + mu**2) - mean**2)
    grid = np.linspace(mean - 6 * sd, mean + 6 * sd, 2001)
    cdf = norm.cdf((grid[:, None] - mu) / np.sqrt(var)) @ w
    return mean, sd, np.interp([0.05, 0.95], cdf, grid)


@pytest.mark.parametrize("intercept", ["ridge", "flat"])
def test_nuts_matches_exact_quadrature(intercept):
    rng = np.random.default_rng(1)
    b = np.linspace(1.5, 0.5, 6) + 0.05 * rng.normal(size=6)
    y = 0.8 - 0.1 * b + 0.01 * rng.normal(size=6)
    hp = Hyperprior(alpha_1=3.0, alpha_2=3e-4, lambda_1=2.0, lambda_2=0.05)
    mean, sd, q = _quadrature(b, y, hp, intercept)
    out = predict_fast(
        b, y, intercept=intercept, method="nuts", hyperprior=hp, rescale=False,
        num_warmup=500, num_samples=3000, key=3,
    )  # fmt: skip
    assert not out.gaussian
    np.testing.assert_allclose(out.mean[0], mean, atol=0.05 * sd)
    np.testing.assert_allclose(out.std[0], sd, rtol=0.05)
    np.testing.assert_allclose([out.lower[0], out.upper[0]], q, atol=0.1 * sd)


def test_hierarchical_prior_pools_the_slopes():
    beta, acc, _ = _curves(4, C=5, T=5, noise=0.01)
    kw = dict(method="nuts", num_warmup=200, num_samples=400, key=1)
    indep = predict_fast(beta, acc, **kw)
    pooled = predict_fast(beta, acc, hierarchical=True, **kw)
    assert set(pooled.details) >= {"alpha", "mu", "tau", "coef", "mcmc"}
    assert "lambda" not in pooled.details
    assert pooled.details["mu"].shape == (400, 1)  # only the slope is pooled (flat intercept)
    spread = lambda o: np.std(o.details["coef"][:, 1])  # noqa: E731
    assert spread(pooled) < spread(indep)
    for out in (indep, pooled):
        assert out.samples.shape == (400, 5)
        np.testing.assert_allclose(out.prob_best().sum(), 1.0)
        assert np.all(out.lower < out.mean) and np.all(out.mean < out.upper)


@pytest.mark.slow
def test_nuts_intervals_are_calibrated_on_data_from_the_model():
    """Candidates drawn from the prior: the 90% intervals cover about 90% of final accuracies."""
    rng = np.random.default_rng(3)
    C, T = 150, 5
    hp = Hyperprior(alpha_1=3.0, alpha_2=3e-4, lambda_1=4.0, lambda_2=0.01)
    alpha = rng.gamma(hp.alpha_1, 1 / hp.alpha_2, size=C)
    slope = rng.normal(0, 1 / np.sqrt(rng.gamma(hp.lambda_1, 1 / hp.lambda_2, size=C)))
    h0 = rng.uniform(0.6, 0.8, size=C)
    b = np.sort(rng.uniform(0.2, 2.0, size=(C, T)), axis=1)[:, ::-1]
    acc = h0[:, None] + slope[:, None] * b + rng.normal(size=(C, T)) / np.sqrt(alpha)[:, None]
    final = h0 + rng.normal(size=C) / np.sqrt(alpha)
    out = predict_fast(
        b, np.clip(acc, 0, 1), method="nuts", hyperprior=hp, rescale=False,
        num_warmup=500, num_samples=1000, key=0,
    )  # fmt: skip
    coverage = np.mean((out.lower <= final) & (final <= out.upper))
    assert 0.82 <= coverage <= 0.97, coverage


# --- choosing among candidates ----------------------------------------------------------


def test_prob_best_and_regret_match_closed_form_for_two_gaussians():
    rng = np.random.default_rng(0)
    mu, sd = np.array([0.80, 0.82]), np.array([0.02, 0.03])
    s = mu + sd * rng.normal(size=(400_000, 2))
    d_mu, d_sd = mu[1] - mu[0], np.hypot(*sd)
    p1 = norm.cdf(d_mu / d_sd)
    np.testing.assert_allclose(prob_best(s), [1 - p1, p1], atol=3e-3)
    # E[(B - A)+] for B - A ~ N(d_mu, d_sd^2)
    r0 = d_mu * norm.cdf(d_mu / d_sd) + d_sd * norm.pdf(d_mu / d_sd)
    np.testing.assert_allclose(expected_regret(s), [r0, r0 - d_mu], atol=3e-4)


def test_prob_best_checks_its_input():
    with pytest.raises(CapjaxInputError, match="n_draws, n_candidates"):
        prob_best(np.zeros(5))
    with pytest.raises(CapjaxInputError, match="NaN"):
        expected_regret(np.array([[0.1, np.nan]]))
    with pytest.raises(CapjaxInputError, match="all -inf"):
        prob_best(np.array([[-np.inf, -np.inf]]))


def test_a_failed_candidate_marked_minus_inf_is_never_best():
    s = np.array([[0.8, -np.inf, 0.7], [0.6, -np.inf, 0.9]])
    np.testing.assert_array_equal(prob_best(s), [0.5, 0.0, 0.5])
    np.testing.assert_allclose(expected_regret(s), [0.15, np.inf, 0.05])


# --- cross-candidate regression on reference models -------------------------------------


def _zoo(seed, n):
    rng = np.random.default_rng(seed)
    T = 5
    beta = np.sort(rng.uniform(0.001, 0.02, size=(n, T)), axis=1)[:, ::-1]
    final = 0.95 - 8.0 * beta[:, -1] + 0.003 * rng.normal(size=n)
    acc = final[:, None] - 0.05 * np.arange(T)[::-1] + 0.005 * rng.normal(size=(n, T))
    return beta, np.clip(acc, 0, 1), final


def test_reference_regression_predicts_and_is_one_shared_fit():
    ref_beta, ref_acc, ref_final = _zoo(0, 12)
    beta, acc, final = _zoo(1, 4)
    out = predict_from_references(beta, acc, ref_beta, ref_acc, ref_final, use_accuracy=False)
    np.testing.assert_allclose(out.mean, final, atol=0.015)
    fit = fit_bayes_ridge(ref_beta[:, -1:], ref_final)
    mean, std = fit.predict(beta[:, -1:], return_std=True)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-4)
    np.testing.assert_allclose(out.std, std, rtol=1e-3)
    np.testing.assert_allclose(out.details["coef"], [fit.intercept, *fit.coef], rtol=1e-3)
    # shared coefficients: two near-identical candidates have strongly correlated latent draws
    twins = predict_from_references(
        np.r_[beta[:1], beta[:1] * 1.01], np.r_[acc[:1], acc[:1]], ref_beta, ref_acc,
        ref_final, use_accuracy=False,
    )  # fmt: skip
    assert np.corrcoef(twins.latent_samples.T)[0, 1] > 0.95
    with_acc = predict_from_references(beta, acc, ref_beta, ref_acc, ref_final, n_early=3)
    # only the observation at n_early is read: gaps elsewhere are fine, a gap there is not
    gappy = beta.copy()
    gappy[0, 0] = np.nan
    same = predict_from_references(gappy, acc, ref_beta, ref_acc, ref_final, n_early=3)
    np.testing.assert_allclose(same.mean, with_acc.mean)
    acc_gap = acc.copy()
    acc_gap[2, 2] = np.nan
    with pytest.raises(CapjaxInputError, match=r"candidates \[2\] have no observation"):
        predict_from_references(beta, acc_gap, ref_beta, ref_acc, ref_final, n_early=3)
    assert with_acc.details["coef"].shape == (3,)
    assert with_acc.samples.shape == (2000, 4)


def test_reference_regression_with_nuts():
    ref_beta, ref_acc, ref_final = _zoo(0, 10)
    beta, acc, final = _zoo(1, 3)
    out = predict_from_references(
        beta, acc, ref_beta, ref_acc, ref_final, method="nuts",
        num_warmup=300, num_samples=600, key=2,
    )  # fmt: skip
    assert out.samples.shape == (600, 3)
    np.testing.assert_allclose(out.mean, final, atol=0.03)


# --- input errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(accuracy=np.full((2, 5), 85.0)), "percentages"),
        (dict(signal=np.ones((2, 4))), "shape"),
        (dict(n_early=2), "at least 3 pairs"),
        (dict(basis="quadratic", n_early=3), "at least 4 pairs"),
        (dict(n_early=9), r"n_early=9"),
        (dict(basis="cubic"), "basis"),
        (dict(intercept="none"), "intercept"),
        (dict(method="mcmc"), "method"),
        (dict(hierarchical=True), "needs method='nuts'"),
        (dict(level=90), "level"),
        (dict(at=np.zeros(3)), "at has shape"),
    ],
)
def test_bad_input_is_explained(kwargs, match):
    beta, acc, _ = _curves(0, C=2, T=5)
    args = dict(signal=beta, accuracy=acc) | kwargs
    with pytest.raises(CapjaxInputError, match=match):
        predict_fast(**args)


def test_padding_must_agree_and_hyperprior_must_be_proper():
    beta, acc, _ = _curves(0, C=2, T=5)
    beta[0, -1] = np.nan
    with pytest.raises(CapjaxInputError, match="disagree"):
        predict_fast(beta[0], acc[0])
    with pytest.raises(CapjaxInputError, match="alpha_2"):
        Hyperprior(alpha_2=0.0)
    ref_beta, ref_acc, ref_final = _zoo(0, 3)
    with pytest.raises(CapjaxInputError, match="reference model"):
        predict_from_references(ref_beta, ref_acc, ref_beta, ref_acc, ref_final)


def test_constant_beta_is_refused_not_extrapolated_from_the_prior():
    beta, acc, _ = _curves(0, C=2, T=5)
    beta[1] = 0.01
    with pytest.raises(CapjaxInputError, match=r"takes only 1 distinct"):
        predict_fast(beta[1], acc[1])
    beta[1, :3] = [0.02, 0.01, 0.02]  # two distinct values: enough for a line only
    predict_fast(beta, acc)
    with pytest.raises(CapjaxInputError, match="needs 3"):
        predict_fast(beta[1], acc[1], basis="quadratic")
    ref_beta, ref_acc, ref_final = _zoo(0, 6)
    ref_beta[:, -1] = 0.01
    with pytest.raises(CapjaxInputError, match="same for every reference"):
        predict_from_references(ref_beta, ref_acc, ref_beta, ref_acc, ref_final)
