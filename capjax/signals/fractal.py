"""Box-counting fractal dimension and roughness of weight matrices (docs/method.md §3).

Moharil et al. (arXiv 2407.09585) read each weight matrix as an image and measure its
fractal (box-counting) dimension and roughness, segment by segment. The paper leaves the
image construction open; capjax's choices, all parameters:

- image: ``|W|`` min-max normalised to [0, 1]; a conv kernel ``(kh, kw, c_in, c_out)``
  is read as the matrix ``(kh * kw * c_in, c_out)`` (the im2col layout);
- binarisation: a pixel is occupied where the image exceeds ``threshold`` (default: the
  image's mean, so occupancy adapts to the weight scale);
- box sizes ``s = 1, 2, 4, ...`` up to half the shorter side, so every scale has at least
  two boxes across; the dimension is the least-squares slope of ``log N(s)`` against
  ``log(1 / s)``, ``N(s)`` the number of ``s x s`` boxes holding an occupied pixel;
- roughness: the arithmetic mean deviation ``Ra = mean |w - mean(w)|`` of the raw weights
  (the surface-metrology roughness of the surface ``z = W_ij``).

Tan et al. (arXiv 2406.02234) critique the fractal view of training; see
:mod:`capjax.signals.topology` for the trajectory dimensions they test and the l2-norm baseline.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from capjax.base.fit import slope
from capjax.base.validation import CapjaxInputError, check_finite, is_concrete
from capjax.capacitance.graph import as_layer_stack

Array = jax.Array


def weight_image(weights: Array) -> Array:
    """``|W|`` as a 2-D image, min-max normalised to [0, 1]; shape ``(rows, cols)``.

    A conv kernel ``(kh, kw, c_in, c_out)`` becomes ``(kh * kw * c_in, c_out)``; a constant
    matrix becomes all zeros.
    """
    w = jnp.abs(jnp.asarray(weights))
    w = w.reshape(-1, w.shape[-1])
    span = jnp.max(w) - jnp.min(w)
    return jnp.where(span > 0, (w - jnp.min(w)) / jnp.where(span > 0, span, 1.0), 0.0)


def binarise(image: Array, threshold: float | Array | None = None) -> Array:
    """Occupied pixels: ``image > threshold`` (default: the image's mean); boolean."""
    image = jnp.asarray(image)
    return image > (jnp.mean(image) if threshold is None else threshold)


def dyadic_scales(shape: Sequence[int]) -> tuple[int, ...]:
    """Box sizes ``1, 2, 4, ...`` up to half the shorter side of an image of ``shape``."""
    short = min(shape)
    if short < 4:
        raise CapjaxInputError(
            f"an image of shape {tuple(shape)} is too small for box counting; it needs at "
            "least 4 pixels along each side (three scales)"
        )
    return tuple(2**k for k in range(int(math.log2(short))))


def box_counts(occupied: Array, scales: Sequence[int]) -> Array:
    """Number of ``s x s`` boxes holding an occupied pixel, for each ``s``; shape ``(n_s,)``.

    Boxes tile the image from the top-left corner; the image is zero-padded at the bottom
    and right to a multiple of ``s``.
    """
    occupied = jnp.asarray(occupied, bool)
    rows, cols = occupied.shape
    counts = []
    for s in scales:
        pad = ((0, -rows % s), (0, -cols % s))
        tiled = jnp.pad(occupied, pad).reshape((rows + pad[0][1]) // s, s, -1, s)
        counts.append(jnp.sum(jnp.any(tiled, axis=(1, 3))))
    return jnp.stack(counts)


@functools.partial(jax.jit, static_argnames="scales")
def _box_dimension(occupied: Array, scales: tuple[int, ...]) -> Array:
    counts = box_counts(occupied, scales).astype(jnp.result_type(float))
    log_inv_s = -jnp.log(jnp.asarray(scales, counts.dtype))
    dim = slope(log_inv_s, jnp.log(counts))
    return jnp.where(counts[-1] > 0, dim, jnp.nan)


def box_counting_dimension(occupied: Array, scales: Sequence[int] | None = None) -> Array:
    """Box-counting dimension of a binary image: slope of ``log N(s)`` vs ``log(1 / s)``.

    Args:
      occupied: boolean image ``(rows, cols)``.
      scales: box sizes in pixels (default :func:`dyadic_scales`).

    Returns:
      A scalar; NaN for an empty image (no occupied pixel at any scale). A filled square
      gives 2, a line 1, Pascal's triangle mod 2 (Sierpinski) ``log 3 / log 2``.
    """
    scales = dyadic_scales(jnp.shape(occupied)) if scales is None else tuple(scales)
    return _box_dimension(occupied, tuple(int(s) for s in scales))


def fractal_dimension(
    weights: Array, *, threshold: float | None = None, scales: Sequence[int] | None = None
) -> Array:
    """Box-counting dimension of one weight matrix or conv kernel (see module docstring)."""
    check_finite("weights", weights)
    image = weight_image(weights)
    return box_counting_dimension(binarise(image, threshold), scales)


def roughness(weights: Array) -> Array:
    """Arithmetic mean deviation ``Ra = mean |w - mean(w)|`` of the weights; scalar."""
    w = jnp.asarray(weights)
    return jnp.mean(jnp.abs(w - jnp.mean(w)))


def segment_dimensions(
    weights: Array,
    segment_shape: tuple[int, int],
    *,
    threshold: float | None = None,
) -> Array:
    """Fractal dimension of each segment of one weight matrix (Moharil et al.'s variant).

    The image of the whole matrix (one normalisation, one threshold, so segments are
    comparable) is cut into non-overlapping ``segment_shape`` tiles from the top-left;
    rows and columns left over are dropped. Each tile gets :func:`box_counting_dimension`
    with the dyadic scales of its shape.

    Returns:
      ``(rows // seg_rows, cols // seg_cols)`` dimensions; NaN for an empty tile.
    """
    check_finite("weights", weights)
    image = weight_image(weights)
    occupied = binarise(image, threshold)
    seg_r, seg_c = segment_shape
    n_r, n_c = occupied.shape[0] // seg_r, occupied.shape[1] // seg_c
    if is_concrete(occupied) and (n_r == 0 or n_c == 0):
        raise CapjaxInputError(
            f"segment_shape {segment_shape} is larger than the weight image "
            f"{occupied.shape}; pass a smaller segment"
        )
    tiles = occupied[: n_r * seg_r, : n_c * seg_c].reshape(n_r, seg_r, n_c, seg_c)
    tiles = tiles.transpose(0, 2, 1, 3).reshape(n_r * n_c, seg_r, seg_c)
    scales = dyadic_scales(segment_shape)
    dims = jax.vmap(lambda t: box_counting_dimension(t, scales))(tiles)
    return dims.reshape(n_r, n_c)


def fractal_features(params: Any, *, threshold: float | None = None) -> Array:
    """One feature vector per network: per layer, (fractal dimension, roughness).

    Args:
      params: a stack ``[{"kernel", "bias"}, ...]`` or a Flax params dict; each layer's
        kernel is read as an image (biases are not).

    Returns:
      ``(2 * n_layers,)``: ``[dim_1, Ra_1, dim_2, Ra_2, ...]`` in forward order. A kernel
      image with a side under 4 pixels (e.g. a 10-way output head of width < 4) gets NaN
      dimension, since box counting needs three scales.
    """
    features = []
    for layer in as_layer_stack(params):
        kernel = layer["kernel"]
        image_shape = (math.prod(kernel.shape[:-1]), kernel.shape[-1])
        dim = (
            fractal_dimension(kernel, threshold=threshold)
            if min(image_shape) >= 4
            else jnp.full((), jnp.nan, jnp.asarray(kernel).dtype)
        )
        features.append(jnp.stack([dim, roughness(kernel)]))
    return jnp.concatenate(features)
