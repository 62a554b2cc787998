"""Record functions and predictors of capjax.signals (docs/method.md §3-4): the non-beta early signals."""

import math

import jax
import numpy as np
import pytest
from scipy.stats import kendalltau

from capjax.base.validation import CapjaxInputError
from capjax.data import Dataset
from capjax.predictors import PREDICTORS, Task
from capjax.predictors import signal as signal_predictors
from capjax.records import SNAPSHOT_DIR
from capjax.records import fields as record_fields
from capjax.signals import transferability
from capjax.training import Candidate, SweepContext, init_model, random_backbones, recorders, run_sweep
from tests._fake import fake_sweep

PROBE = 32


def _dataset(input_shape: tuple[int, ...], n: int = 96, k: int = 4) -> Dataset:
    rng = np.random.default_rng(0)
    split = {}
    for s in ("train", "val", "test"):
        split[f"x_{s}"] = rng.uniform(size=(n, *input_shape)).astype(np.float32)
        split[f"y_{s}"] = np.arange(n) % k
    return Dataset(**split, num_classes=k, name="toy")


def _context(c: Candidate, data: Dataset, epoch: int) -> SweepContext:
    return SweepContext(c, epoch, data, data.x_train[:PROBE], data.y_train[:PROBE])


def _params(c: Candidate, data: Dataset) -> dict:
    backbone = random_backbones([c], data.input_shape)[c.name]
    return jax.device_get(init_model(c.arch, c.probe_widths, backbone, data.input_shape, data.num_classes, seed=c.seed))


CASES = {
    "mlp-image": (Candidate("m", "mlp", 2, 16, probe_widths=(8,)), (8, 8, 1)),
    "cnn-image": (Candidate("c", "cnn", 2, 12, probe_widths=(8,)), (8, 8, 1)),
    "cnn-flat": (Candidate("f", "cnn", 2, 12, probe_widths=(8,)), (16,)),
}
GRAPH_FIELDS = ("l2_norm", *record_fields.STRENGTH_FIELDS, *record_fields.ROLLED_FIELDS, "fractal")


@pytest.mark.parametrize("case", CASES)
def test_record_fns_give_finite_floats_and_zero_cost_only_at_init(case):
    c, shape = CASES[case]
    data = _dataset(shape)
    params = _params(c, data)
    # Only the graph views treat 1-D convs specially; the rest just run the zoo's model.
    fns = recorders.record_fns(GRAPH_FIELDS if case == "cnn-flat" else None)
    at = {e: {k: fn(params, _context(c, data, e)) for k, fn in fns.items()} for e in (0, 1)}
    for values in at.values():
        assert all(isinstance(v, float) for v in values.values())
    late, init = at[1], at[0]
    # conv kernels here have < 10 output channels, too few eigenvalues for a tail
    maybe_nan = {"spectral_alpha"} if c.family == "cnn" else set()
    zero_cost = set(record_fields.ZERO_COST_FIELDS) & set(fns)
    for field in set(fns) - zero_cost - maybe_nan:
        assert math.isfinite(late[field]), field
        assert late[field] == init[field]  # same params, same value at any epoch
    for field in zero_cost:
        assert math.isfinite(init[field]), field
        assert math.isnan(late[field]), field
    leaves = jax.tree.leaves(params["backbone"])
    assert late["l2_norm"] == pytest.approx(np.sqrt(sum((x**2).sum() for x in leaves)), rel=1e-5)
    assert late["rolled_degree_mean"] > 0 and 0 < late["rolled_centrality_mean"] < 1
    assert late["fluctuation"] > 0
    if zero_cost:
        assert late["hscore"] >= 0 and init["zc_grad_norm"] > 0 and init["zc_synflow"] > 0


def test_strength_summary_matches_direct_mlp_strengths():
    c, shape = CASES["mlp-image"]
    data = _dataset(shape)
    params = _params(c, data)
    (w1, b1), (w2, b2) = [(lay["kernel"], lay["bias"]) for lay in params["backbone"]["layers"]]
    nodes = [w1.sum(1), w1.sum(0) + b1 + w2.sum(1), w2.sum(0) + b2]
    fns = recorders.record_fns(record_fields.STRENGTH_FIELDS)
    ctx = _context(c, data, 3)
    mean, fluctuation = np.mean([s.mean() for s in nodes]), np.mean([s.std() for s in nodes])
    assert fns["strength"](params, ctx) == pytest.approx(mean, rel=1e-5)
    assert fns["fluctuation"](params, ctx) == pytest.approx(fluctuation, rel=1e-5)


def test_conv_geometry_of_images_and_sequences():
    assert recorders._conv_inputs("cnn", 2, (8, 8, 1)) == ((8, 8), (4, 4))
    assert recorders._conv_inputs("cnn", 3, (40,)) == ((1, 40), (1, 20), (1, 10))
    assert recorders._conv_inputs("mlp", 2, (40,)) is None


