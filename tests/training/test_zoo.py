"""Candidate zoos, backbones, the fine-tuning model and the pretraining cache."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.data import load_dataset
from capjax.training import Candidate, model, pretrain, spec, zoos


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", max_examples=400)


@pytest.mark.parametrize("n", [1, 4, 12, 16, 60, 75])
def test_transfer_zoo_sizes_names_and_groups(n):
    cands = zoos.transfer_zoo("digits", n=n)
    names = [c.name for c in cands]
    assert len(cands) == n and len(set(names)) == n
    assert all(c.lr == 1e-3 and c.batch_size == 64 for c in cands)
    if n >= 12:
        # Backbone shapes are shared, so groups train several candidates at once.
        groups = {c.group_key for c in cands}
        assert len(groups) <= math.ceil(n / 3)
        assert {c.family for c in cands} == {"mlp", "cnn"}
        assert {c.source for c in cands} >= {"none", "half", "flip", "randlabel"}
    if n > 64:  # beyond the settings grid, settings repeat with the next seed
        assert any(name.endswith("-r1") for name in names)


def test_transfer_zoo_default_and_prefix():
    default = zoos.transfer_zoo("digits")
    assert len(default) == zoos.DEFAULT_TRANSFER_N
    assert {c.name for c in default} <= {c.name for c in zoos.transfer_zoo("digits", n=16)}
    assert [c.seed for c in zoos.transfer_zoo("digits", n=4, seed=5)] == [5] * 4


def test_hyperparameter_zoo_ranges_and_determinism():
    cands = zoos.hyperparameter_zoo("mnist1d", n=60, seed=3)
    assert len({c.name for c in cands}) == 60
    lrs = np.array([c.lr for c in cands])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1 and lrs.max() / lrs.min() > 30
    assert {c.family for c in cands} == {"mlp"} and {c.source for c in cands} == {"none"}
    assert {c.depth for c in cands} == set(zoos.HP_DEPTHS)
    assert {c.batch_size for c in cands} == set(zoos.HP_BATCH_SIZES)
    assert all(zoos.HP_WD_RANGE[0] <= c.weight_decay <= zoos.HP_WD_RANGE[1] for c in cands)
    assert cands == zoos.hyperparameter_zoo("mnist1d", n=60, seed=3)
    assert zoos.hyperparameter_zoo("mnist1d", n=5, seed=3) == cands[:5]
    assert zoos.hyperparameter_zoo("mnist1d", n=5, seed=4) != cands[:5]


def test_candidate_json_round_trip_and_group_key():
    for c in zoos.transfer_zoo("digits", n=6) + zoos.hyperparameter_zoo("digits", n=6):
        back = Candidate.from_dict(json.loads(json.dumps(c.to_dict())))
        assert back == c and hash(back) == hash(c)
    a = Candidate("a", "mlp", 2, 64, lr=1e-3, seed=0)
    b = Candidate("b", "mlp", 2, 64, lr=1e-1, weight_decay=1e-4, init_scale=2.0, seed=7,
                  source="half", pretrain_epochs=3)
    assert a.group_key == b.group_key
    assert a.group_key != Candidate("c", "mlp", 2, 64, batch_size=32).group_key
    assert a.group_key != Candidate("d", "mlp", 2, 64, probe_widths=(16,)).group_key


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="a/b"), "file name"),
    (dict(family="rnn"), "family"),
    (dict(depth=0), "depth"),
    (dict(source="half"), "pretrain_epochs"),
    (dict(source="none", pretrain_epochs=3), "pretrain_epochs"),
    (dict(lr=0.0), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(probe_widths=()), "probe_widths"),
    (dict(batch_size=True), "batch_size"),
])
def test_candidate_rejects_bad_fields(kwargs, match):
    base = dict(name="c", family="mlp", depth=1, width=8)
    with pytest.raises(CapjaxInputError, match=match):
        Candidate(**{**base, **kwargs})


def test_candidate_checks():
    with pytest.raises(CapjaxInputError, match="unknown field"):
        Candidate.from_dict({"name": "a", "family": "mlp", "depth": 1, "width": 4, "colour": 1})
    c = Candidate("a", "mlp", 1, 4)
    with pytest.raises(CapjaxInputError, match="repeat"):
        spec.check_candidates([c, c])
    with pytest.raises(CapjaxInputError, match="at least one"):
        spec.check_candidates([])
    with pytest.raises(CapjaxInputError, match="dataset_name"):
        zoos.transfer_zoo(None)
    with pytest.raises(CapjaxInputError, match="n is 0"):
        zoos.hyperparameter_zoo("digits", n=0)


@pytest.mark.parametrize("family, depth, width, input_shape, d_feat", [
    ("mlp", 2, 16, (8, 8, 1), 16),
    ("mlp", 1, 8, (40,), 8),
    ("cnn", 2, 4, (8, 8, 1), 2 * 2 * 4),   # two 2x poolings of 8x8
    ("cnn", 1, 6, (40,), 20 * 6),          # 1-D convolutions on sequences
])
def test_backbones_and_model(family, depth, width, input_shape, d_feat):
    c = Candidate("c", family, depth, width, probe_widths=(8, 4), init_scale=0.5)

    @jax.jit  # one compilation instead of one per eager op
    def build(key, x):
        bb = model.init_backbone(key, c.arch, input_shape, init_scale=c.init_scale)
        full = model.init_backbone(key, c.arch, input_shape, init_scale=1.0)
        params = model.init_model(c.arch, c.probe_widths, bb, input_shape, num_classes=5, seed=c.seed)
        return bb, full, params, model.backbone_features(c.family, bb, x), model.model_logits(c.family, params, x)

    bb, full, params, feats, logits = build(jax.random.key(0), jnp.ones((3, *input_shape)))
    assert len(bb["layers"]) == depth
    assert feats.shape == (3, d_feat) and model.feature_dim(c.arch, input_shape) == d_feat
    # init_scale multiplies the He-normal kernels.
    np.testing.assert_allclose(bb["layers"][0]["kernel"], 0.5 * full["layers"][0]["kernel"])
    assert [layer["kernel"].shape for layer in params["probe"]] == [(d_feat, 8), (8, 4)]
    assert params["head"]["kernel"].shape == (4, 5) and logits.shape == (3, 5)


def test_he_init_statistics_and_shared_probe():
    c = Candidate("c", "mlp", 1, 512)
    k = model.init_backbone(jax.random.key(1), c.arch, (256,))["layers"][0]["kernel"]
    assert abs(float(k.std()) - math.sqrt(2 / 256)) < 0.05 * math.sqrt(2 / 256)
    # The probe is the same instrument for every candidate with the same sizes.
    a, b = (Candidate(name, "mlp", 1, 16, seed=seed) for name, seed in (("a", 0), ("b", 1)))
    a, b = (model.init_model(c.arch, c.probe_widths, model.init_backbone(jax.random.key(0), c.arch, (8,)), (8,), 3,
                             seed=c.seed)
            for c in (a, b))
    np.testing.assert_array_equal(a["probe"][0]["kernel"], b["probe"][0]["kernel"])
    assert not np.array_equal(a["head"]["kernel"], b["head"]["kernel"])


def test_cnn_too_small_and_bad_shape():
    with pytest.raises(CapjaxInputError, match="too small"):
        model.init_backbone(jax.random.key(0), Candidate("c", "cnn", 4, 4).arch, (8, 8, 1))
    with pytest.raises(CapjaxInputError, match="input_shape"):
        model.init_backbone(jax.random.key(0), Candidate("c", "mlp", 1, 4).arch, (8, 8))


def test_finetune_optimizer_freezes_probe_and_vmaps_hyperparameters():
    c = Candidate("c", "mlp", 1, 8, probe_widths=(4,))
    backbone = model.init_backbone(jax.random.key(0), c.arch, (5,))
    params = model.init_model(c.arch, c.probe_widths, backbone, (5,), 3, seed=0)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    lr, wd = jnp.array([1e-3, 1e-1]), jnp.array([0.0, 0.1])

    @jax.jit
    def first_step(stacked, lr, wd):
        state = jax.vmap(lambda p, a, b: model.finetune_optimizer(a, b).init(p))(stacked, lr, wd)
        grads = jax.tree.map(jnp.ones_like, stacked)
        return jax.vmap(model.finetune_optimizer(0.0, 0.0).update)(grads, state, stacked)[0]

    updates = first_step(stacked, lr, wd)
    assert not np.any(updates["probe"][0]["kernel"])
    first = updates["head"]["bias"][:, 0]  # Adam's first step is -lr * sign(grad)
    np.testing.assert_allclose(first, -lr, rtol=1e-3)


def test_source_tasks(digits):
    x, y = pretrain.source_task("half", digits)
    assert set(np.unique(y)) == {0, 1, 2, 3, 4}
    xf, yf = pretrain.source_task("flip", digits)
    np.testing.assert_array_equal(xf[:, ::-1, ::-1], digits.x_train)
    np.testing.assert_array_equal(yf, digits.y_train)
    _, yr = pretrain.source_task("randlabel", digits)
    assert yr.shape == digits.y_train.shape and np.mean(yr == digits.y_train) < 0.3
    with pytest.raises(CapjaxInputError, match="no task"):
        pretrain.source_task("none", digits)


def test_pretraining_is_cached_and_shared_across_budgets(tmp_path, digits, monkeypatch):
    small = dict(family="mlp", depth=1, width=8, source="half", seed=2)
    c1 = Candidate("p1", pretrain_epochs=1, **small)
    c3 = Candidate("p3", pretrain_epochs=3, **small)
    scratch = Candidate("s", "mlp", 1, 8, seed=2)
    calls = []
    real = pretrain._pretrain_lineage
    monkeypatch.setattr(pretrain, "_pretrain_lineage", lambda *a: calls.append(a[-1]) or real(*a))
    first = pretrain.pretrain_backbones([c1, c3, scratch], digits, tmp_path)
    assert calls == [[1, 3]]  # one run serves both budgets
    assert len(list((tmp_path / "pretrain").iterdir())) == 2
    k = lambda p: np.asarray(p["layers"][0]["kernel"])  # noqa: E731
    # Pretraining moved the weights away from the shared random initialisation.
    assert not np.allclose(k(first["p1"]), k(first["s"]))
    assert not np.allclose(k(first["p1"]), k(first["p3"]))

    monkeypatch.setattr(pretrain, "_pretrain_lineage", lambda *a: pytest.fail("retrained"))
    again = pretrain.pretrain_backbones([c3, c1], digits, tmp_path)
    for name in ("p1", "p3"):
        np.testing.assert_array_equal(k(again[name]), k(first[name]))
    np.testing.assert_array_equal(k(pretrain.pretrain_backbone(c1, digits, tmp_path)), k(first["p1"]))

    # A different dataset is a different cache entry.
    other = load_dataset("digits", max_examples=300)
    monkeypatch.setattr(pretrain, "_pretrain_lineage", real)
    pretrain.pretrain_backbone(c1, other, tmp_path)
    assert len(list((tmp_path / "pretrain").iterdir())) == 3


def test_epoch_batches_depend_on_seed_and_epoch_only():
    a = model.epoch_batches(np.array([0, 1, 0], np.int32), 3, 50, 8, spec.FINETUNE_STREAM)
    assert a.shape == (3, 6, 8)
    np.testing.assert_array_equal(a[0], a[2])
    assert not np.array_equal(a[0], a[1])
    b = model.epoch_batches(np.array([1], np.int32), 3, 50, 8, spec.FINETUNE_STREAM)
    np.testing.assert_array_equal(a[1], b[0])
    assert not np.array_equal(
        a[0], model.epoch_batches(np.array([0], np.int32), 4, 50, 8, spec.FINETUNE_STREAM)[0]
    )


@pytest.mark.parametrize("shape", [(2, 9, 7, 3), (2, 41, 3)])
def test_max_pool_is_valid_2x2_max_pooling(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    window = (1, *(2,) * (len(shape) - 2), 1)
    ref = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")
    np.testing.assert_array_equal(model._max_pool(x), ref)
