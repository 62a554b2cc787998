"""predict_final, rank, plot_ranking (docs/method.md §2.4): the issue's oracles through the public API.

tests/bayes/test_bayes_ridge.py already checks the regression against scikit-learn on small
samples, NUTS against exact quadrature over the precisions, the hierarchical prior and
P(best)/regret against closed forms; here: the oracles it leaves out, per-candidate
screening of a batch, the single-candidate errors, and the ranking.
"""

import json

import numpy as np
import pytest
from sklearn.linear_model import BayesianRidge

from capjax.base.validation import CapjaxInputError
from capjax.bayes import Hyperprior, fit_bayes_ridge, plot_ranking, predict_final, rank


def _curves(seed, C, T, noise=0.005, h0=None):
    """Early curves: the signal falls towards 0 while accuracy rises linearly to h0."""
    rng = np.random.default_rng(seed)
    signal = np.sort(rng.uniform(0.1, 1.0, size=(C, T)), axis=1)[:, ::-1]
    h0 = rng.uniform(0.8, 0.9, size=C) if h0 is None else np.asarray(h0)
    slope = rng.uniform(-0.4, -0.2, size=C)
    acc = h0[:, None] + slope[:, None] * signal + noise * rng.normal(size=(C, T))
    return signal, acc, h0


# --- oracles ---------------------------------------------------------------------------


@pytest.mark.parametrize("basis", ["linear", "quadratic"])
def test_coefficients_agree_with_sklearn_with_many_points(basis):
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 1.5, size=150)
    degree = 1 if basis == "linear" else 2
    acc = 0.85 - 0.3 * s + 0.05 * s**degree + 0.01 * rng.normal(size=s.size)
    pred = predict_final(s, acc, method="fast", basis=basis)
    sk = BayesianRidge().fit(np.stack([s**j for j in range(1, degree + 1)], axis=1), acc)
    # the issue asks for 0.02; with 150 points the one-dof difference in the noise update
    # (bayes_ridge's module docstring) is far below that
    np.testing.assert_allclose(pred.coef[0], [sk.intercept_, *sk.coef_], atol=1e-4)
    np.testing.assert_allclose(pred.mean[0], sk.predict(np.zeros((1, degree)))[0], atol=1e-4)


def test_nuts_with_fixed_precisions_is_the_conjugate_posterior():
    """Gamma hyperpriors 1% wide pin alpha and lambda: NUTS must give the closed form."""
    signal, acc, _ = _curves(1, C=2, T=6)
    a0, l0, shape = 1e4, 10.0, 1e4
    hp = Hyperprior(alpha_1=shape, alpha_2=shape / a0, lambda_1=shape, lambda_2=shape / l0)
    pred = predict_final(
        signal, acc, method="nuts", hyperprior=hp, rescale=False,
        num_warmup=300, num_samples=2000, key=0,
    )  # fmt: skip
    S = pred.samples.shape[0]
    np.testing.assert_allclose(pred.details["alpha"].mean(0), a0, rtol=0.01)
    np.testing.assert_allclose(pred.details["lambda"].mean(0), l0, rtol=0.01)
    for c in range(2):
        fit = fit_bayes_ridge(signal[c][:, None], acc[c], alpha=a0, lambda_=l0)
        mean, sd = (v[0] for v in fit.predict(np.zeros((1, 1)), return_std=True))
        draws = pred.samples[:, c]
        # Monte Carlo error: 4 standard errors of a mean, a standard deviation, a 5% quantile
        np.testing.assert_allclose(draws.mean(), mean, atol=4 * sd / np.sqrt(S))
        np.testing.assert_allclose(draws.std(), sd, rtol=4 / np.sqrt(2 * S))
        np.testing.assert_allclose(
            [pred.lower[c], pred.upper[c]], mean + np.array([-1, 1]) * 1.6449 * sd, atol=0.2 * sd
        )
    assert pred.diagnostics["max_r_hat"] < 1.05
    assert pred.diagnostics["divergences"] == 0


