"""Mean-field network reduction and the neural capacitance ``beta_eff`` (docs/method.md §2.1, 2.2).

Gao, Barzel and Barabasi reduce ``dx_i/dt = f(x_i) + sum_j P_ij g(x_i, x_j)`` to one
dimension with ``L_P(z) = 1^T P z / 1^T P 1``. With ``s_in = P 1`` and ``s_out = P^T 1``
the effective interaction strength is

    beta_eff = L_P(s_in) = s_out . s_in / (1^T P 1),

and the effective state ``x_eff = L_P(x) = s_out . x / (1^T P 1)``. Applied to the
edge dynamics of training (:mod:`capjax.capacitance.dynamics`), ``beta_eff`` is the neural
capacitance of Jiang et al.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from capjax.base.validation import CapjaxInputError, check_finite, is_concrete
from capjax.capacitance.dynamics import INTERACTIONS, Activation, LossFn, Strengths
from capjax.capacitance.graph import DenseLayer, as_dense_stack, check_stack, flatten_kernels


class Reduction(NamedTuple):
    """One-dimensional reduction of a networked system (docs/method.md §2.1).

    Attributes:
      beta_eff: effective interaction strength, scalar.
      x_eff: effective state ``L_P(x)``, scalar (here ``x`` is the weights).
      total: ``1^T P 1``, the total interaction, scalar; 0 when nothing interacts.
    """

    beta_eff: jax.Array
    x_eff: jax.Array
    total: jax.Array


def _safe_ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den``, and 0 where ``den == 0`` (no division warning, no NaN gradient)."""
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1), 0)


def reduce_strengths(strengths: Strengths, x: jax.Array | None = None) -> Reduction:
    """Reduce node strengths to ``(beta_eff, x_eff, total)`` (docs/method.md §2.1).

    Args:
      strengths: ``s_in = P 1`` and ``s_out = P^T 1``, each ``(n,)``.
      x: node states ``(n,)`` for ``x_eff``; 0 is returned for ``x_eff`` when omitted.

    A zero operator (``1^T P 1 = 0``, e.g. all errors zero) gives ``beta_eff = 0``.
    """
    s_in, s_out = strengths
    total = jnp.sum(s_in)
    beta = _safe_ratio(jnp.dot(s_out, s_in), total)
    x_eff = _safe_ratio(jnp.dot(s_out, x), total) if x is not None else jnp.zeros_like(total)
    return Reduction(beta, x_eff, total)


def beta_eff_dense(P: jax.Array) -> jax.Array:
    """Reference ``beta_eff`` of an explicit ``(n, n)`` operator: ``(P^T 1).(P 1) / 1^T P 1``."""
    return reduce_strengths(Strengths(P.sum(axis=1), P.sum(axis=0))).beta_eff


def _validate(layers: Sequence[DenseLayer], x: jax.Array, interaction: str) -> list[dict]:
    if interaction not in INTERACTIONS:
        raise CapjaxInputError(f"unknown interaction {interaction!r}; choose one of {sorted(INTERACTIONS)}")
    layers = as_dense_stack(layers)
    check_stack(layers)
    if jnp.ndim(x) != 2:
        raise CapjaxInputError(
            f"x has shape {jnp.shape(x)}; pass the features entering the first layer as "
            "(batch, d_in) — flatten images or conv features first"
        )
    batch, d_in = jnp.shape(x)
    if d_in != jnp.shape(layers[0]["kernel"])[0]:
        raise CapjaxInputError(
            f"x has {d_in} features but the first layer expects {jnp.shape(layers[0]['kernel'])[0]}; "
            "pass the backbone features that feed the probe"
        )
    if batch < 2:
        raise CapjaxInputError(
            f"a batch of {batch} example: beta_eff averages error products over examples, "
            "so pass a batch of at least 2 (64 or more is typical)"
        )
    check_finite("features x", x, "the backbone produced NaN/inf features: check its weights and inputs")
    return list(layers)


def network_reduction(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    *,
    interaction: str = "coupling",
    activation: Activation = jax.nn.relu,
    lr: float = 1.0,
) -> Reduction:
    """Reduce a dense stack's edge dynamics on one batch to ``(beta_eff, x_eff, total)``.

    Args:
      layers: Dense param dicts ``{"kernel": (d_l, d_{l+1}), "bias": (d_{l+1},)}`` in
        forward order (or any container :func:`capjax.as_dense_stack` reads).
      x: ``(batch, d_0)`` features entering the first layer; ``batch >= 2``.
      loss_fn: maps the stack's output ``(batch, d_L)`` to the scalar *mean* loss; it
        closes over whatever follows the stack (head, labels).
      interaction: a name in :data:`capjax.capacitance.dynamics.INTERACTIONS` (docs/method.md §2.2).
      activation: elementwise nonlinearity applied after every layer.
      lr: learning rate ``eta`` scaling ``P``; ``beta_eff`` scales linearly with it.

    Pure and traceable: runs under ``jit``, ``vmap`` and sharding. Shapes are checked at
    trace time; NaN/inf inputs are reported when called on concrete arrays (inside a
    traced step, check the returned value on the host instead).
    """
    layers = _validate(layers, x, interaction)
    strengths = INTERACTIONS[interaction](layers, x, loss_fn, activation=activation, lr=lr)
    out = reduce_strengths(strengths, flatten_kernels(layers))
    if is_concrete(out) and not bool(jnp.isfinite(out.beta_eff)):
        raise CapjaxInputError(
            "beta_eff is not finite although weights and features are: loss_fn returned "
            "NaN/inf gradients — check the head, the labels and the loss"
        )
    return out


def beta_eff(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    *,
    interaction: str = "coupling",
    activation: Activation = jax.nn.relu,
    lr: float = 1.0,
) -> jax.Array:
    """Neural capacitance ``beta_eff`` of a dense stack on one batch, a scalar (docs/method.md §2.1-2.3).

    ``beta_eff = s_out . s_in / 1^T P 1`` for the interaction operator ``P`` on the
    stack's line graph; see :func:`network_reduction` for the arguments.

    Example::

        def loss_fn(out):  # closes over the head and the labels
            return optax.softmax_cross_entropy_with_integer_labels(out @ w_head, y).mean()

        b = jax.jit(lambda p, x: capjax.beta_eff(p, x, loss_fn))(probe_layers, feats)
    """
    return network_reduction(layers, x, loss_fn, interaction=interaction, activation=activation, lr=lr).beta_eff
