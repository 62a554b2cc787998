"""Run a per-candidate function over many candidates: vmapped on a device, sharded across devices.

Candidates of the same shape are stacked along a leading axis on every leaf. Within a
device they are vectorised with ``jax.vmap``; across devices the candidate axis is split
with ``jax.shard_map`` over a one-axis mesh, one candidate group per device. Nothing here
knows what the function computes: ``beta_eff``, a training step and an evaluation all go
through the same path.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

CANDIDATE_AXIS = "candidates"


def candidate_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``"candidates"`` over ``devices`` (default: all devices).

    The devices are taken in turn from each process (the first of every process, then the
    second, ...), so that consecutive blocks of the candidate axis, where a group's members
    sit ahead of its padding, land on different processes (docs/method.md §9).
    """
    seen: collections.Counter[int] = collections.Counter()
    turns = []
    for d in devices if devices is not None else jax.devices():
        turns.append((seen[d.process_index], d.process_index, d))
        seen[d.process_index] += 1
    return Mesh(np.asarray([d for *_, d in sorted(turns, key=lambda t: t[:2])]), (CANDIDATE_AXIS,))


def _pad_candidates(tree: Any, n_to: int) -> Any:
    """Repeat the last candidate so the leading axis has ``n_to`` entries."""

    def pad(leaf):
        extra = n_to - leaf.shape[0]
        return jnp.concatenate([leaf, jnp.repeat(leaf[-1:], extra, axis=0)]) if extra else leaf

    return jax.tree.map(pad, tree)


def shard_candidates(fn: Callable[..., Any], mesh: Mesh, n_stacked: int | None = None) -> Callable[..., Any]:
    """``jit(shard_map(vmap(fn)))`` over the candidate axis of ``mesh``.

    The first ``n_stacked`` arguments (all of them when None) carry a leading candidate
    axis, split across devices; the others (e.g. a dataset) are shared by every candidate
    and replicated. The candidate count must be a multiple of the device count.
    """

    def run(*args):
        k = len(args) if n_stacked is None else n_stacked
        axes = (0,) * k + (None,) * (len(args) - k)
        specs = (PartitionSpec(CANDIDATE_AXIS),) * k + (PartitionSpec(),) * (len(args) - k)
        # No collectives: every device runs its own candidates, so shard_map's replication
        # checks have nothing to verify (and would reject constant carries).
        mapped = jax.shard_map(
            jax.vmap(fn, in_axes=axes),
            mesh=mesh,
            in_specs=specs,
            out_specs=PartitionSpec(CANDIDATE_AXIS),
            check_vma=False,
        )
        return mapped(*args)

    return jax.jit(run)


# Cached so that calling map_candidates every epoch with the same fn compiles once.
_sharded = functools.lru_cache(maxsize=64)(shard_candidates)


def map_candidates(fn: Callable[..., Any], *stacked: Any, mesh: Mesh | None = None) -> Any:
    """Apply ``fn`` to every candidate; the candidate axis is sharded across the mesh.

    Args:
      fn: a pure function of one candidate's arguments (no leading candidate axis).
      *stacked: pytrees whose every leaf has the candidate axis first, ``(n, ...)``.
      mesh: a one-axis mesh from :func:`candidate_mesh` (default: all devices). When ``n``
        is not a multiple of the device count, the last candidate is repeated to pad and
        the padding is dropped from the result.

    Returns:
      ``fn``'s outputs stacked along a leading axis of length ``n``; equal to
      ``jax.vmap(fn)(*stacked)`` and to a Python loop over candidates.
    """
    mesh = mesh if mesh is not None else candidate_mesh()
    n = jax.tree.leaves(stacked)[0].shape[0]
    n_dev = mesh.shape[CANDIDATE_AXIS]
    n_pad = -(-n // n_dev) * n_dev
    out = _sharded(fn, mesh)(*_pad_candidates(stacked, n_pad))
    return jax.tree.map(lambda leaf: leaf[:n], out)
