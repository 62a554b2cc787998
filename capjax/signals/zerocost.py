"""Zero-cost proxies: scores of an untrained network from one batch (docs/method.md §4).

Every proxy reads the network at initialisation through ``apply_fn(params, x) -> logits``
(``x`` batched on its leading axis, examples independent: no batch-norm statistics of the
batch) and one ``batch = (x, y)`` with integer labels ``y`` ``(n,)``. Higher scores are
meant to predict higher final accuracy. All are pure; close over ``apply_fn`` (or mark it
static) to ``jax.jit`` them.

- :func:`grad_norm`: ``||dL/dtheta||_2`` over all parameters (one global norm;
  Abdelfattah et al. 2021 sum the per-layer norms instead).
- :func:`snip`: ``sum |dL/dtheta * theta|`` (Lee et al. 2019 saliency, summed).
- :func:`synflow`: ``sum |dR/dtheta * theta|`` at ``|theta|`` with ``R = sum f(|theta|, 1)``
  (Tanaka et al. 2020), data-free.
- :func:`jacov`: Mellor et al. 2020, from the correlations of the input Jacobians.
- :func:`nwot`: Mellor et al. 2021, ``log |det K_H|`` of the ReLU activation-pattern
  kernel.

``L`` is the mean softmax cross-entropy over the batch unless ``loss_fn`` says otherwise.
Every sum over parameters runs over all leaves of ``params``, biases included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from capjax.base.validation import CapjaxInputError, check_finite, is_concrete
from capjax.capacitance.dynamics import forward
from capjax.capacitance.graph import as_layer_stack

Array = jax.Array
ApplyFn = Callable[[Any, Array], Array]
LossFn = Callable[[Array, Array], Array]
Batch = tuple[Array, Array]


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean softmax cross-entropy of ``logits`` ``(n, n_classes)`` and int ``labels`` ``(n,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _checked(params: Any, batch: Batch) -> tuple[Array, Array]:
    x, y = batch
    check_finite("params", params, "score the network at initialisation")
    check_finite("batch inputs", x)
    if is_concrete(y) and not jnp.issubdtype(jnp.asarray(y).dtype, jnp.integer):
        raise CapjaxInputError(
            f"labels have dtype {jnp.asarray(y).dtype}; pass integer class indices "
            "(e.g. y.argmax(-1) for one-hot labels)"
        )
    return jnp.asarray(x), jnp.asarray(y)


def _loss_grad(apply_fn: ApplyFn, params: Any, batch: Batch, loss_fn: LossFn) -> Any:
    x, y = _checked(params, batch)
    return jax.grad(lambda p: loss_fn(apply_fn(p, x), y))(params)


def grad_norm(
    apply_fn: ApplyFn, params: Any, batch: Batch, *, loss_fn: LossFn = cross_entropy
) -> Array:
    """``||dL/dtheta||_2``, the l2 norm of the loss gradient over all parameters; scalar."""
    grads = _loss_grad(apply_fn, params, batch, loss_fn)
    return optax.tree.norm(grads)


def snip(apply_fn: ApplyFn, params: Any, batch: Batch, *, loss_fn: LossFn = cross_entropy) -> Array:
    """SNIP: ``sum_i |dL/dtheta_i * theta_i|`` over all parameters; scalar."""
    grads = _loss_grad(apply_fn, params, batch, loss_fn)
    return optax.tree.sum(jax.tree.map(lambda g, w: jnp.abs(g * w), grads, params))


def synflow(apply_fn: ApplyFn, params: Any, batch: Batch) -> Array:
    """SynFlow: ``sum_i |dR/dtheta_i * theta_i|`` at ``|theta|``, ``R = sum f(|theta|, 1)``.

    The input is one all-ones example shaped like ``x[0]``; labels are unused. ``R`` grows
    like the product of the layers' absolute weight sums, which overflows float32 for deep
    or wide nets (Tanaka et al. compute in float64 for this reason). capjax computes in
    float64 when x64 is enabled, so call it under ``with jax.enable_x64(True):`` for deep
    nets; in float32 an overflow raises :class:`CapjaxInputError` (outside jit) instead
    of returning inf. A check by Euler's theorem: for a bias-free ReLU net of depth ``D``
    the score equals ``D * R``.

    Returns:
      A non-negative scalar in the compute dtype.
    """
    x, _ = _checked(params, batch)
    dtype = jnp.result_type(float)  # float64 exactly when x64 is enabled
    abs_params = jax.tree.map(lambda w: jnp.abs(w).astype(dtype), params)
    ones = jnp.ones((1, *x.shape[1:]), dtype)
    grads = jax.grad(lambda p: jnp.sum(apply_fn(p, ones)))(abs_params)
    score = optax.tree.sum(jax.tree.map(lambda g, w: jnp.abs(g * w), grads, abs_params))
    if is_concrete(score) and not jnp.isfinite(score):
        raise CapjaxInputError(
            f"synflow overflowed {jnp.dtype(dtype).name}; call it inside "
            "`with jax.enable_x64(True):` to compute in float64"
        )
    return score


def jacov(apply_fn: ApplyFn, params: Any, batch: Batch, *, k: float = 1e-5) -> Array:
    """Mellor et al. (2020) Jacobian-covariance score; scalar, higher is better.

    With ``J_n = d(sum_c f_c(x_n)) / dx_n`` flattened to ``(n, d)`` and ``lambda`` the
    eigenvalues of the ``(n, n)`` correlation matrix of the rows of ``J``:

        score = -sum_i [ log(lambda_i + k) + 1 / (lambda_i + k) ]

    Eigenvalues are clipped at 0 (the matrix is PSD; rounding can make a zero eigenvalue
    slightly negative). Labels are unused. An example whose Jacobian is constant across
    its entries has no correlation and makes the score NaN.
    """
    x, _ = _checked(params, batch)
    # Examples are independent, so the gradient of the batch sum is each example's own.
    jac = jax.grad(lambda v: jnp.sum(apply_fn(params, v)))(x).reshape(x.shape[0], -1)
    eig = jnp.maximum(jnp.linalg.eigvalsh(jnp.corrcoef(jac)), 0.0)
    return -jnp.sum(jnp.log(eig + k) + 1.0 / (eig + k))


def nwot(
    activations_fn: Callable[[Any, Array], Sequence[Array]], params: Any, batch: Batch
) -> Array:
    """Mellor et al. (2021) "NASWOT" score ``log |det K_H|``; scalar, higher is better.

    ``activations_fn(params, x)`` returns the pre-activations ``(n, ...)`` of every ReLU
    layer; each example's binary code ``c_n`` concatenates ``z > 0`` over all of them
    (``N_A`` units), and

        K_H[n, m] = c_n . c_m + (1 - c_n) . (1 - c_m) = N_A - Hamming(c_n, c_m).

    For a dense stack use :func:`mlp_preactivations`; for a Linen model, the
    ``capture_intermediates`` outputs of its Dense/Conv layers. Labels are unused. Two
    examples with one code make ``K_H`` singular and the score ``-inf``.
    """
    x, _ = _checked(params, batch)
    codes = jnp.concatenate(
        [(z > 0).reshape(x.shape[0], -1) for z in activations_fn(params, x)], axis=1
    ).astype(jnp.result_type(float))
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    return jnp.linalg.slogdet(kernel)[1]


def mlp_preactivations(
    params: Any, x: Array, activation: Callable[[Array], Array] = jax.nn.relu
) -> list[Array]:
    """Hidden pre-activations ``z^l = a^{l-1} W^l + b^l`` of a dense stack, for :func:`nwot`.

    Args:
      params: a dense stack ``[{"kernel", "bias"}, ...]`` or a Flax params dict of an MLP
        ``x -> Dense -> activation -> ... -> Dense``.
      x: inputs ``(n, d_in)``.
      activation: the hidden nonlinearity.

    Returns:
      ``[z^1, ..., z^{L-1}]``, each ``(n, d_l)``; the output layer's logits are left out.
    """
    stack = as_layer_stack(params)
    if any(layer["kernel"].ndim != 2 for layer in stack):
        raise CapjaxInputError(
            "mlp_preactivations reads dense stacks only; for conv nets pass your own "
            "activations_fn returning each ReLU layer's pre-activations"
        )
    return forward(stack[:-1], x, activation)[1]
