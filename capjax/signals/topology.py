"""Persistent-homology dimension of a training trajectory, and the l2-norm baseline.

docs/method.md §3. Birdal, Lou, Guibas, Simsekli (2021) estimate the PH_0 dimension of the
set of late training iterates ``w_1 .. w_N`` (points in parameter space): for ``n`` points
sampled from it,

    E_alpha(n) = sum over the edges e of the Euclidean minimum spanning tree of |e|^alpha

grows like ``n^m`` with ``m = (d - alpha) / d`` for a set of dimension ``d``, so the slope
``m`` of ``log E_alpha`` against ``log n`` over several ``n`` gives

    dim_PH = alpha / (1 - m).

Tan et al. (arXiv 2406.02234) find that this dimension fails to predict generalisation
under poor initialisation and is beaten by the plain l2 norm of the final weights
(:func:`weight_l2_norm`), which capjax therefore ships beside it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from capjax.base.fit import slope
from capjax.base.validation import CapjaxInputError, check_finite

Array = jax.Array


def flatten_trajectory(iterates: Sequence[Any]) -> Array:
    """Stack parameter pytrees (one per saved iterate) into ``(n_iterates, n_params)``."""
    return jnp.stack([ravel_pytree(p)[0] for p in iterates])


@jax.jit
def pairwise_distances(points: Array) -> Array:
    """Euclidean distance matrix ``(n, n)`` of ``points`` ``(n, n_params)``.

    Uses the Gram matrix of the centred points, so that iterates far from the origin but
    close to each other keep their small distances in float32.
    """
    x = points - jnp.mean(points, axis=0)
    sq = jnp.sum(x**2, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2 * (x @ x.T)
    d2 = d2.at[jnp.diag_indices(x.shape[0])].set(0.0)
    return jnp.sqrt(jnp.maximum(d2, 0.0))


@jax.jit
def minimum_spanning_tree(dist: Array, mask: Array | None = None) -> Array:
    """Edge lengths of the minimum spanning tree of a complete graph (Prim's algorithm).

    Args:
      dist: symmetric distance matrix ``(n, n)``.
      mask: optional boolean ``(n,)``; the tree spans only the nodes marked True.

    Returns:
      ``(n - 1,)`` edge lengths in the order Prim adds them; with a mask of ``k`` nodes the
      last ``n - k`` entries are 0. ``O(n^2)`` time in one ``fori_loop``; jit- and
      vmap-able (vmap over masks shares one distance matrix).
    """
    dist = jnp.asarray(dist)
    n = dist.shape[0]
    active = jnp.ones(n, bool) if mask is None else jnp.asarray(mask, bool)
    start = jnp.argmax(active)
    in_tree = jnp.zeros(n, bool).at[start].set(True)
    lengths = jnp.zeros(n - 1, dist.dtype)

    def add_nearest(i, carry):
        in_tree, to_tree, lengths = carry
        candidates = jnp.where(active & ~in_tree, to_tree, jnp.inf)
        j = jnp.argmin(candidates)
        found = jnp.isfinite(candidates[j])
        lengths = lengths.at[i].set(jnp.where(found, candidates[j], 0.0))
        in_tree = in_tree.at[j].set(in_tree[j] | found)
        to_tree = jnp.where(found, jnp.minimum(to_tree, dist[j]), to_tree)
        return in_tree, to_tree, lengths

    _, _, lengths = jax.lax.fori_loop(0, n - 1, add_nearest, (in_tree, dist[start], lengths))
    return lengths


def subset_sizes(n_total: int, *, min_size: int = 8) -> tuple[int, ...]:
    """Distinct integers of 8 geometric steps from ``max(n_total // 10, min_size)`` to ``n_total``."""
    smallest = min(max(n_total // 10, min_size), n_total)
    sizes = np.unique(np.geomspace(smallest, n_total, 8).astype(int))
    return tuple(int(s) for s in sizes)


def ph_dimension(
    trajectory: Array,
    key: Array,
    *,
    alpha: float = 1.0,
    sizes: Sequence[int] | None = None,
) -> Array:
    """PH_0 dimension of a set of iterates (Birdal et al. 2021; docs/method.md §3).

    Args:
      trajectory: ``(n_iterates, n_params)``, e.g. :func:`flatten_trajectory` of the
        parameters saved every few steps late in training.
      key: PRNG key for the random subsets.
      alpha: the MST edge exponent (``0 < alpha < d``).
      sizes: the subset sizes ``n`` (distinct, each ``>= 2`` and ``<= n_iterates``);
        default 8 sizes geometrically spaced from ``n_iterates // 10`` (at least 8) to
        ``n_iterates``.

    Returns:
      ``alpha / (1 - m)``, ``m`` the least-squares slope of ``log E_alpha(n)`` on ``log n``,
      each ``E_alpha(n)`` from one uniformly random subset of ``n`` iterates.
    """
    points = jnp.asarray(trajectory)
    if points.ndim != 2:
        raise CapjaxInputError(
            f"trajectory has shape {points.shape}; pass (n_iterates, n_params), e.g. "
            "flatten_trajectory(list_of_params)"
        )
    check_finite("trajectory", points, "drop the iterates after the run diverged")
    n_total = points.shape[0]
    sizes = subset_sizes(n_total) if sizes is None else tuple(int(s) for s in sizes)
    if len(set(sizes)) < 2 or min(sizes) < 2 or max(sizes) > n_total:
        raise CapjaxInputError(
            f"sizes={sizes} with {n_total} iterates; give at least two distinct subset "
            f"sizes between 2 and {n_total}"
        )
    return _ph_dimension(points, key, alpha, sizes)


@functools.partial(jax.jit, static_argnames="sizes")
def _ph_dimension(points: Array, key: Array, alpha: float, sizes: tuple[int, ...]) -> Array:
    n_total = points.shape[0]
    dist = pairwise_distances(points)
    keys = jax.random.split(key, len(sizes))
    # {i : pi(i) < n} for a uniform permutation pi is a uniform random subset of size n
    ranks = jax.vmap(lambda k: jax.random.permutation(k, n_total))(keys)
    masks = ranks < jnp.asarray(sizes)[:, None]
    lengths = jax.vmap(minimum_spanning_tree, in_axes=(None, 0))(dist, masks)
    energy = jnp.sum(lengths**alpha, axis=1)
    m = slope(jnp.log(jnp.asarray(sizes, energy.dtype)), jnp.log(energy))
    return alpha / (1.0 - m)


def weight_l2_norm(params: Any) -> Array:
    """l2 norm ``sqrt(sum_i w_i^2)`` over every leaf of ``params`` (Tan et al.'s baseline).

    Pass the trainable parameters only (Linen's ``"params"`` collection, not
    ``"batch_stats"``).
    """
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise CapjaxInputError("params has no arrays; pass the model's parameter pytree")
    return optax.tree.norm(jax.tree.map(jnp.asarray, params))
