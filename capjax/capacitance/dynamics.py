"""Training as edge dynamics on the line graph (docs/method.md §2.2).

Gradient flow ``dw/dt = -lr * dL/dw`` moves every kernel entry ("edge") of a dense stack.
This module gives that velocity field and the interaction operators ``P`` between linked
weights that the mean-field reduction (:mod:`capjax.capacitance`) consumes. Each operator
comes twice: a matrix-free form that returns the node strengths ``s_in = P 1`` and
``s_out = P^T 1`` of the ``(n_weights, n_weights)`` operator without ever building it,
and a dense reference that builds ``P`` explicitly for tiny stacks (tests only).

Notation for a stack of L Dense layers (layer l has kernel ``W_l: (d_l, d_{l+1})``):
``a_0 = x``, ``z_l = a_l W_l + b_l``, ``a_{l+1} = sigma(z_l)``, the loss is
``loss_fn(a_L)`` (a batch mean), and ``delta_l = dL/dz_l`` with shape ``(batch, d_{l+1})``.
Because the loss is a batch *mean*, ``delta_l`` already carries the ``1/batch`` factor,
so batch sums of it are the expectations ``E_n[...]`` of docs/method.md §2.2.

Only kernel entries are weights (line-graph nodes); biases take part in the forward pass
and in nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from capjax.capacitance.graph import DenseLayer, flatten_kernels, unflatten_kernels

Activation = Callable[[jax.Array], jax.Array]
LossFn = Callable[[jax.Array], jax.Array]


class Strengths(NamedTuple):
    """Node strengths of an interaction operator ``P`` on the line graph.

    Attributes:
      s_in: ``P 1``, shape ``(n_weights,)``, in line-graph index order.
      s_out: ``P^T 1``, same shape (equal to ``s_in`` for symmetric operators).
    """

    s_in: jax.Array
    s_out: jax.Array


def forward(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    activation: Activation = jax.nn.relu,
    shifts: Sequence[jax.Array] | None = None,
) -> tuple[list[jax.Array], list[jax.Array]]:
    """Run the stack, returning inputs ``[a_0..a_{L-1}]`` and pre-activations ``[z_0..z_{L-1}]``.

    ``shifts`` (zeros, one per layer, shaped like ``z_l``) are added to the
    pre-activations so that ``jax.grad`` with respect to them yields every ``delta_l`` in a
    single backward pass.
    """
    inputs, pres = [], []
    a = x
    for l, layer in enumerate(layers):
        inputs.append(a)
        z = a @ layer["kernel"] + layer["bias"]
        if shifts is not None:
            z = z + shifts[l]
        pres.append(z)
        a = activation(z)
    return inputs, pres


def stack_apply(layers: Sequence[DenseLayer], x: jax.Array, activation: Activation = jax.nn.relu) -> jax.Array:
    """Output ``a_L`` of the stack, shape ``(batch, d_L)``; the activation follows every layer."""
    _, pres = forward(layers, x, activation)
    return activation(pres[-1])


def _with_kernels(layers: Sequence[DenseLayer], kernels: Sequence[jax.Array]) -> list[dict]:
    return [{"kernel": k, "bias": l["bias"]} for l, k in zip(layers, kernels, strict=True)]


def _loss_of_flat(layers: Sequence[DenseLayer], x: jax.Array, loss_fn: LossFn, activation: Activation):
    def f(flat):
        return loss_fn(stack_apply(_with_kernels(layers, unflatten_kernels(flat, layers)), x, activation))

    return f


def velocity(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    *,
    activation: Activation = jax.nn.relu,
    lr: float = 1.0,
) -> list[jax.Array]:
    """Edge velocities ``dW_l/dt = -lr * dL/dW_l`` of gradient flow, one array per kernel."""
    grad = jax.grad(_loss_of_flat(layers, x, loss_fn, activation))(flatten_kernels(layers))
    return unflatten_kernels(-lr * grad, layers)


def errors(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    activation: Activation = jax.nn.relu,
) -> tuple[list[jax.Array], list[jax.Array], list[jax.Array]]:
    """Layer inputs ``a_l``, pre-activations ``z_l`` and back-propagated errors ``delta_l``.

    One forward and one backward pass. Returns three lists of length L.
    """
    zeros = [jnp.zeros(x.shape[:-1] + (jnp.shape(l["kernel"])[1],), x.dtype) for l in layers]

    def loss_of_shifts(shifts):
        inputs, pres = forward(layers, x, activation, shifts)
        return loss_fn(activation(pres[-1])), (inputs, pres)

    deltas, (inputs, pres) = jax.grad(loss_of_shifts, has_aux=True)(zeros)
    return inputs, pres, deltas


def _derivative(activation: Activation, z: jax.Array) -> jax.Array:
    """Elementwise ``sigma'(z)`` for an elementwise activation, via one JVP."""
    return jax.jvp(activation, (z,), (jnp.ones_like(z),))[1]


CHUNK_ELEMENTS = 1 << 16
"""Target size of the per-chunk temporaries of the coupling contraction (elements).

Small enough to stay in cache: on a 2-core x86 CPU, 2^16 ran the width-512 contraction at
0.52 of plain matmul throughput against 0.33 at 2^20 (``benchmarks/bench_core.py``)."""


