"""Node strength and layer fluctuation of the weighted, layered digraph (docs/method.md §3).

La Malfa, La Malfa, Nicosia, Latora (arXiv 2110.02628, 2209.05488, 2404.11172) read a
network as a signed, weighted, layered digraph: the units of consecutive layers are
linked by the weights, and a unit's *strength* is the sum of the weights of its links
plus its bias. For a unit ``i`` of node layer ``l`` (layer 0 is the input, layer ``L``
the output; kernel ``W^l`` maps node layer ``l - 1`` to node layer ``l``):

    s_i^l = sum_j W^{l+1}_ij  +  sum_k W^l_ki + b^l_i          (out plus in, bias included)

Input units have only the out term, output units only the in term plus bias. The
*fluctuation* of a layer is ``std_i(s_i^l)``. The papers find that link-weight
distributions do not separate accurate from under-trained networks, while strengths and
fluctuations do; populations of networks are compared by Gaussian KDE and symmetrised KL
(:func:`symmetric_kl`).

Conv layers are unrolled to pixel units (one node per pixel and channel) without building
the unrolled matrix: the out-strength of the input units is the gradient of
``sum(conv(x, K))`` with respect to ``x`` (a transposed conv of ones), and the in-strength
of the output units is ``conv(1, K)``. Where a pixel's receptive field lies inside the
input (every pixel under ``"VALID"`` padding) that is the ``sum K[..., o]`` of docs/method.md §3; at the
border of a ``"SAME"`` conv part of the kernel falls on the zero padding, which is no unit
of the graph, so capjax keeps the exact unrolled value there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import jax
import jax.numpy as jnp

from capjax.base.validation import CapjaxInputError, check_finite, is_concrete
from capjax.capacitance.graph import as_layer_stack

Array = jax.Array
Padding = str | Sequence[tuple[int, int]]
SpatialShape = tuple[int, int]


def _conv(x: Array, kernel: Array, stride: int, padding: Padding) -> Array:
    """One image ``x`` (H, W, C_in) through a bias-free NHWC/HWIO conv (Flax's layout)."""
    out = jax.lax.conv_general_dilated(
        x[None],
        kernel,
        window_strides=(stride, stride),
        padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return out[0]


def layer_strengths(
    layer: dict,
    input_shape: SpatialShape | None = None,
    *,
    stride: int = 1,
    padding: Padding = "SAME",
) -> tuple[Array, Array]:
    """Out-strength of a layer's input units and in-strength (plus bias) of its outputs.

    Args:
      layer: ``{"kernel", "bias"}``; dense kernel ``(d_in, d_out)`` or conv kernel
        ``(kh, kw, c_in, c_out)``.
      input_shape: spatial shape ``(H, W)`` of the conv's input; unused for dense layers.
      stride, padding: the conv's window stride and padding (Flax's defaults: 1, "SAME").

    Returns:
      ``(s_out, s_in)``: dense ``(d_in,)`` and ``(d_out,)``; conv ``(H, W, c_in)`` and
      ``(H', W', c_out)``. ``s_out_k = sum_j W_kj``, ``s_in_j = sum_k W_kj + b_j`` in the
      (unrolled, for conv) weight matrix ``W``.
    """
    kernel = jnp.asarray(layer["kernel"])
    bias = jnp.zeros(kernel.shape[-1], kernel.dtype) if layer.get("bias") is None else layer["bias"]
    if kernel.ndim == 2:
        return kernel.sum(axis=1), kernel.sum(axis=0) + bias
    if input_shape is None:
        raise CapjaxInputError(
            f"a conv kernel {kernel.shape} needs the spatial shape of its input to be "
            "unrolled to pixel units; pass input_shape=(H, W)"
        )
    x = jax.ShapeDtypeStruct((*input_shape, kernel.shape[2]), kernel.dtype)

    def conv(v: Array) -> Array:
        return _conv(v, kernel, stride, padding)

    s_in = conv(jnp.ones(x.shape, x.dtype))
    (s_out,) = jax.linear_transpose(conv, x)(jnp.ones_like(s_in))
    return s_out, s_in + bias


def _per_layer(value: Any, n: int, name: str, is_single) -> list:
    if is_single(value):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise CapjaxInputError(
            f"{name} lists {len(value)} entries for {n} layers; give one per layer "
            "(None for dense layers) or a single value for all"
        )
    return value


def _is_spatial(v: Any) -> bool:
    return v is None or (len(v) == 2 and all(isinstance(d, Integral) for d in v))


def _is_padding(v: Any) -> bool:
    """A single padding: a string or ``((lo, hi), (lo, hi))`` pairs of ints."""
    return isinstance(v, str) or all(
        isinstance(p, tuple | list) and all(isinstance(q, Integral) for q in p) for p in v
    )


def node_strengths(
    params: Any,
    input_shape: SpatialShape | Sequence[SpatialShape | None] | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Padding | Sequence[Padding] = "SAME",
) -> list[Array]:
    """Strength of every unit, one array per node layer (docs/method.md §3).

    Node layer 0 is the input (out-strength only), the last is the output (in-strength
    plus bias only); every other node layer sums the in-strength plus bias coming from
    the layer before and the out-strength going to the layer after. A conv output feeds a
    dense layer through NHWC flattening.

    Args:
      params: a stack ``[{"kernel", "bias"}, ...]`` in forward order, or a Flax params
        dict.
      input_shape: for conv nets, the spatial shape ``(H, W)`` of the network input
        (each conv then receives the previous conv's output), or one ``(H, W)`` per layer
        (``None`` for dense ones) when pooling changes the shape between layers.
      strides, padding: per conv, a single value or one per layer.

    Returns:
      One array per node layer: dense ``(d,)``, conv ``(H, W, C)``. Where pooling or any
      other unweighted operation sits between two layers (unit counts differ), the graph
      has no links across it, so the junction yields two node layers: the units before it
      (in-strength plus bias only) and after it (out-strength only).

    Raises:
      CapjaxInputError: dense layers whose widths do not chain, a conv without a spatial
        shape, non-finite weights.
    """
    stack = as_layer_stack(params)
    check_finite("weights", stack, "strengths of a diverged network are meaningless")
    n = len(stack)
    if _is_spatial(input_shape):
        shapes = [input_shape] + [None] * (n - 1)
    else:
        shapes = _per_layer(input_shape, n, "input_shape", lambda v: False)
    strides = _per_layer(strides, n, "strides", lambda v: isinstance(v, Integral))
    paddings = _per_layer(padding, n, "padding", _is_padding)
    nodes: list[Array] = []
    incoming: Array | None = None
    spatial = None
    for i, layer in enumerate(stack):
        conv = layer["kernel"].ndim == 4
        if conv and shapes[i] is not None:
            spatial = shapes[i]
        s_out, s_in = layer_strengths(layer, spatial, stride=strides[i], padding=paddings[i])
        if incoming is None:
            nodes.append(s_out)
        elif incoming.size == s_out.size:
            nodes.append(incoming + s_out.reshape(incoming.shape))
        elif conv or stack[i - 1]["kernel"].ndim == 4:
            nodes.extend([incoming, s_out])
        else:
            raise CapjaxInputError(
                f"dense layer {i - 1} outputs {incoming.size} units but layer {i} takes "
                f"{s_out.size}; pass the layers in forward order"
            )
        incoming = s_in
        spatial = s_in.shape[:2] if conv else None
    nodes.append(incoming)
    return nodes


def layer_fluctuation(strengths: Sequence[Array]) -> Array:
    """Fluctuation ``std_i(s_i^l)`` of each node layer; shape ``(n_node_layers,)``.

    Population standard deviation (``ddof=0``) over all units of the layer (pixels and
    channels alike for conv layers).
    """
    return jnp.stack([jnp.std(s) for s in strengths])


def strength_features(params: Any, input_shape=None, **conv_options) -> Array:
    """One feature vector per network for regressors: per node layer (mean, fluctuation).

    Args:
      params, input_shape, conv_options: as for :func:`node_strengths`.

    Returns:
      ``(2 * n_node_layers,)``: ``[mean(s^0), std(s^0), mean(s^1), std(s^1), ...]``;
      the std is the layer fluctuation. Networks of one architecture give vectors of one
      length.
    """
    nodes = node_strengths(params, input_shape, **conv_options)
    means = jnp.stack([jnp.mean(s) for s in nodes])
    return jnp.stack([means, layer_fluctuation(nodes)], axis=1).reshape(-1)


def _kde_factor(n: int, bw_method: str | float) -> float:
    # Same conventions as scipy.stats.gaussian_kde in one dimension: the kernel width is
    # the sample std (ddof=1) times this factor.
    if bw_method == "scott":
        return n ** (-1 / 5)
    if bw_method == "silverman":
        return (n * 3 / 4) ** (-1 / 5)
    if isinstance(bw_method, int | float) and bw_method > 0:
        return float(bw_method)
    raise CapjaxInputError(
        f"bw_method={bw_method!r} is not understood; use 'scott', 'silverman' or a positive factor"
    )


def _log_kde(grid: Array, samples: Array, width: Array) -> Array:
    def at(x: Array) -> Array:
        z = (x - samples) / width
        return jax.nn.logsumexp(-0.5 * z**2)

    norm = jnp.log(samples.size * width * jnp.sqrt(2 * jnp.pi))
    return jax.lax.map(at, grid, batch_size=64) - norm


@functools.partial(jax.jit, static_argnames="n_grid")
def _kde_symmetric_kl(a: Array, b: Array, factor_a, factor_b, n_grid: int) -> Array:
    width_a = jnp.std(a, ddof=1) * factor_a
    width_b = jnp.std(b, ddof=1) * factor_b
    margin = 4 * jnp.maximum(width_a, width_b)
    grid = jnp.linspace(
        jnp.minimum(a.min(), b.min()) - margin, jnp.maximum(a.max(), b.max()) + margin, n_grid
    )
    log_pa = _log_kde(grid, a, width_a)
    log_pb = _log_kde(grid, b, width_b)
    integrand = (jnp.exp(log_pa) - jnp.exp(log_pb)) * (log_pa - log_pb)
    return jnp.trapezoid(integrand, grid)


def symmetric_kl(
    samples_a: Array,
    samples_b: Array,
    *,
    bw_method: str | float = "scott",
    n_grid: int = 1024,
) -> Array:
    """Symmetrised KL divergence between the Gaussian KDEs of two 1-D samples (docs/method.md §3).

        D = KL(p_a || p_b) + KL(p_b || p_a) = integral (p_a - p_b)(log p_a - log p_b) dx

    with ``p = gaussian KDE`` (scipy's bandwidth conventions) and the integral taken by the
    trapezoid rule on ``n_grid`` points spanning both samples plus four kernel widths on
    each side. Log densities are computed with logsumexp, so far tails do not give
    ``0 * log 0``. Compiled once per pair of sample sizes.

    Args:
      samples_a, samples_b: any shape, flattened (e.g. the strengths of one layer pooled
        over a population of networks); at least two distinct values each.
      bw_method: ``"scott"``, ``"silverman"`` or a positive factor multiplying the std.
      n_grid: number of integration points.

    Returns:
      A non-negative scalar (nats).
    """
    a = jnp.ravel(jnp.asarray(samples_a))
    b = jnp.ravel(jnp.asarray(samples_b))
    check_finite("samples", (a, b))
    if is_concrete(a, b):
        for name, s in (("samples_a", a), ("samples_b", b)):
            if s.size < 2 or float(jnp.std(s)) == 0.0:
                raise CapjaxInputError(
                    f"{name} has fewer than two distinct values, so its KDE has no width; "
                    "pass the strengths of a whole layer or population"
                )
    return _kde_symmetric_kl(
        a, b, _kde_factor(a.size, bw_method), _kde_factor(b.size, bw_method), n_grid
    )