def test_fields_share_one_computation_and_stop_after_last_epoch(monkeypatch):
    c, shape = CASES["mlp-image"]
    data = _dataset(shape)
    params = _params(c, data)
    calls = []
    real = recorders._rolled_summary
    monkeypatch.setattr(recorders, "_rolled_summary", lambda layers: calls.append(1) or real(layers))
    fns = recorders.record_fns(record_fields.ROLLED_FIELDS, last_epoch=2)
    ctx = _context(c, data, 2)
    first = [fn(params, ctx) for fn in fns.values()]
    assert len(calls) == 1 and all(math.isfinite(v) for v in first)
    ctx = _context(c, data, 2)  # the next candidate-epoch
    [fn(params, ctx) for fn in fns.values()]
    assert len(calls) == 2
    assert all(math.isnan(fn(params, _context(c, data, 3))) for fn in fns.values())
    assert len(calls) == 2
    assert set(recorders.record_fns("logme")) == {"logme"}
    with pytest.raises(CapjaxInputError, match="SIGNAL_FIELDS"):
        recorders.record_fns(["l2", "logme"])
    with pytest.raises(CapjaxInputError, match="last_epoch"):
        recorders.record_fns(last_epoch=-1)


def test_transferability_fields_share_one_forward_pass_and_fail_one_by_one(monkeypatch):
    c, shape = CASES["mlp-image"]
    data = _dataset(shape)
    params = _params(c, data)
    ctx = _context(c, data, 1)
    features = np.asarray(recorders._features(c.family, params["backbone"], ctx.probe_x))
    calls = []
    real = recorders._features
    monkeypatch.setattr(recorders, "_features", lambda *args: calls.append(1) or real(*args))
    fields = ("logme", "hscore", "transrate")
    values = {k: fn(params, ctx) for k, fn in recorders.record_fns(fields).items()}
    assert len(calls) == 1
    assert values == {
        "logme": transferability.logme(features, ctx.probe_y),
        "hscore": transferability.h_score(features, ctx.probe_y),
        "transrate": transferability.transrate(features, ctx.probe_y),
    }

    def undefined(f, y):
        raise CapjaxInputError("undefined here")

    monkeypatch.setitem(recorders._TRANSFERABILITY_SCORES, "hscore", undefined)
    again = {k: fn(params, ctx) for k, fn in recorders.record_fns(fields).items()}
    assert math.isnan(again.pop("hscore")) and again == {k: values[k] for k in ("logme", "transrate")}


def test_undefined_signal_is_nan_not_an_error():
    c, shape = CASES["mlp-image"]
    data = _dataset(shape)
    params = _params(c, data)
    first = params["backbone"]["layers"][0]
    first["kernel"] = np.array(first["kernel"])
    first["kernel"][0, 0] = np.nan
    values = {k: fn(params, _context(c, data, 0)) for k, fn in recorders.record_fns().items()}
    assert all(isinstance(v, float) for v in values.values())
    # their checks raise CapjaxInputError on NaN weights or features; the sweep goes on
    assert math.isnan(values["spectral_alpha"]) and math.isnan(values["logme"])
    assert math.isnan(values["l2_norm"])


# ---------------------------------------------------------------------------------------
# Predictors on synthetic records


def test_registry_holds_every_signal_predictor():
    names = {*signal_predictors.SCALAR_SIGNALS, "ph_dim", "vahedian", "la_malfa"}
    assert names <= set(PREDICTORS)
    assert {"l2_norm", "spectral_alpha", "rolled_degree", "zc_nwot", "hscore"} <= names


def test_direction_is_learned_on_reference_candidates_only(tmp_path):
    rng = np.random.default_rng(1)
    n, budget = 20, 3
    values = rng.normal(size=(n, budget + 1))
    sweep = fake_sweep(tmp_path, {"logme": values})
    signal = values[:, budget]
    dev = np.arange(n) < 6
    truth = np.where(dev, -signal, signal)  # references disagree with everyone else
    reference = np.where(dev, truth, np.nan)
    out = PREDICTORS["logme"](Task(sweep, budget, 10, reference=reference))
    np.testing.assert_allclose(out.score, -signal)
    flipped = np.where(dev, truth, -truth)
    reference2 = np.where(dev, flipped, np.nan)
    again = PREDICTORS["logme"](Task(sweep, budget, 10, reference=reference2))
    np.testing.assert_array_equal(again.score, out.score)
    # without enough references, the literature's direction: higher LogME = better
    for few in (None, np.where(np.arange(n) < 2, truth, np.nan)):
        literature = PREDICTORS["logme"](Task(sweep, budget, 10, reference=few))
        np.testing.assert_allclose(literature.score, signal)
    assert signal_predictors.signal_direction(signal, reference, True)[0] == -1.0
    with pytest.raises(CapjaxInputError, match="reference"):
        PREDICTORS["logme"](Task(sweep, budget, 10, reference=np.zeros(3)))