def _pair_degrees(a: jax.Array, gate: jax.Array, delta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Row and column sums of one layer pair's coupling block, without storing the block.

    The block is ``B[h, i, j] = | sum_n a[n, h] gate[n, i] delta[n, j] |``; this returns
    ``sum_j B`` with shape ``(h, i)`` (forward degrees of ``W_l``) and ``sum_h B`` with shape
    ``(i, j)`` (backward degrees of ``W_{l+1}``). The ``h`` axis is scanned in chunks so the
    ``(chunk * i, n)`` outer product and the ``(chunk, i, j)`` block stay cache-sized; each
    chunk is one matmul over the batch. Cost: ``2 * n * h * i * j`` FLOPs.
    """
    n, h = a.shape
    i, j = gate.shape[1], delta.shape[1]
    chunk = max(1, min(h, CHUNK_ELEMENTS // (i * max(n, j))))
    n_chunks = -(-h // chunk)
    # Zero rows of a add nothing to either sum, so padding h to whole chunks is exact.
    a_chunks = jnp.pad(a.T, ((0, n_chunks * chunk - h), (0, 0))).reshape(n_chunks, chunk, n)

    def body(back, a_c):
        outer = (a_c[:, None, :] * gate.T[None]).reshape(chunk * i, n)
        block = jnp.abs(outer @ delta).reshape(chunk, i, j)
        return back + block.sum(axis=0), block.sum(axis=2)

    back, fwd = jax.lax.scan(body, jnp.zeros((i, j), a.dtype), a_chunks)
    return fwd.reshape(-1, i)[:h], back


def coupling_strengths(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    *,
    activation: Activation = jax.nn.relu,
    lr: float = 1.0,
) -> Strengths:
    """Matrix-free strengths of the symmetric ``coupling`` interaction (docs/method.md §2.2).

    ``P[(h,i), (i,j)] = lr * | sum_n a_l[n, h] * sigma'(z_l)[n, i] * delta_{l+1}[n, j] |``
    links ``W_l[h, i]`` and ``W_{l+1}[i, j]``: the direct term of the mixed second
    derivative of the mean loss. The degree of ``W_l[h, i]`` sums its links forward,
    ``sum_j``, and backward, ``sum_g`` over ``W_{l-1}[g, h]``. One batch contraction per
    pair of consecutive layers (:func:`_pair_degrees`); ``P`` is never built.
    """
    inputs, pres, deltas = errors(layers, x, loss_fn, activation)
    degree = [jnp.zeros(jnp.shape(l["kernel"]), x.dtype) for l in layers]
    for l in range(len(layers) - 1):
        fwd, back = _pair_degrees(inputs[l], _derivative(activation, pres[l]), deltas[l + 1])
        degree[l] = degree[l] + fwd
        degree[l + 1] = degree[l + 1] + back
    s = lr * jnp.concatenate([d.ravel() for d in degree])
    return Strengths(s, s)


def coupling_dense(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    *,
    activation: Activation = jax.nn.relu,
    lr: float = 1.0,
) -> jax.Array:
    """Reference: the ``coupling`` operator as an explicit ``(n_weights, n_weights)`` matrix.

    Built entry by entry from the per-example quantities, independently of
    :func:`coupling_strengths`' contraction; tiny stacks only.
    """
    inputs, pres, deltas = errors(layers, x, loss_fn, activation)
    sizes = [int(jnp.size(l["kernel"])) for l in layers]
    offsets = [sum(sizes[:l]) for l in range(len(layers))]
    n = sum(sizes)
    P = jnp.zeros((n, n), x.dtype)
    for l in range(len(layers) - 1):
        d_h, d_i = jnp.shape(layers[l]["kernel"])
        d_j = jnp.shape(layers[l + 1]["kernel"])[1]
        gate = _derivative(activation, pres[l])
        for h in range(d_h):
            for i in range(d_i):
                for j in range(d_j):
                    value = lr * jnp.abs(jnp.sum(inputs[l][:, h] * gate[:, i] * deltas[l + 1][:, j]))
                    a = offsets[l] + h * d_i + i
                    b = offsets[l + 1] + i * d_j + j
                    P = P.at[a, b].set(value).at[b, a].set(value)
    return P


def hessian_strengths(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    *,
    activation: Activation = jax.nn.relu,
    lr: float = 1.0,
) -> Strengths:
    """Matrix-free strengths of the ``hessian`` interaction ``P = lr * H`` (docs/method.md §2.2).

    ``H`` is the Hessian of the mean loss over all kernel entries; ``s = lr * H 1`` costs
    one Hessian-vector product (forward-over-reverse). ``H`` is symmetric but not
    non-negative, so strengths may be negative.
    """
    f = _loss_of_flat(layers, x, loss_fn, activation)
    w = flatten_kernels(layers)
    s = lr * jax.jvp(jax.grad(f), (w,), (jnp.ones_like(w),))[1]
    return Strengths(s, s)


def hessian_dense(
    layers: Sequence[DenseLayer],
    x: jax.Array,
    loss_fn: LossFn,
    *,
    activation: Activation = jax.nn.relu,
    lr: float = 1.0,
) -> jax.Array:
    """Reference: ``lr * H`` as an explicit ``(n_weights, n_weights)`` matrix; tiny stacks only."""
    return lr * jax.hessian(_loss_of_flat(layers, x, loss_fn, activation))(flatten_kernels(layers))


INTERACTIONS: dict[str, Callable[..., Strengths]] = {
    "coupling": coupling_strengths,
    "hessian": hessian_strengths,
}
"""Matrix-free interaction operators by name; each maps ``(layers, x, loss_fn, *,
activation, lr)`` to :class:`Strengths`."""

DENSE_INTERACTIONS: dict[str, Callable[..., jax.Array]] = {
    "coupling": coupling_dense,
    "hessian": hessian_dense,
}
"""Dense references of :data:`INTERACTIONS`, returning the ``(n_weights, n_weights)`` ``P``."""
