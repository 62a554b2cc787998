import flax.linen as nn
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from flax import nnx

import capjax
from capjax.capacitance.graph import (
    as_dense_stack,
    check_stack,
    flatten_kernels,
    layer_sizes,
    line_graph_adjacency,
    n_weights,
    neuron_adjacency,
    unflatten_kernels,
)
from tests._stacks import random_stack


@pytest.mark.parametrize("sizes", [[3, 2], [2, 3, 2], [3, 2, 4, 2]])
def test_line_graph_matches_networkx(sizes):
    layers = random_stack(0, sizes)
    adj = neuron_adjacency(layers)
    g = nx.DiGraph()
    g.add_edges_from(zip(*np.nonzero(adj)))
    # Edge (u, v) of the neuron graph <-> weight index; row-major per layer = sorted order.
    index = {e: k for k, e in enumerate(sorted(g.edges()))}
    ref = np.zeros((n_weights(layers),) * 2)
    for a, b in nx.line_graph(g).edges():
        ref[index[a], index[b]] = ref[index[b], index[a]] = 1
    np.testing.assert_array_equal(line_graph_adjacency(layers), ref)


def test_flatten_roundtrip_and_sizes():
    layers = random_stack(1, [4, 3, 2])
    assert layer_sizes(layers) == [4, 3, 2]
    assert n_weights(layers) == 18
    back = unflatten_kernels(flatten_kernels(layers), layers)
    for a, b in zip(back, layers):
        np.testing.assert_array_equal(a, b["kernel"])


def test_adapters_read_linen_nnx_and_plain_alike():
    class Mlp(nn.Module):
        @nn.compact
        def __call__(self, x):
            for w in [5] * 11:  # Dense_10 must come after Dense_9
                x = nn.relu(nn.Dense(w)(x))
            return x

    variables = Mlp().init(jax.random.PRNGKey(0), jnp.ones((1, 3)))
    stack = as_dense_stack(variables)
    assert len(stack) == 11
    np.testing.assert_array_equal(stack[10]["kernel"], variables["params"]["Dense_10"]["kernel"])

    class NnxMlp(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(3, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])

    model = NnxMlp(nnx.Rngs(0))
    for source in (model, nnx.state(model)):
        stack = as_dense_stack(source)
        assert [l["kernel"].shape for l in stack] == [(3, 4), (4, 2)]
    plain = as_dense_stack([{"kernel": jnp.ones((2, 3))}])
    np.testing.assert_array_equal(plain[0]["bias"], jnp.zeros(3))


@pytest.mark.parametrize(
    "layers, match",
    [
        ([], "non-empty"),
        ([{"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.ones(4)}], "2-D kernels"),
        ([{"weights": jnp.ones((2, 2))}], "not a Dense param dict"),
        ([{"kernel": jnp.ones((2, 3)), "bias": jnp.ones(2)}], "bias must be"),
        (
            [
                {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
                {"kernel": jnp.ones((4, 2)), "bias": jnp.ones(2)},
            ],
            "chain",
        ),
        ([{"kernel": jnp.array([[1.0, jnp.nan]]), "bias": jnp.ones(2)}], "NaN/inf"),
    ],
)
def test_bad_stacks_are_named(layers, match):
    with pytest.raises(capjax.CapjaxInputError, match=match):
        check_stack(layers)
