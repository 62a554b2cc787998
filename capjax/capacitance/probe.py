"""The neural capacitance probe (NCP) of docs/method.md §2.3.

A small dense stack, randomly initialised and frozen, sits between a backbone's features
and a trainable head. The backbone and head are fine-tuned; the probe's weights never
move, but the features entering it and the errors flowing back through it do, so its
``beta_eff`` traces the training run.

Three ways in, all ending in the same dense stack of ``{"kernel", "bias"}`` dicts:

* functional: :func:`init_probe` / :func:`apply_probe` on plain pytrees;
* Flax NNX: :class:`NCProbe`, an ``nnx.Module``;
* Flax Linen: :class:`NCProbeLinen`, an ``nn.Module``.

:func:`freeze_probe` wraps any optax optimizer so that exactly the probe's leaves get
zero updates (weight decay included), and :func:`beta_eff_every` measures ``beta_eff``
from inside a jitted training step every ``k`` steps at no cost on the other steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from capjax.capacitance.dynamics import Activation, LossFn, stack_apply
from capjax.capacitance.graph import DenseLayer
from capjax.capacitance.reduction import beta_eff

DEFAULT_WIDTHS: tuple[int, ...] = (64, 32)
"""Probe widths when none are given; the paper does not state its own (docs/method.md §2.3)."""

PROBE_KEY = "probe"


def init_probe(
    key: jax.Array, d_in: int, widths: Sequence[int] = DEFAULT_WIDTHS, dtype: Any = jnp.float32
) -> list[dict]:
    """Random probe weights as a dense stack: LeCun-normal kernels, zero biases.

    Returns ``len(widths)`` dicts ``{"kernel": (d_l, d_{l+1}), "bias": (d_{l+1},)}`` with
    ``d_0 = d_in`` — the same initialisation as ``nnx.Linear`` and ``nn.Dense``.
    """
    init = jax.nn.initializers.lecun_normal()
    sizes = [d_in, *widths]
    keys = jax.random.split(key, len(widths))
    return [
        {"kernel": init(k, (a, b), dtype), "bias": jnp.zeros((b,), dtype)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def apply_probe(layers: Sequence[DenseLayer], x: jax.Array, activation: Activation = jax.nn.relu) -> jax.Array:
    """Probe output ``(batch, widths[-1])``; the activation follows every layer."""
    return stack_apply(layers, x, activation)


class NCProbe(nnx.Module):
    """Flax NNX probe: ``len(widths)`` Linear layers, each followed by ``activation``.

    Read its weights with ``capjax.as_dense_stack(probe)``; keep it frozen with
    :func:`freeze_probe` (attribute name ``probe`` in the parent module).
    """

    def __init__(
        self,
        d_in: int,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        *,
        activation: Activation = jax.nn.relu,
        rngs: nnx.Rngs,
    ):
        sizes = [d_in, *widths]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = self.activation(layer(x))
        return x


class NCProbeLinen(nn.Module):
    """Flax Linen probe; ``capjax.as_dense_stack(variables)`` reads its Dense layers."""

    widths: Sequence[int] = DEFAULT_WIDTHS
    activation: Activation = jax.nn.relu

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.widths:
            x = self.activation(nn.Dense(width)(x))
        return x


def _is_probe_path(path: tuple, probe_key: str) -> bool:
    names = {str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path}
    return probe_key in names


def freeze_probe(tx: optax.GradientTransformation, probe_key: str = PROBE_KEY) -> optax.GradientTransformation:
    """Wrap ``tx`` so that every parameter under a ``probe_key`` node gets a zero update.

    Uses ``optax.multi_transform`` with ``optax.set_to_zero()`` for the probe's leaves,
    so the frozen weights also escape weight decay and keep no optimizer state. Works
    for plain dicts, Linen params and NNX states: any tree path containing a key or
    attribute named ``probe_key`` is frozen.
    """

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "frozen" if _is_probe_path(path, probe_key) else "trainable", params
        )

    return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)


def beta_eff_every(
    step: jax.Array,
    every: int,
    layers: Any,
    x: jax.Array,
    loss_fn: LossFn,
    **kwargs: Any,
) -> jax.Array:
    """``beta_eff`` on steps where ``step % every == 0``, NaN on the others.

    For use inside a jitted training step: ``jax.lax.cond`` runs the measurement only on
    the recording steps, so the other steps pay nothing. ``kwargs`` go to
    :func:`capjax.beta_eff` (``interaction``, ``activation``, ``lr``). A NaN on a
    recording step means the loss or weights diverged; check it on the host.
    """
    out_dtype = x.dtype
    return jax.lax.cond(
        step % every == 0,
        lambda: beta_eff(layers, x, loss_fn, **kwargs).astype(out_dtype),
        lambda: jnp.full((), jnp.nan, out_dtype),
    )
