"""Power-law alpha of eigenvalue spectra (docs/method.md §4): brute-force oracle, Pareto, Marchenko-Pastur."""

import jax
import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.signals.spectral import esd, fit_power_law, layer_alphas, mean_alpha


def _clauset_brute_force(x, min_tail):
    """Clauset et al. 2009 written as plainly as possible: loop over xmin, loop over points."""
    x = np.sort(x)
    best = (np.inf, None, None)
    for i in range(len(x)):
        tail = x[i:]
        if len(tail) < min_tail:
            break
        alpha = 1 + len(tail) / np.sum(np.log(tail / x[i]))
        cdf = 1 - (tail / x[i]) ** (1 - alpha)
        steps = np.arange(len(tail)) / len(tail)
        d = max(np.max(np.abs(steps + 1 / len(tail) - cdf)), np.max(np.abs(cdf - steps)))
        if d < best[0]:
            best = (d, alpha, x[i])
    return best


def test_matches_brute_force_clauset():
    x = np.random.default_rng(0).pareto(1.5, size=60) + 1.0
    with jax.enable_x64(True):
        fit = fit_power_law(x, min_tail=5)
        ks, alpha, xmin = _clauset_brute_force(x, 5)
        assert float(fit.ks) == pytest.approx(ks, rel=1e-9)
        assert float(fit.alpha) == pytest.approx(alpha, rel=1e-9)
        assert float(fit.xmin) == xmin


@pytest.mark.parametrize("alpha", [2.5, 3.5])
def test_recovers_pareto_exponent(alpha):
    # numpy's pareto(a) + 1 has density a x^-(a+1) on x >= 1, i.e. alpha = a + 1.
    x = np.random.default_rng(1).pareto(alpha - 1, size=1000) + 1.0
    assert float(fit_power_law(0.01 * x).alpha) == pytest.approx(alpha, abs=0.25)


def test_gaussian_matrix_has_large_alpha_heavy_tailed_matrix_small():
    rng = np.random.default_rng(0)
    gaussian = [float(fit_power_law(esd(rng.normal(size=(512, 256)))).alpha) for _ in range(3)]
    heavy = [float(fit_power_law(esd(rng.standard_t(2, size=(512, 256)))).alpha) for _ in range(3)]
    assert np.mean(gaussian) > 5.0 and max(heavy) < 3.2


def test_esd_is_squared_singular_values_over_larger_dim():
    w = np.random.default_rng(2).normal(size=(3, 3, 4, 6))
    flat = w.reshape(36, 6)
    np.testing.assert_allclose(
        np.sort(np.asarray(esd(w))), np.sort(np.linalg.eigvalsh(flat.T @ flat) / 36), rtol=1e-4
    )


def test_layer_alphas_over_a_params_tree():
    rng = np.random.default_rng(3)
    params = {
        "conv": {"kernel": rng.standard_t(2, size=(3, 3, 16, 64)), "bias": np.zeros(64)},
        "dense": {"kernel": rng.normal(size=(64, 5)), "bias": np.zeros(5)},
    }
    alphas = layer_alphas(params)
    assert list(alphas) == ["['conv']['kernel']", "['dense']['kernel']"]
    assert np.isfinite(alphas["['conv']['kernel']"])
    assert np.isnan(alphas["['dense']['kernel']"])  # 5 eigenvalues < min_tail
    assert mean_alpha(params) == pytest.approx(alphas["['conv']['kernel']"])
    with pytest.raises(CapjaxInputError, match="ndim >= 2"):
        layer_alphas({"bias": np.zeros(3)})
    with pytest.raises(CapjaxInputError, match="NaN"):
        layer_alphas({"kernel": np.full((4, 4), np.nan)})


def test_the_one_sided_ks_convention_never_exceeds_the_exact_distance():
    x = np.random.default_rng(1).pareto(2.0, 300) + 1.0
    both, lower = fit_power_law(x), fit_power_law(x, ks="lower")
    assert float(lower.ks) <= float(both.ks) + 1e-7
    with pytest.raises(CapjaxInputError, match="ks is 'left'"):
        fit_power_law(x, ks="left")


def test_the_lower_convention_reproduces_the_powerlaw_package_weightwatcher_calls():
    """powerlaw 1.5's ``Fit(evals)`` (WeightWatcher 0.7.7's default fit for >= 20 eigenvalues)
    tries every xmin but the largest and reads the empirical CDF at i/m: ``ks="lower", min_tail=2``."""
    powerlaw = pytest.importorskip("powerlaw")
    import contextlib
    import io
    import warnings

    rng = np.random.default_rng(0)
    for dof in range(3, 8):
        w = {"kernel": rng.standard_t(dof, size=(200, 80)).astype(np.float32)}
        ev = np.sort(np.asarray(esd(w["kernel"]), np.float64))
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = powerlaw.Fit(ev, verbose=False).alpha
        (alpha,) = layer_alphas(w, ks="lower", min_tail=2).values()
        assert alpha == pytest.approx(reference, rel=1e-4)
