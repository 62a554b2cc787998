import warnings

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

import capjax
from capjax.capacitance.dynamics import DENSE_INTERACTIONS, INTERACTIONS, Strengths, velocity
from capjax.capacitance.graph import line_graph_adjacency
from capjax.capacitance.reduction import beta_eff_dense, network_reduction, reduce_strengths
from tests._stacks import ce_loss, random_batch, random_stack

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def _problem(seed, sizes, batch=6, n_classes=3):
    layers = random_stack(seed, sizes)
    head = random_stack(seed + 50, [sizes[-1], n_classes])[0]
    x, y = random_batch(seed, batch, sizes[0], n_classes)
    return layers, x, ce_loss(head, y)


@pytest.mark.parametrize("interaction", sorted(INTERACTIONS))
@pytest.mark.parametrize("sizes", [[3, 4, 2], [4, 3, 3, 2], [3, 3, 2, 3, 2]])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_matrix_free_matches_dense_reference(interaction, sizes, act):
    with jax.enable_x64(True):
        layers, x, loss_fn = _problem(len(sizes), sizes)
        kw = dict(interaction=interaction, activation=ACTIVATIONS[act], lr=0.3)
        got = capjax.beta_eff(layers, x, loss_fn, **kw)
        P = DENSE_INTERACTIONS[interaction](layers, x, loss_fn, activation=ACTIVATIONS[act], lr=0.3)
        want = beta_eff_dense(P)
        assert abs(float(got) - float(want)) <= 1e-5 * abs(float(want))
        np.testing.assert_allclose(P, P.T, atol=1e-12)


def test_coupling_is_supported_on_the_line_graph():
    with jax.enable_x64(True):
        layers, x, loss_fn = _problem(3, [3, 4, 2, 3])
        P = np.asarray(DENSE_INTERACTIONS["coupling"](layers, x, loss_fn))
        assert (P >= 0).all()
        assert ((P > 0) <= (line_graph_adjacency(layers) > 0)).all()


def test_k_regular_graph_gives_k():
    P = nx.to_numpy_array(nx.random_regular_graph(4, 12, seed=0))
    assert float(beta_eff_dense(jnp.asarray(P))) == pytest.approx(4.0)


def test_undirected_formula_and_layered_line_graph_by_hand():
    P = nx.to_numpy_array(nx.path_graph(4))  # degrees 1, 2, 2, 1
    assert float(beta_eff_dense(jnp.asarray(P))) == pytest.approx((1 + 4 + 4 + 1) / 6)
    # Line graph of a d0-d1-d2 stack with unit links: layer-0 weights have degree d2,
    # layer-1 weights degree d0, so beta_eff = (d0 + d2) / 2.
    layers = random_stack(0, [3, 5, 2])
    assert float(beta_eff_dense(jnp.asarray(line_graph_adjacency(layers)))) == pytest.approx(2.5)


@pytest.mark.parametrize("interaction", sorted(INTERACTIONS))
def test_permuting_hidden_units_leaves_beta_eff_unchanged(interaction):
    with jax.enable_x64(True):
        layers, x, loss_fn = _problem(7, [4, 5, 3, 2])
        perm = np.array([3, 0, 4, 1, 2])
        permuted = [dict(l) for l in layers]
        permuted[0] = {"kernel": layers[0]["kernel"][:, perm], "bias": layers[0]["bias"][perm]}
        permuted[1] = {"kernel": layers[1]["kernel"][perm, :], "bias": layers[1]["bias"]}
        a = capjax.beta_eff(layers, x, loss_fn, interaction=interaction)
        b = capjax.beta_eff(permuted, x, loss_fn, interaction=interaction)
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_lr_scales_beta_eff_linearly_and_velocity_is_minus_lr_grad():
    with jax.enable_x64(True):
        layers, x, loss_fn = _problem(2, [3, 4, 2])
        b1 = capjax.beta_eff(layers, x, loss_fn, lr=1.0)
        b2 = capjax.beta_eff(layers, x, loss_fn, lr=0.01)
        np.testing.assert_allclose(b2, 0.01 * b1, rtol=1e-10)
        v = velocity(layers, x, loss_fn, lr=0.5)
        g = jax.grad(
            lambda ks: loss_fn(
                capjax.stack_apply([{"kernel": k, "bias": l["bias"]} for k, l in zip(ks, layers)], x)
            )
        )([l["kernel"] for l in layers])
        for vi, gi in zip(v, g):
            np.testing.assert_allclose(vi, -0.5 * gi)


def test_zero_interaction_gives_zero_without_warnings():
    layers, x, _ = _problem(1, [3, 4, 2])
    with warnings.catch_warnings(), jax.debug_nans(True):
        warnings.simplefilter("error")
        out = network_reduction(layers, x, lambda out: 0.0 * out.sum(), interaction="coupling")
    assert float(out.beta_eff) == 0.0 and float(out.total) == 0.0
    assert float(reduce_strengths(Strengths(jnp.zeros(3), jnp.zeros(3))).beta_eff) == 0.0


def test_jit_and_vmap_agree_with_eager():
    layers, x, loss_fn = _problem(4, [3, 4, 2], batch=8)
    eager = capjax.beta_eff(layers, x, loss_fn)
    jitted = jax.jit(lambda l, x: capjax.beta_eff(l, x, loss_fn))(layers, x)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda l, x: (l, x[:1]), "batch of 1"),
        (lambda l, x: (l, x[:, :2]), "first layer expects"),
        (lambda l, x: (l, x[None]), r"\(batch, d_in\)"),
        (lambda l, x: (l, x.at[0, 0].set(jnp.nan)), "features x holds"),
        (
            lambda l, x: ([{**l[0], "kernel": l[0]["kernel"].at[0, 0].set(jnp.inf)}, *l[1:]], x),
            "weights",
        ),
        (
            lambda l, x: ([{"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.ones(2)}], x),
            "2-D kernels",
        ),
    ],
)
def test_bad_input_is_a_clear_error(mutate, match):
    layers, x, loss_fn = _problem(5, [3, 4, 2])
    layers, x = mutate(layers, x)
    with pytest.raises(capjax.CapjaxInputError, match=match):
        capjax.beta_eff(layers, x, loss_fn)


def test_unknown_interaction_and_nan_loss():
    layers, x, loss_fn = _problem(5, [3, 4, 2])
    with pytest.raises(capjax.CapjaxInputError, match="choose one of"):
        capjax.beta_eff(layers, x, loss_fn, interaction="laplacian")
    with pytest.raises(capjax.CapjaxInputError, match="loss_fn returned"):
        capjax.beta_eff(layers, x, lambda out: jnp.nan * out.sum())


def test_chunked_coupling_contraction_is_exact_with_padding(monkeypatch):
    with jax.enable_x64(True):
        layers, x, loss_fn = _problem(11, [5, 4, 3, 2])
        whole = capjax.coupling_strengths(layers, x, loss_fn).s_in
        # 2 rows of h per chunk: 5 input units -> 3 chunks, the last one zero-padded.
        monkeypatch.setattr(capjax.capacitance.dynamics, "CHUNK_ELEMENTS", 2 * 4 * 6)
        chunked = capjax.coupling_strengths(layers, x, loss_fn).s_in
        np.testing.assert_allclose(chunked, whole, rtol=1e-12)
