"""Rolled graph, weighted degree and eigenvector centrality against networkx."""

import networkx as nx
import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.signals.rolled import (
    eigenvector_centrality,
    rolled_adjacency,
    rolled_blocks,
    temporal_features,
    weighted_degree,
)


def _lenet_like(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [
        {"kernel": scale * rng.normal(size=(3, 3, 1, 3)), "bias": np.zeros(3)},
        {"kernel": scale * rng.normal(size=(3, 3, 3, 4)), "bias": np.zeros(4)},
        {"kernel": scale * rng.normal(size=(2 * 2 * 4, 40)), "bias": np.zeros(40)},
        {"kernel": scale * rng.normal(size=(40, 3)), "bias": np.zeros(3)},
    ]


def _networkx_graph(stack):
    """The rolled graph built edge by edge from its definition."""
    g = nx.Graph()
    counts = [1, 3, 4, 40, 3]
    offsets = np.cumsum([0] + counts)
    g.add_nodes_from(range(offsets[-1]))
    k1, k2, w3, w4 = (layer["kernel"] for layer in stack)
    for l, kernel in enumerate([k1, k2]):
        for i in range(kernel.shape[2]):
            for j in range(kernel.shape[3]):
                w = np.sqrt(np.sum(kernel[:, :, i, j] ** 2))
                g.add_edge(offsets[l] + i, offsets[l + 1] + j, weight=w)
    flat = w3.reshape(2, 2, 4, 40)  # NHWC flattening of a 2x2x4 map
    for i in range(4):
        for j in range(40):
            w = np.sqrt(np.sum(flat[:, :, i, j] ** 2))
            g.add_edge(offsets[2] + i, offsets[3] + j, weight=w)
    for i in range(40):
        for j in range(3):
            g.add_edge(offsets[3] + i, offsets[4] + j, weight=abs(w4[i, j]))
    return g


def test_adjacency_degree_and_centrality_match_networkx():
    stack = _lenet_like()
    g = _networkx_graph(stack)
    ref_adj = nx.to_numpy_array(g, nodelist=range(g.number_of_nodes()))
    ref_deg = np.array([g.degree(i, weight="weight") for i in range(g.number_of_nodes())])
    ref_cent = nx.eigenvector_centrality_numpy(g, weight="weight")
    ref_cent = np.array([ref_cent[i] for i in range(g.number_of_nodes())])

    np.testing.assert_allclose(rolled_adjacency(stack), ref_adj, rtol=1e-5)
    blocks = rolled_blocks(stack)
    np.testing.assert_allclose(np.concatenate(weighted_degree(blocks)), ref_deg, rtol=1e-5)
    centrality = eigenvector_centrality(blocks)
    assert [c.shape for c in centrality] == [(1,), (3,), (4,), (40,), (3,)]
    np.testing.assert_allclose(np.concatenate(centrality), ref_cent, atol=1e-5)
    assert np.all(np.concatenate(centrality) > 0)


def _networkx_features(stack):
    g = _networkx_graph(stack)
    cent = nx.eigenvector_centrality_numpy(g, weight="weight")
    offsets = np.cumsum([0, 1, 3, 4, 40, 3])
    feats = []
    for lo, hi in zip(offsets[:-1], offsets[1:], strict=True):
        k = [g.degree(i, weight="weight") for i in range(lo, hi)]
        c = [cent[i] for i in range(lo, hi)]
        feats += [np.mean(k), np.std(k), np.mean(c), np.std(c)]
    return np.array(feats)


def test_temporal_features_concatenate_the_first_T_snapshots():
    epochs = [_lenet_like(seed=s) for s in range(3)]
    feats = temporal_features(epochs, T=2)
    expected = np.concatenate([_networkx_features(e) for e in epochs[:2]])
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-6)


def test_bad_inputs_name_the_fix():
    with pytest.raises(CapjaxInputError, match="1 <= T"):
        temporal_features([_lenet_like()], T=2)
    with pytest.raises(CapjaxInputError, match="forward order"):
        rolled_blocks([{"kernel": np.ones((4, 3))}, {"kernel": np.ones((5, 2))}])
    bad = _lenet_like()
    bad[0]["kernel"][0, 0, 0, 0] = np.inf
    with pytest.raises(CapjaxInputError, match="diverged"):
        temporal_features([bad], T=1)
