"""Transferability scores (docs/method.md §4) against dense, direct computations."""

import jax
import numpy as np
import pytest
from scipy import optimize, stats

from capjax.base.validation import CapjaxInputError
from capjax.signals.transferability import coding_rate, h_score, logme, max_evidence, transrate


def _dense_log_evidence(f, t, alpha, beta):
    """log N(t | 0, F F^T / alpha + I / beta): the marginal likelihood, no SVD, no algebra."""
    cov = f @ f.T / alpha + np.eye(f.shape[0]) / beta
    return stats.multivariate_normal(np.zeros(f.shape[0]), cov).logpdf(t)


def _task(n=40, d=6, n_classes=3, signal=2.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    centres = rng.normal(size=(n_classes, d)) * signal
    return centres[labels] + rng.normal(size=(n, d)), labels


@pytest.mark.parametrize("n,d", [(40, 6), (8, 15)])
def test_max_evidence_is_the_dense_evidence_at_its_maximum(n, d):
    rng = np.random.default_rng(1)
    f = rng.normal(size=(n, d))
    t = f @ rng.normal(size=d) * 0.3 + rng.normal(size=n) * 0.5
    with jax.enable_x64(True):
        ev, alpha, beta = max_evidence(f, t, tol=1e-12, max_iter=2000)
    assert ev == pytest.approx(_dense_log_evidence(f, t, alpha, beta), rel=1e-9)
    best = optimize.minimize(
        lambda p: -_dense_log_evidence(f, t, *np.exp(p)),
        x0=[0.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
    )
    assert ev >= -best.fun - 1e-7
    if n > d:  # with d >= n the maximum sits at beta -> inf
        np.testing.assert_allclose(np.exp(best.x), [alpha, beta], rtol=1e-3)


def test_logme_is_mean_class_evidence_per_sample():
    f, y = _task()
    with jax.enable_x64(True):
        per_class = [max_evidence(f, (y == k).astype(float))[0] for k in range(3)]
        assert logme(f, y) == pytest.approx(np.mean(per_class) / f.shape[0], rel=1e-9)


def test_informative_features_score_higher():
    good, y = _task(signal=3.0)
    noise = np.random.default_rng(5).normal(size=good.shape)
    for score in (logme, h_score, transrate):
        assert score(good, y) > score(noise, y), score.__name__


def test_h_score_matches_numpy():
    f, y = _task(n=30, d=4)
    centred = f - f.mean(0)
    means = np.stack([centred[y == k].mean(0) for k in range(3)])[y]
    expected = np.trace(np.linalg.pinv(np.cov(f.T, bias=True)) @ np.cov(means.T, bias=True))
    with jax.enable_x64(True):
        assert h_score(f, y + 7) == pytest.approx(expected, rel=1e-9)


def test_transrate_matches_logdet_formula():
    f, y = _task(n=30, d=4)
    eps = 1e-2

    def rate(z):
        n, d = z.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]

    z = f - f.mean(0)
    expected = rate(z) - np.mean([rate(z[y == k]) for k in range(3)])
    with jax.enable_x64(True):
        assert transrate(f, y, eps=eps) == pytest.approx(expected, rel=1e-9)
        assert float(coding_rate(z[:3], eps)) == pytest.approx(rate(z[:3]), rel=1e-9)


def test_bad_input():
    f, y = _task()
    with pytest.raises(CapjaxInputError, match="integer class ids"):
        logme(f, y.astype(float))
    with pytest.raises(CapjaxInputError, match="at least 2 classes"):
        h_score(f, np.zeros_like(y))
    with pytest.raises(CapjaxInputError, match="shape"):
        transrate(f[:, :, None], y)
    with pytest.raises(CapjaxInputError, match="NaN"):
        logme(np.full_like(f, np.nan), y)
