"""MST against scipy, PH dimension on cubes of known dimension, the l2-norm baseline."""

import jax
import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree as scipy_mst
from scipy.spatial.distance import cdist

from capjax.base.validation import CapjaxInputError
from capjax.signals.topology import (
    flatten_trajectory,
    minimum_spanning_tree,
    pairwise_distances,
    ph_dimension,
    weight_l2_norm,
)


def test_distances_and_mst_match_scipy_with_and_without_mask():
    rng = np.random.default_rng(0)
    points = 100.0 + rng.random((60, 7))  # far from the origin, close to each other
    dist = np.asarray(pairwise_distances(points))
    np.testing.assert_allclose(dist, cdist(points, points), atol=1e-4)
    with jax.enable_x64(True):
        dist = np.asarray(pairwise_distances(points))
        mask = rng.random(60) < 0.5
        full, sub = jax.vmap(minimum_spanning_tree, in_axes=(None, 0))(
            dist, np.stack([np.ones(60, bool), mask])
        )
        full, sub = np.asarray(full), np.asarray(sub)
    np.testing.assert_allclose(full.sum(), scipy_mst(dist).sum(), rtol=1e-10)
    np.testing.assert_allclose(sub.sum(), scipy_mst(dist[np.ix_(mask, mask)]).sum(), rtol=1e-10)
    assert np.count_nonzero(sub) == mask.sum() - 1


def test_ph_dimension_of_uniform_cubes():
    # one compile: the same sizes and shape for every d (extra coordinates zero)
    n, sizes = 400, (100, 150, 200, 300, 400)
    for d in (1, 2, 3):
        points = np.zeros((n, 3), np.float32)
        points[:, :d] = np.random.default_rng(d).random((n, d))
        dim = float(ph_dimension(points, jax.random.key(d), sizes=sizes))
        assert dim == pytest.approx(d, abs=0.4)


def test_l2_norm_and_flattening():
    params = {"a": np.array([3.0, 0.0]), "b": {"kernel": np.array([[4.0]])}}
    assert float(weight_l2_norm(params)) == pytest.approx(5.0)
    traj = flatten_trajectory([params, params])
    assert traj.shape == (2, 3)


def test_bad_inputs_name_the_fix():
    key = jax.random.key(0)
    with pytest.raises(CapjaxInputError, match="n_iterates, n_params"):
        ph_dimension(np.zeros(10), key)
    with pytest.raises(CapjaxInputError, match="two distinct"):
        ph_dimension(np.zeros((10, 2)), key, sizes=(5, 5))
    with pytest.raises(CapjaxInputError, match="diverged"):
        ph_dimension(np.full((10, 2), np.nan), key)
    with pytest.raises(CapjaxInputError, match="parameter pytree"):
        weight_l2_norm({})
