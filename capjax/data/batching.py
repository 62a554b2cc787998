"""Deterministic mini-batching.

:func:`batch_indices` gives one epoch of shuffled mini-batch indices as an
``(n_batches, batch_size)`` array that a ``jax.lax.scan`` training loop can consume;
:func:`batches` is the plain Python iterator over the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from capjax.base.validation import CapjaxInputError


def _as_key(key_or_seed: Any) -> jax.Array:
    """A PRNG key from an int seed (Python, NumPy or traced scalar) or a key (typed or raw)."""
    if isinstance(key_or_seed, bool):
        raise CapjaxInputError("key_or_seed is a bool; pass an int seed or jax.random.key(seed)")
    if isinstance(key_or_seed, int | np.integer):
        return jax.random.key(int(key_or_seed))
    dtype, shape = getattr(key_or_seed, "dtype", None), np.shape(key_or_seed)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return key_or_seed
    if dtype == np.uint32 and shape == (2,):
        return key_or_seed  # legacy raw key from jax.random.PRNGKey
    if dtype is not None and np.dtype(dtype).kind in "iu" and shape == ():
        return jax.random.key(key_or_seed)
    raise CapjaxInputError(
        f"key_or_seed has dtype {dtype} and shape {shape}; pass an int seed or jax.random.key(seed)"
    )


def batch_indices(
    key_or_seed: Any, num_examples: int, batch_size: int, *, drop_remainder: bool = True
) -> jax.Array:
    """One epoch of shuffled mini-batch indices.

    Pure and jit-friendly (``num_examples``, ``batch_size`` and ``drop_remainder`` are
    static): the same key always gives the same epoch. For epoch ``e`` of a run, pass
    ``jax.random.fold_in(key, e)``; scan a training step over the rows.

    Args:
      key_or_seed: a ``jax.random.key`` (or legacy ``PRNGKey``), or an integer seed.
      num_examples: number of examples ``n`` to draw indices from.
      batch_size: examples per batch.
      drop_remainder: if True, the last ``n % batch_size`` examples of the permutation are
        left out of this epoch (``n // batch_size`` batches). If False, the permutation
        wraps around to fill the last batch (``ceil(n / batch_size)`` batches), so a few
        examples appear twice in the epoch.

    Returns:
      int32 array of shape ``(n_batches, batch_size)`` of indices into ``[0, n)``.
    """
    for label, value in (("num_examples", num_examples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise CapjaxInputError(f"{label} is {value!r}; pass a positive int")
    if drop_remainder and batch_size > num_examples:
        raise CapjaxInputError(
            f"batch_size {batch_size} exceeds the {num_examples} examples, leaving no full batch; "
            "pass a smaller batch_size or drop_remainder=False"
        )
    n_batches = (num_examples // batch_size if drop_remainder
                 else math.ceil(num_examples / batch_size))
    perm = jax.random.permutation(_as_key(key_or_seed), num_examples)
    return jnp.resize(perm, n_batches * batch_size).reshape(n_batches, batch_size).astype(
        jnp.int32
    )


def batches(
    x: Any, y: Any, batch_size: int, *, key_or_seed: Any, drop_remainder: bool = True
) -> Iterator[tuple[Any, Any]]:
    """Iterate over one shuffled epoch of ``(x_batch, y_batch)`` pairs.

    The batches are ``x[i], y[i]`` for each row ``i`` of :func:`batch_indices`, so they
    share its determinism and ``drop_remainder`` semantics.

    Args:
      x: inputs of shape ``(n, ...)`` (NumPy or JAX array).
      y: labels of shape ``(n,)``.
      batch_size: examples per batch.
      key_or_seed: a ``jax.random.key`` or an integer seed for this epoch's shuffle.
      drop_remainder: see :func:`batch_indices`.

    Returns:
      An iterator of ``(x_batch, y_batch)`` with shapes ``(batch_size, ...)`` and
      ``(batch_size,)``.
    """
    if len(x) != len(y):
        raise CapjaxInputError(
            f"x has {len(x)} examples but y has {len(y)}; pass arrays of the same length"
        )
    rows = np.asarray(
        batch_indices(key_or_seed, len(x), batch_size, drop_remainder=drop_remainder)
    )
    return ((x[r], y[r]) for r in rows)
