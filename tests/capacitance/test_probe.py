import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import capjax
from tests._stacks import ce_loss


class ProbedMlp(nnx.Module):
    def __init__(self, rngs):
        self.backbone = nnx.Linear(8, 16, rngs=rngs)
        self.probe = capjax.NCProbe(16, (12, 6), rngs=rngs)
        self.head = nnx.Linear(6, 3, rngs=rngs)

    def features(self, x):
        return jax.nn.relu(self.backbone(x))

    def __call__(self, x):
        return self.head(self.probe(self.features(x)))


def _data():
    x = jax.random.normal(jax.random.PRNGKey(1), (32, 8))
    return x, jnp.arange(32) % 3


def test_nnx_probe_stays_frozen_under_adamw_while_the_rest_trains():
    model = ProbedMlp(nnx.Rngs(0))
    opt = nnx.Optimizer(
        model, capjax.freeze_probe(optax.adamw(1e-2, weight_decay=0.5)), wrt=nnx.Param
    )
    x, y = _data()
    probe0 = capjax.as_dense_stack(model.probe)
    backbone0 = model.backbone.kernel[...]

    @nnx.jit
    def step(model, opt):
        loss = lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
        opt.update(model, nnx.grad(loss)(model))

    for _ in range(3):
        step(model, opt)
    for a, b in zip(probe0, capjax.as_dense_stack(model.probe)):
        np.testing.assert_array_equal(a["kernel"], b["kernel"])
        np.testing.assert_array_equal(a["bias"], b["bias"])
    assert not np.allclose(backbone0, model.backbone.kernel[...])


def test_freeze_probe_on_plain_pytree_masks_exactly_the_probe():
    params = {
        "backbone": {"kernel": jnp.ones((2, 3))},
        "probe": capjax.init_probe(jax.random.PRNGKey(0), 3, (4,)),
        "head": {"kernel": jnp.ones((4, 2))},
    }
    tx = capjax.freeze_probe(optax.sgd(0.1))
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert all(float(jnp.abs(u).max()) == 0 for u in jax.tree.leaves(updates["probe"]))
    np.testing.assert_allclose(updates["backbone"]["kernel"], -0.1)


def test_linen_nnx_and_functional_probes_compute_the_same_beta_eff():
    x, y = _data()
    feats = jax.nn.relu(x[:, :8])
    head = {"kernel": jnp.ones((6, 3)) / 6, "bias": jnp.zeros(3)}
    loss_fn = ce_loss(head, y)
    linen = capjax.NCProbeLinen((12, 6))
    variables = linen.init(jax.random.PRNGKey(0), feats)
    stack = capjax.as_dense_stack(variables)
    np.testing.assert_allclose(
        linen.apply(variables, feats), capjax.apply_probe(stack, feats), rtol=1e-6
    )
    nnx_probe = capjax.NCProbe(8, (12, 6), rngs=nnx.Rngs(0))
    functional = capjax.init_probe(jax.random.PRNGKey(0), 8, (12, 6))
    assert [l["kernel"].shape for l in functional] == [l["kernel"].shape for l in stack]
    for probe in (variables, nnx_probe, functional):
        assert np.isfinite(float(capjax.beta_eff(capjax.as_dense_stack(probe), feats, loss_fn)))


def test_beta_eff_every_measures_only_on_recording_steps_inside_jit():
    x, y = _data()
    layers = capjax.init_probe(jax.random.PRNGKey(0), 8, (5, 4))
    loss_fn = ce_loss({"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}, y)
    hook = jax.jit(lambda step: capjax.beta_eff_every(step, 3, layers, x, loss_fn))
    values = [float(hook(jnp.asarray(s))) for s in range(5)]
    assert np.isnan(values[1]) and np.isnan(values[2]) and np.isnan(values[4])
    np.testing.assert_allclose(values[0], capjax.beta_eff(layers, x, loss_fn), rtol=1e-5)
    np.testing.assert_allclose(values[3], values[0], rtol=1e-6)