def test_fast_and_nuts_agree_and_nuts_reports_diagnostics():
    signal, acc, h0 = _curves(2, C=5, T=8)
    signal[4, :6] = acc[4, :6] = np.nan  # too few points: invalid under both paths
    nuts = predict_final(signal, acc, num_warmup=300, num_samples=1000, key=1)
    fast = predict_final(signal, acc, method="fast")
    assert nuts.method == "nuts" and fast.method == "fast"  # auto: NUTS for a handful
    np.testing.assert_array_equal(nuts.valid, [True] * 4 + [False])
    np.testing.assert_array_equal(fast.valid, nuts.valid)
    np.testing.assert_allclose(nuts.mean[:4], fast.mean[:4], atol=0.01)
    np.testing.assert_allclose(nuts.mean[:4], h0[:4], atol=0.02)
    d = nuts.diagnostics
    assert set(d["r_hat"]) == set(d["ess"]) == {"alpha", "lambda"}
    for site in ("alpha", "lambda"):
        assert d["r_hat"][site].shape == d["ess"][site].shape == (5,)
        assert np.isnan(d["r_hat"][site][4])
        assert np.all(np.abs(d["r_hat"][site][:4] - 1) < 0.05)
        assert np.all(d["ess"][site][:4] > 200)
    assert d["num_chains"] == 1
    assert fast.diagnostics == {}


def _from_the_model(C: int, T: int, seed: int):
    """``C`` candidates' ``(C, T)`` early curves drawn from the model, and a fresh final observation."""
    rng = np.random.default_rng(seed)
    noise_sd = rng.uniform(0.005, 0.02, size=C)
    slope = rng.normal(-0.3, 0.1, size=C)
    h0 = rng.uniform(0.6, 0.9, size=C)
    signal = np.sort(rng.uniform(0.1, 1.0, size=(C, T)), axis=1)[:, ::-1]
    acc = h0[:, None] + slope[:, None] * signal + noise_sd[:, None] * rng.normal(size=(C, T))
    return signal, acc, h0 + noise_sd * rng.normal(size=C)  # the final: a fresh observation at signal 0


def test_fast_intervals_are_calibrated_on_data_from_the_model():
    """500 candidates drawn from the model: the 90% fast-path interval covers 87-93%.

    The fast path plugs in point estimates of the precisions, so its Gaussian interval
    ignores their uncertainty: with n points it covers about what a Gaussian interval
    covers of a Student-t with n - 2 degrees of freedom (86.9% at 12 points, 89.3% at
    40). This test uses 40 points; for a handful of points use NUTS, whose calibration
    test_bayes_ridge checks.
    """
    signal, acc, final = _from_the_model(500, 40, seed=0)
    pred = predict_final(signal, acc, key=0)
    assert pred.method == "fast"  # auto, for more than a handful of candidates
    coverage = np.mean((pred.lower <= final) & (final <= pred.upper))
    assert 0.87 <= coverage <= 0.93, coverage


# --- batches: a bad candidate is marked, the others are returned -------------------------


def test_batch_marks_bad_candidates_invalid_and_fits_the_rest():
    signal, acc, _ = _curves(3, C=8, T=6)
    signal[1, 2:] = acc[1, 2:] = np.nan  # 2 finite pairs
    signal[2] = 0.5  # constant signal
    acc[3] *= 100  # percentages
    acc[4, 1] = np.nan  # NaN in accuracy only
    signal[5, 0] = np.inf
    signal[6, 4:] = acc[6, 4:] = np.nan  # a shorter run: fine
    acc[7, 0] = -0.1
    pred = predict_final(signal, acc, method="fast", key=2)
    np.testing.assert_array_equal(pred.valid, [1, 0, 0, 0, 0, 0, 1, 0])
    expected = {
        1: "2 finite observation pair(s); the linear basis has 2 coefficients and needs at least 3",
        2: "only 1 distinct value(s) (singular design)",
        3: "look like percentages",
        4: r"disagree on which observations exist (at [1])",
        5: "signal holds inf",
        7: "accuracies must be fractions in [0, 1]",
    }
    assert set(pred.reasons) == set(expected)
    for c, text in expected.items():
        assert text in pred.reasons[c]
    bad = ~pred.valid
    for v in (pred.mean, pred.std, pred.lower, pred.upper):
        assert np.isnan(v[bad]).all() and np.isfinite(v[~bad]).all()
    assert np.isnan(pred.samples[:, bad]).all() and np.isnan(pred.coef[bad]).all()
    # the valid candidates get exactly what they get on their own
    alone = predict_final(signal[[0, 6]], acc[[0, 6]], method="fast", key=2)
    np.testing.assert_array_equal(pred.mean[[0, 6]], alone.mean)
    np.testing.assert_array_equal(pred.samples[:, [0, 6]], alone.samples)

    ranking = rank(pred)
    assert list(ranking.order[:2]) == sorted([0, 6], key=lambda c: -pred.mean[c])
    np.testing.assert_allclose(ranking.p_best.sum(), 1.0)
    assert np.all(ranking.p_best[bad] == 0) and np.all(np.isinf(ranking.expected_regret[bad]))
    rows = ranking.table()
    json.dumps(rows, allow_nan=False)  # JSON-ready: invalid numbers are None
    assert [r["name"] for r in rows[2:]] == ["1", "2", "3", "4", "5", "7"]
    assert rows[-1]["reason"] == pred.reasons[7] and rows[-1]["mean"] is None