def test_scalar_predictors_read_the_right_epoch_and_explain_nan(tmp_path):
    n = 5
    values = np.arange(n * 4, dtype=float).reshape(n, 4)
    values[2, 2] = np.nan
    sweep = fake_sweep(tmp_path, {"zc_snip": values, "l2_norm": values})
    zc = PREDICTORS["zc_snip"](Task(sweep, 2, 10))
    np.testing.assert_allclose(zc.score, values[:, 0])  # epoch 0, higher = better
    l2 = PREDICTORS["l2_norm"](Task(sweep, 2, 10))
    np.testing.assert_allclose(l2.score, -values[:, 2])  # the budget epoch, smaller = better
    assert set(l2.reasons) == {"c02"} and "epoch 2" in l2.reasons["c02"]
    missing = PREDICTORS["fractal"](Task(sweep, 2, 10))
    assert np.isnan(missing.score).all() and "record_fns" in missing.reasons["c00"]


def test_supervised_predictor_needs_five_references(tmp_path):
    rng = np.random.default_rng(2)
    sweep = fake_sweep(tmp_path, {f: rng.normal(size=(8, 4)) for f in record_fields.ROLLED_FIELDS})
    reference = np.where(np.arange(8) < 4, 0.5, np.nan)
    for ref in (reference, None):
        out = PREDICTORS["vahedian"](Task(sweep, 3, 10, reference=ref))
        assert np.isnan(out.score).all()
        assert set(out.reasons) == set(sweep.names)
        assert ">= 5" in out.reasons["c00"]


def test_vahedian_recovers_a_planted_relation(tmp_path):
    rng = np.random.default_rng(3)
    n, budget = 40, 3
    fields = {f: rng.normal(size=(n, 8)) for f in record_fields.ROLLED_FIELDS}
    truth = (
        0.6 + 0.1 * np.tanh(fields["rolled_centrality_std"][:, budget]) + 0.005 * rng.normal(size=n)
    )
    dev = np.arange(n) < 28
    reference = np.where(dev, truth, np.nan)
    out = PREDICTORS["vahedian"](
        Task(sweep := fake_sweep(tmp_path, fields), budget, 8, reference=reference)
    )
    assert np.isfinite(out.score).all()
    np.testing.assert_array_equal(out.mean, out.score)
    assert kendalltau(out.score[~dev], truth[~dev]).statistic > 0.6
    # epochs after the budget are never read
    late = {f: np.where(np.arange(8) > budget, 1e6, v) for f, v in fields.items()}
    again = PREDICTORS["vahedian"](
        Task(fake_sweep(tmp_path, late), budget, 8, reference=reference)
    )
    np.testing.assert_array_equal(again.score, out.score)
    assert np.isnan(PREDICTORS["la_malfa"](Task(sweep, budget, 8, reference=reference)).score).all()


def test_ph_dim_from_snapshots(tmp_path):
    rng = np.random.default_rng(4)
    iterates = {
        "c00": np.outer(np.arange(12), rng.normal(size=50)),  # a straight path
        "c01": rng.normal(size=(12, 50)),  # a cloud filling many dimensions
        "c02": rng.normal(size=(3, 50)),  # too few iterates
    }
    for name, points in iterates.items():
        folder = tmp_path / SNAPSHOT_DIR / name
        folder.mkdir(parents=True)
        for e, p in enumerate(points):
            np.save(folder / f"{e:04d}.npy", p.astype(np.float32))
    sweep = fake_sweep(tmp_path, {"val_acc": np.zeros((4, 12))})  # c03 has no snapshots
    task = Task(sweep, 11, 20)
    out = PREDICTORS["ph_dim"](task)
    line, _ = signal_predictors.trajectory_ph_dim(task, "c00")
    assert 0 < line < 3
    assert out.score[0] == pytest.approx(-line)  # lower dimension = better by default
    assert np.isnan(out.score[1:]).all()
    assert "unbounded" in out.reasons["c01"]
    assert f">= {signal_predictors.MIN_PH_ITERATES}" in out.reasons["c02"]
    assert "snapshot_params" in out.reasons["c03"]
    short, reason = signal_predictors.trajectory_ph_dim(Task(sweep, 3, 20), "c00")
    assert math.isnan(short) and "budget" in reason


def test_real_sweep_records_signals(tmp_path):
    data = _dataset((8, 8, 1), n=64)
    cands = [
        Candidate(f"m{i}", "mlp", 1, 12, probe_widths=(8,), batch_size=32, seed=i) for i in range(2)
    ]
    fns = recorders.record_fns(["l2_norm", "logme", "rolled_degree_mean", "zc_snip"])
    sweep = run_sweep(
        cands,
        data,
        epochs=1,
        out_dir=tmp_path / "s",
        probe_batch=PROBE,
        record_fns=fns,
        progress=False,
        cache_dir=tmp_path / "cache",
    )
    assert np.isfinite(sweep.array("l2_norm", 1)).all()
    assert np.isfinite(sweep.initial("zc_snip")).all()
    assert np.isnan(sweep.array("zc_snip", 1)).all()
    for name in ("l2_norm", "logme", "rolled_degree", "zc_snip"):
        assert np.isfinite(PREDICTORS[name](Task(sweep, 1, 10)).score).all()
