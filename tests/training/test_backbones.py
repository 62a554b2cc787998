"""Your own backbones: NNX, Linen and pure functions as candidates; state, randomness, groups, bad input."""

import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import capjax
from capjax.base.validation import CapjaxInputError
from capjax.data import load_dataset
from capjax.training import as_backbone, own_candidates, run_sweep
from capjax.training.checkpoints import trained_params
from capjax.training.groups import plan_groups
from capjax.training.own import import_candidates


class Dense(nnx.Module):
    def __init__(self, width: int, rngs: nnx.Rngs):
        self.layer = nnx.Linear(64, width, rngs=rngs)

    def __call__(self, x):
        return jax.nn.relu(self.layer(x.reshape(x.shape[0], -1)))


class Normed(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(4, momentum=0.5, rngs=rngs)

    def __call__(self, x):
        return jax.nn.relu(self.norm(self.conv(x))).reshape(x.shape[0], -1)


class Dropped(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
        return nn.Dropout(0.5, deterministic=not train)(h)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _pure(width: int = 8, scale: float = 0.1):
    w = np.asarray(jax.random.normal(jax.random.key(width), (64, width))) * scale
    return (lambda p, x: jnp.tanh(x.reshape(x.shape[0], -1) @ p["w"])), {"w": w}


def test_the_three_kinds_give_features_of_the_same_contract(digits):
    x = digits.x_train[:5]
    module = Dropped()
    kinds = {"nnx": Normed(nnx.Rngs(0)), "linen": (module, module.init(jax.random.key(0), x)), "pure": _pure()}
    for kind, obj in kinds.items():
        b = as_backbone(obj)
        assert b.program.kind == kind
        feats = b.program.features(jax.tree.map(jnp.asarray, b.tree()), x)
        assert feats.ndim == 2 and feats.shape[0] == 5 and np.isfinite(feats).all()
    # evaluation is the user's own model in evaluation mode
    nnx_model = Normed(nnx.Rngs(0))
    nnx_model.eval()
    b = as_backbone(nnx_model)
    np.testing.assert_allclose(b.program.features(jax.tree.map(jnp.asarray, b.tree()), x), nnx_model(x), atol=1e-6)


def test_batchnorm_statistics_move_and_dropout_draws_from_the_candidates_key(digits, tmp_path):
    module = Dropped()
    models = {"bn": Normed(nnx.Rngs(0)), "dropout": (module, module.init(jax.random.key(0), digits.x_train[:2]))}
    cs = own_candidates(models, digits)
    run_sweep(cs, digits, epochs=2, out_dir=tmp_path, progress=False, interactions=("hessian",))
    bn = trained_params(tmp_path, cs, digits, "bn")
    start = cs[0].backbone.state
    assert any(not np.allclose(bn["backbone"]["state"][k], start[k]) for k in start)
    assert set(bn) == {"backbone", "probe", "head"}
    # the trained values come back as the user's own kind of object
    rebuilt = cs[0].backbone.rebuild(bn["backbone"])
    assert isinstance(rebuilt, Normed)
    b = cs[1].backbone
    tree = jax.tree.map(jnp.asarray, b.tree())
    x = digits.x_train[:8]
    one, _ = b.program.train_features(tree, x, jnp.array([1, 2], jnp.uint32))
    two, _ = b.program.train_features(tree, x, jnp.array([1, 3], jnp.uint32))
    again, _ = b.program.train_features(tree, x, jnp.array([1, 2], jnp.uint32))
    assert not np.allclose(one, two) and np.array_equal(one, again)
    np.testing.assert_array_equal(b.program.features(tree, x), b.program.features(tree, x))


def test_equal_programs_share_a_group_that_compiles_once(digits, tmp_path, caplog):
    models = {"a": Dense(8, nnx.Rngs(0)), "b": capjax.Model(Dense(8, nnx.Rngs(1)), lr=3e-3),
              "c": Dense(8, nnx.Rngs(2)), "wide": Dense(16, nnx.Rngs(3))}
    cs = own_candidates(models, digits)
    groups = plan_groups(cs, jax.devices())
    assert sorted(len(g.members) for g in groups) == [1, 3]
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="jax"):
            run_sweep(cs, digits, epochs=2, out_dir=tmp_path, progress=False, interactions=())
    finally:
        jax.config.update("jax_log_compiles", False)
    # every group's step is one sharded program "run": training and evaluation, once each
    steps = [r for r in caplog.records if r.getMessage().startswith("Compiling jit(run)")]
    assert len(steps) == 2 * len(groups)


def test_an_optimizer_of_your_own_trains_and_lr_with_it_is_an_error(digits, tmp_path):
    sgd = optax.sgd(0.05)
    cs = own_candidates({"p": capjax.Model(_pure(), optimizer=sgd, batch_size=32)}, digits)
    out = run_sweep(cs, digits, epochs=2, out_dir=tmp_path, progress=False, interactions=())
    assert out.array("val_acc")[0, -1] > out.initial("val_acc")[0] + 0.1 and cs[0].batch_size == 32
    with pytest.raises(CapjaxInputError, match="both lr and optimizer"):
        own_candidates({"p": capjax.Model(_pure(), optimizer=sgd, lr=1e-3)}, digits)


@pytest.mark.parametrize("models, match", [
    ({"flat": (lambda p, x: x * p["s"], {"s": np.ones((), np.float32)})},
     r"'flat'.*returns features of shape \(4, 8, 8, 1\).*\(batch, d\)"),
    ({"nan": (lambda p, x: x.reshape(x.shape[0], -1) @ p["w"], {"w": np.full((64, 3), np.nan, np.float32)})},
     r"'nan'.*NaN/inf features"),
    ({"fails": (lambda p, x: x @ p["w"], {"w": np.ones((3, 3), np.float32)})},
     r"'fails'.*fails on a batch of the data of shape \(4, 8, 8, 1\)"),
    ({"odd": 3}, r"'odd' is a int; pass an nnx.Module"),
    ([("same", _pure()), ("same", _pure(4))], r"names \['same'\] repeat"),
])
def test_bad_backbones_are_one_line_errors_before_anything_trains(digits, models, match):
    with pytest.raises(CapjaxInputError, match=match) as err:
        own_candidates(models, digits)
    assert "\n" not in str(err.value)


def test_candidates_file_errors_name_the_fix(tmp_path):
    with pytest.raises(CapjaxInputError, match=r"--candidates .*is not a Python file; pass PATH.py:FUNCTION"):
        import_candidates(str(tmp_path / "missing.py:build"))
    f = tmp_path / "zoo.py"
    f.write_text("def make():\n    return {}\n")
    with pytest.raises(CapjaxInputError, match=r"defines no function 'build'; name one of \['make'\]"):
        import_candidates(str(f))
    assert import_candidates(f"{f}:make") == {}