def test_a_batch_with_no_usable_candidate_is_refused():
    signal, acc, _ = _curves(0, C=3, T=5)
    with pytest.raises(CapjaxInputError, match="none of the 3 candidates.*percentages"):
        predict_final(signal, acc * 100, method="fast")


# --- a single candidate: a clear error -------------------------------------------------


def _one(signal=None, acc=None):
    s, a, _ = _curves(0, C=1, T=5)
    return (s[0] if signal is None else signal), (a[0] if acc is None else acc)


_NAN2 = np.array([0.5, 0.4, np.nan, np.nan, np.nan])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (_one(signal=_NAN2, acc=_NAN2 + 0.3), {}, "needs at least 3 pairs"),
        (_one(), dict(basis="quadratic", n_early=3), r"needs at least 4 pairs.*basis='linear'"),
        (_one(signal=np.full(5, 0.3)), {}, "singular design"),
        (_one(acc=np.linspace(70, 80, 5)), {}, "look like percentages"),
        (_one(acc=np.linspace(-0.2, 0.5, 5)), {}, r"fractions in \[0, 1\]"),
        (_one(acc=np.r_[0.5, np.nan, 0.6, 0.7, 0.8]), {}, r"disagree.*\(at \[1\]\)"),
        (_one(signal=np.full(5, np.nan), acc=np.full(5, np.nan)), {}, "0 finite"),
        (_one(signal=np.r_[np.inf, 0.4, 0.3, 0.2, 0.1]), {}, "signal holds inf"),
        ((np.ones(5), np.ones(4)), {}, "shape"),
        ((np.ones((2, 5)), np.ones((5, 2))), {}, "shape"),
        (_one(), dict(at=np.zeros(2)), "at has shape"),
        (_one(), dict(at=np.nan), "finite"),
        (_one(), dict(n_early=7), r"n_early=7"),
        (_one(), dict(basis="cubic"), "basis"),
        (_one(), dict(method="mcmc"), "method"),
        (_one(), dict(method="fast", hierarchical=True), "needs method='nuts'"),
        (_one(), dict(beta_star=0.1), r"unknown option\(s\) \['beta_star'\]"),
        (_one(), dict(num_samples=2), "at least 4 draws"),
        (_one(), dict(level=90), "level"),
    ],
)
def test_single_candidate_bad_input_is_explained(args, kwargs, match):
    with pytest.raises(CapjaxInputError, match=match):
        predict_final(*args, **kwargs)


# --- ranking -----------------------------------------------------------------------------


