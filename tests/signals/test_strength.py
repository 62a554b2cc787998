"""Node strength, fluctuation and KDE-KL against networkx, unrolled convs and scipy."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from scipy.stats import gaussian_kde

from capjax.base.validation import CapjaxInputError
from capjax.capacitance.graph import as_layer_stack
from capjax.signals.strength import (
    layer_fluctuation,
    layer_strengths,
    node_strengths,
    strength_features,
    symmetric_kl,
)


def _dense_stack(widths, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {"kernel": rng.normal(size=(a, b)), "bias": rng.normal(size=b)}
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    ]


def _networkx_strengths(stack):
    """Strength from the layered digraph itself: out-degree + in-degree + bias."""
    g = nx.DiGraph()
    widths = [stack[0]["kernel"].shape[0]] + [layer["kernel"].shape[1] for layer in stack]
    for l, n in enumerate(widths):
        g.add_nodes_from((l, i) for i in range(n))
    for l, layer in enumerate(stack):
        for (k, j), w in np.ndenumerate(np.asarray(layer["kernel"])):
            g.add_edge((l, k), (l + 1, j), weight=w)
    out = []
    for l, n in enumerate(widths):
        bias = np.asarray(stack[l - 1]["bias"]) if l else np.zeros(n)
        out.append(
            np.array(
                [
                    g.out_degree((l, i), weight="weight")
                    + g.in_degree((l, i), weight="weight")
                    + bias[i]
                    for i in range(n)
                ]
            )
        )
    return out


def test_dense_strengths_match_networkx_digraph():
    stack = _dense_stack([4, 6, 5, 3])
    with jax.enable_x64(True):
        mine = [np.asarray(s) for s in node_strengths(stack)]
    ref = _networkx_strengths(stack)
    assert [m.shape for m in mine] == [r.shape for r in ref]
    for m, r in zip(mine, ref, strict=True):
        np.testing.assert_allclose(m, r, rtol=1e-12)
    np.testing.assert_allclose(layer_fluctuation(mine), [np.std(r) for r in ref], rtol=1e-6)


def _conv_matrix(kernel, in_shape, stride, padding):
    """The conv as an explicit dense matrix (d_in, d_out), via jax.jacobian of the map."""

    def conv(v):
        return jax.lax.conv_general_dilated(
            v[None],
            kernel,
            (stride, stride),
            padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )[0]

    x = jnp.zeros((*in_shape, kernel.shape[2]), kernel.dtype)
    jac = jax.jit(jax.jacobian(conv))(x)
    out_shape = jac.shape[:3]
    return np.asarray(jac).reshape(np.prod(out_shape), x.size).T, out_shape


@pytest.mark.parametrize("stride,padding", [(1, "SAME"), (2, "VALID")])
def test_conv_unrolling_matches_dense_matrix(stride, padding):
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        layer = {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 3))), "bias": rng.normal(size=3)}
        s_out, s_in = layer_strengths(layer, (5, 6), stride=stride, padding=padding)
        dense, out_shape = _conv_matrix(layer["kernel"], (5, 6), stride, padding)
    np.testing.assert_allclose(s_out.reshape(-1), dense.sum(axis=1), rtol=1e-10)
    bias = np.broadcast_to(layer["bias"], out_shape).reshape(-1)
    np.testing.assert_allclose(s_in.reshape(-1), dense.sum(axis=0) + bias, rtol=1e-10)
    if padding == "VALID":
        # every receptive field is complete: the sum K[..., o] + b_o of docs/method.md §3 at each pixel
        spec = np.asarray(layer["kernel"]).sum(axis=(0, 1, 2)) + layer["bias"]
        np.testing.assert_allclose(s_in, np.broadcast_to(spec, s_in.shape), rtol=1e-10)


def test_conv_stack_equals_its_unrolled_dense_stack():
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        k1 = jnp.asarray(rng.normal(size=(3, 3, 1, 2)))
        k2 = jnp.asarray(rng.normal(size=(2, 2, 2, 3)))
        conv = [
            {"kernel": k1, "bias": rng.normal(size=2)},
            {"kernel": k2, "bias": rng.normal(size=3)},
            {"kernel": rng.normal(size=(2 * 2 * 3, 4)), "bias": rng.normal(size=4)},
        ]
        mine = node_strengths(conv, (4, 4), strides=[1, 2, 1], padding=["SAME", "SAME", None])
        m1, shape1 = _conv_matrix(k1, (4, 4), 1, "SAME")
        m2, shape2 = _conv_matrix(k2, shape1[:2], 2, "SAME")
    dense = [
        {"kernel": m1, "bias": np.broadcast_to(conv[0]["bias"], shape1).reshape(-1)},
        {"kernel": m2, "bias": np.broadcast_to(conv[1]["bias"], shape2).reshape(-1)},
        conv[2],
    ]
    ref = _networkx_strengths(dense)
    assert [m.shape for m in mine] == [(4, 4, 1), (4, 4, 2), (2, 2, 3), (4,)]
    for m, r in zip(mine, ref, strict=True):
        np.testing.assert_allclose(np.reshape(m, -1), r, rtol=1e-10)


def test_pooling_splits_the_junction_into_two_node_layers():
    rng = np.random.default_rng(3)
    stack = [
        {"kernel": rng.normal(size=(3, 3, 1, 2)), "bias": np.zeros(2)},
        {"kernel": rng.normal(size=(3, 3, 2, 2)), "bias": np.zeros(2)},  # after 2x2 pooling
    ]
    nodes = node_strengths(stack, [(8, 8), (4, 4)])
    assert [n.shape for n in nodes] == [(8, 8, 1), (8, 8, 2), (4, 4, 2), (4, 4, 2)]
    s_out, s_in = layer_strengths(stack[0], (8, 8))
    np.testing.assert_allclose(nodes[1], s_in)


def test_features_are_mean_and_fluctuation_per_node_layer():
    stack = _dense_stack([3, 5, 2])
    nodes = node_strengths(stack)
    feats = np.asarray(strength_features(stack)).reshape(-1, 2)
    np.testing.assert_allclose(feats[:, 0], [np.mean(n) for n in nodes], rtol=1e-5)
    np.testing.assert_allclose(feats[:, 1], [np.std(n) for n in nodes], rtol=1e-5)


def test_flax_params_are_read_in_forward_order():
    def dense(i):
        return {"kernel": np.zeros((i + 1, i + 2)), "bias": np.zeros(i + 2)}

    linen = {"params": {f"Dense_{i}": dense(i) for i in range(12)}, "batch_stats": {}}
    resorted = jax.tree.map(lambda v: v, linen)
    assert list(resorted["params"])[2] == "Dense_10"  # what jax.tree.map does to the keys
    assert [l["kernel"].shape[0] for l in as_layer_stack(resorted)] == list(range(1, 13))
    # nnx.state(model).to_pure_dict() of a model with an nnx.List and a head
    nnx_pure = {"layers": {0: dense(0), 1: dense(1)}, "out": dense(2)}
    assert [l["kernel"].shape[0] for l in as_layer_stack(nnx_pure)] == [1, 2, 3]
    real = jax.jit(nn.Dense(3).init)(jax.random.key(0), jnp.ones((1, 2)))
    assert as_layer_stack(real)[0]["kernel"].shape == (2, 3)


def test_bad_inputs_name_the_fix():
    with pytest.raises(CapjaxInputError, match="forward order"):
        node_strengths(_dense_stack([3, 4]) + _dense_stack([5, 2]))
    with pytest.raises(CapjaxInputError, match="input_shape"):
        node_strengths([{"kernel": np.ones((3, 3, 1, 2))}])
    with pytest.raises(CapjaxInputError, match="NaN"):
        node_strengths([{"kernel": np.full((2, 2), np.nan)}])
    with pytest.raises(CapjaxInputError, match="distinct"):
        symmetric_kl(np.ones(5), np.arange(5.0))


def _scipy_symmetric_kl(a, b, n_grid):
    ka, kb = gaussian_kde(a), gaussian_kde(b)
    margin = 4 * max(np.sqrt(ka.covariance[0, 0]), np.sqrt(kb.covariance[0, 0]))
    grid = np.linspace(min(a.min(), b.min()) - margin, max(a.max(), b.max()) + margin, n_grid)
    pa, pb = ka(grid), kb(grid)
    return np.trapezoid((pa - pb) * (np.log(pa) - np.log(pb)), grid)


def test_symmetric_kl_matches_scipy_kde_and_gaussian_formula():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=400), rng.normal(1.0, 1.0, size=500)
    with jax.enable_x64(True):
        mine = float(symmetric_kl(a, b, n_grid=512))
        same = float(symmetric_kl(a, a, n_grid=512))
    np.testing.assert_allclose(mine, _scipy_symmetric_kl(a, b, 512), rtol=1e-8)
    # N(0,1) vs N(1,1): KL each way 1/2; KDE smoothing widens both a little.
    assert 0.75 < mine < 1.15
    assert same == pytest.approx(0.0, abs=1e-12)
