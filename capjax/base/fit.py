"""Private: least-squares slope shared by the scaling-law estimators (fractal, topology)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def slope(x: jax.Array, y: jax.Array) -> jax.Array:
    """Ordinary least-squares slope of ``y`` on ``x`` (1-D, same length), intercept free."""
    xc = x - jnp.mean(x)
    return jnp.dot(xc, y - jnp.mean(y)) / jnp.dot(xc, xc)