def test_rank_orders_a_clear_cut_case_and_plots_it(tmp_path):
    h0 = np.array([0.6, 0.9, 0.75])
    signal, acc, _ = _curves(4, C=3, T=8, noise=0.003, h0=h0)
    pred = predict_final(signal, acc, method="fast", key=3)
    assert pred.samples.shape == (2000, 3)
    ranking = rank(pred, names=["a", "b", "c"])
    np.testing.assert_array_equal(ranking.order, [1, 2, 0])
    np.testing.assert_allclose(ranking.p_best.sum(), 1.0)
    assert ranking.p_best[1] > 0.99
    np.testing.assert_allclose(ranking.expected_regret, 0.9 - h0, atol=0.02)
    assert [r["name"] for r in ranking.table()] == ["b", "c", "a"]
    path = plot_ranking(ranking, tmp_path / "ranking.png", truth=h0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CapjaxInputError, match="names"):
        rank(pred, names=["a"])
    with pytest.raises(CapjaxInputError, match="truth"):
        plot_ranking(ranking, tmp_path / "x.png", truth=h0[:2])


def test_options_reach_the_model():
    signal, acc, _ = _curves(5, C=11, T=8)
    early = predict_final(signal, acc, n_early=5, key=0)
    assert early.method == "fast"  # auto: more than NUTS_MAX_CANDIDATES
    np.testing.assert_allclose(early.mean, predict_final(signal[:, :5], acc[:, :5]).mean)
    # read at each candidate's first observation: about its first accuracy
    at_start = predict_final(signal, acc, at=signal[:, 0])
    np.testing.assert_allclose(at_start.mean, acc[:, 0], atol=0.02)
    wide, narrow = (predict_final(signal, acc, level=q, key=0) for q in (0.9, 0.5))
    assert narrow.level == 0.5 and np.all(narrow.upper < wide.upper)


@pytest.mark.parametrize("T", [3, 6])
def test_student_predictive_is_calibrated_with_a_handful_of_points(T):
    """1,000 candidates drawn from the model: with the noise precision integrated out, the
    90% interval covers 86-94% from 3 or 6 early points (the default predictive), where the
    Gaussian plug-in does not."""
    C = 1000
    signal, acc, final = _from_the_model(C, T, seed=T)

    def coverage(pred):
        return np.mean((pred.lower <= final) & (final <= pred.upper))

    student = predict_final(signal, acc, method="fast", key=0)  # the default
    gaussian = predict_final(signal, acc, method="fast", predictive="gaussian", key=0)
    assert 0.86 <= coverage(student) <= 0.94, coverage(student)
    assert coverage(gaussian) < coverage(student)
    assert student.dof.shape == (C,) and np.all(student.dof > 0) and gaussian.dof is None
    # the draws are the same Student-t: their quantiles agree with the exact interval
    lo, hi = np.quantile(student.samples, [0.05, 0.95], axis=0)
    assert np.median(np.abs(lo - student.lower) / (student.upper - student.lower)) < 0.05
    np.testing.assert_allclose(student.mean, gaussian.mean)


def test_student_predictive_is_the_fast_paths_option():
    signal, acc, _ = _curves(3, C=12, T=6)
    with pytest.raises(CapjaxInputError, match="predictive='student' is the fast path's"):
        predict_final(signal, acc, method="nuts", predictive="student")
    with pytest.raises(CapjaxInputError, match="predictive='t'"):
        predict_final(signal, acc, method="fast", predictive="t")


def test_one_ranking_feeds_the_table_the_markdown_and_the_terminal():
    from rich.console import Console

    from capjax.bayes import ranking

    r = ranking(["a", "b", "c"], [0.2, np.nan, 0.9], mean=[0.8, np.nan, 0.9], lower=[0.7, np.nan, 0.85],
                upper=[0.9, np.nan, 0.95], reasons={"b": "diverged"})
    rows = r.table({"early_acc": np.array([0.5, 0.4, 0.6])})
    assert [row["name"] for row in rows] == ["c", "a", "b"] and rows[-1]["rank"] is None
    assert rows[0]["early_acc"] == 0.6 and rows[-1]["reason"] == "diverged" and rows[0]["p_best"] is None
    md = r.markdown()
    assert md.splitlines()[0].startswith("| rank | candidate |") and "b (failed: diverged)" in md
    assert r._repr_markdown_() == md
    console = Console(record=True, width=120)
    console.print(r.rich_table("title", {"early acc": np.array([0.5, 0.4, 0.6])}))
    text = console.export_text()
    assert "early acc" in text and "[0.850, 0.950]" in text
