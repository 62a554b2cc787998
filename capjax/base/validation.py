"""Input checks shared by every capjax entry point.

Every check raises :class:`CapjaxInputError` with a message that names the problem and
the fix. Checks run on concrete (host) values only: inside ``jax.jit`` the arrays are
tracers, and the checks are skipped there by design (see :func:`is_concrete`), so the
public entry points validate once, outside the traced computation.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


class CapjaxInputError(ValueError):
    """Bad input to a capjax function; the message says what is wrong and how to fix it."""


class CapjaxWarning(UserWarning):
    """Something was repaired or worked around (a torn checkpoint, a corrupt cache entry); the run goes on."""


def is_concrete(*xs: Any) -> bool:
    """True when no leaf of ``xs`` is a JAX tracer (we are not inside jit/vmap/grad)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(xs))


def check_finite(name: str, value: Any, fix: str = "") -> None:
    """Raise if any leaf of the pytree ``value`` holds NaN or inf.

    Args:
      name: what the value is, as the user knows it (e.g. ``"layer 2 kernel"``).
      value: an array or pytree of arrays.
      fix: a hint appended to the message.
    """
    if not is_concrete(value):
        return
    for path, leaf in jax.tree_util.tree_leaves_with_path(value):
        arr = np.asarray(leaf)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            where = jax.tree_util.keystr(path)
            n_bad = int(np.size(arr) - np.isfinite(arr).sum())
            raise CapjaxInputError(
                f"{name}{where} holds {n_bad} NaN/inf value(s)"
                + (f"; {fix}" if fix else "; check the training run that produced it")
            )


def check_accuracy(name: str, acc: Any) -> np.ndarray:
    """Check accuracies are fractions in [0, 1] (NaN allowed as padding); return as float array.

    Accuracies in percent (max in (1.5, 100]) get a message saying to divide by 100.
    """
    arr = np.asarray(acc, dtype=float)
    finite = arr[np.isfinite(arr)]
    if np.isinf(arr).any():
        raise CapjaxInputError(f"{name} holds inf; accuracies must be fractions in [0, 1]")
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        # 1.02 is a rounding slip, not a percentage; 87.5 is a percentage.
        if finite.min() >= 0 and 1.5 < finite.max() <= 100:
            raise CapjaxInputError(
                f"{name} has values up to {finite.max():g}: these look like percentages; "
                "pass accuracies as fractions in [0, 1] (divide by 100)"
            )
        raise CapjaxInputError(
            f"{name} has values in [{finite.min():g}, {finite.max():g}]; "
            "accuracies must be fractions in [0, 1]"
        )
    return arr
