"""The graph view of a dense layer stack (SPEC 2.1, 2.2).

A *dense stack* is a sequence of Flax-style Dense parameter dicts
``{"kernel": (d_in, d_out), "bias": (d_out,)}`` applied in order. Read as a network, its
neurons are nodes and its kernel entries are weighted directed edges; the edge dynamics of
training live on the *line graph*, one node per kernel entry, two entries linked when they
share a neuron: ``W^l[h, i]`` and ``W^{l+1}[i, j]``.

Adapters turn the parameter containers people actually have (plain lists of dicts, Flax
Linen ``params`` dicts, Flax NNX modules or states) into that one form, so every other
module takes ``Sequence[DenseLayer]`` and nothing else.

Weight indexing used throughout: the kernels are flattened layer by layer in row-major
order, so entry ``W^l[h, i]`` has index ``offset_l + h * d_out_l + i``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from capjax.validation import CapjaxInputError, check_finite

DenseLayer = Mapping[str, jax.Array]
"""``{"kernel": (d_in, d_out), "bias": (d_out,)}``."""


def _natural_key(name: Any) -> tuple:
    """Sort ``Dense_10`` after ``Dense_9`` and integer keys numerically."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name)))


def _collect_dense(tree: Any, out: list[dict]) -> None:
    if isinstance(tree, Mapping):
        if "kernel" in tree:
            out.append({"kernel": tree["kernel"], "bias": tree.get("bias")})
            return
        for key in sorted(tree, key=_natural_key):
            _collect_dense(tree[key], out)
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            _collect_dense(item, out)


def as_dense_stack(params: Any) -> list[dict]:
    """Read a dense stack from the parameter container the user has.

    Accepts a sequence of ``{"kernel", "bias"}`` dicts, a Flax Linen variable dict
    (``{"params": {"Dense_0": ..., "Dense_1": ...}}``), a Flax NNX module or ``nnx.State``.
    Layers are taken in natural order of their names (``Dense_2`` before ``Dense_10``),
    which is creation order for Linen's auto-names and list order for NNX.

    Returns:
      list of ``{"kernel": (d_in, d_out), "bias": (d_out,)}`` dicts; a missing bias is
      filled with zeros (biases are not edges and only enter the forward pass).
    """
    tree = params
    try:
        from flax import nnx

        if isinstance(tree, nnx.Module):
            tree = nnx.state(tree, nnx.Param)
        if isinstance(tree, nnx.State):
            tree = tree.to_pure_dict()
    except ImportError:  # pragma: no cover - flax is a dependency
        pass
    if isinstance(tree, Mapping) and "params" in tree and "kernel" not in tree:
        tree = tree["params"]
    layers: list[dict] = []
    _collect_dense(tree, layers)
    for layer in layers:
        if layer["bias"] is None:
            layer["bias"] = jnp.zeros(
                jnp.shape(layer["kernel"])[-1:], jnp.asarray(layer["kernel"]).dtype
            )
    return layers


def check_stack(layers: Sequence[DenseLayer], *, values: bool = True) -> None:
    """Raise :class:`CapjaxInputError` unless ``layers`` is a well-formed dense stack.

    Shapes are static, so the shape checks also run under ``jit``/``vmap`` tracing; the
    NaN/inf check runs only on concrete arrays (``values=True`` and not traced).
    """
    if isinstance(layers, Mapping) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise CapjaxInputError(
            "expected a non-empty sequence of Dense param dicts {'kernel', 'bias'}; "
            "convert Flax params with capjax.as_dense_stack(params)"
        )
    for l, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or "kernel" not in layer:
            raise CapjaxInputError(
                f"layer {l} is not a Dense param dict (got {type(layer).__name__}); "
                "each layer needs {'kernel': (d_in, d_out), 'bias': (d_out,)} — conv or other "
                "layers are not part of a dense stack: pass only the probe's Dense layers"
            )
        k_shape = jnp.shape(layer["kernel"])
        if len(k_shape) != 2:
            raise CapjaxInputError(
                f"layer {l} kernel has shape {k_shape}; a dense stack needs 2-D kernels "
                "(d_in, d_out) — flatten conv features before the probe"
            )
        b = layer.get("bias")
        if b is not None and jnp.shape(b) != k_shape[1:]:
            raise CapjaxInputError(
                f"layer {l} bias has shape {jnp.shape(b)} but its kernel has {k_shape[1]} "
                f"outputs; the bias must be ({k_shape[1]},)"
            )
        if l > 0:
            prev = jnp.shape(layers[l - 1]["kernel"])[1]
            if k_shape[0] != prev:
                raise CapjaxInputError(
                    f"layer {l} expects {k_shape[0]} inputs but layer {l - 1} has {prev} "
                    "outputs; the layers must be given in forward order and chain"
                )
    if values:
        check_finite(
            "weights", [dict(layer) for layer in layers], "the network's weights have diverged"
        )


def layer_sizes(layers: Sequence[DenseLayer]) -> list[int]:
    """Neurons per layer, input first: ``[d_0, d_1, ..., d_L]``."""
    return [int(jnp.shape(layers[0]["kernel"])[0])] + [
        int(jnp.shape(l["kernel"])[1]) for l in layers
    ]


def n_weights(layers: Sequence[DenseLayer]) -> int:
    """Number of kernel entries, i.e. nodes of the line graph."""
    return sum(int(np.prod(jnp.shape(l["kernel"]))) for l in layers)


def flatten_kernels(layers: Sequence[DenseLayer]) -> jax.Array:
    """All kernel entries in line-graph index order, shape ``(n_weights,)``."""
    return jnp.concatenate([jnp.ravel(l["kernel"]) for l in layers])


def unflatten_kernels(flat: jax.Array, layers: Sequence[DenseLayer]) -> list[jax.Array]:
    """Inverse of :func:`flatten_kernels`: split ``(n_weights,)`` into per-layer kernels."""
    shapes = [jnp.shape(l["kernel"]) for l in layers]
    bounds = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    return [p.reshape(s) for p, s in zip(jnp.split(flat, bounds), shapes, strict=True)]


def neuron_adjacency(layers: Sequence[DenseLayer]) -> np.ndarray:
    """Weighted adjacency of the layered digraph, ``A[u, v] = W^l[h, i]`` for ``u -> v``.

    Dense ``(n_neurons, n_neurons)`` numpy array, neurons numbered layer by layer: for
    small stacks and tests only.
    """
    sizes = layer_sizes(layers)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    adj = np.zeros((offsets[-1], offsets[-1]))
    for l, layer in enumerate(layers):
        adj[offsets[l] : offsets[l + 1], offsets[l + 1] : offsets[l + 2]] = np.asarray(
            layer["kernel"]
        )
    return adj


def line_graph_edges(layers: Sequence[DenseLayer]) -> np.ndarray:
    """Undirected links of the line graph as index pairs, shape ``(n_links, 2)``.

    Weight ``W^l[h, i]`` is linked to ``W^{l+1}[i, j]`` for every h, i, j (SPEC 2.2); each
    link appears once with the earlier layer's weight first.
    """
    shapes = [jnp.shape(l["kernel"]) for l in layers]
    offsets = np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in shapes])])
    pairs = []
    for l in range(len(layers) - 1):
        (h, i), (_, j) = shapes[l], shapes[l + 1]
        hh, ii, jj = np.meshgrid(np.arange(h), np.arange(i), np.arange(j), indexing="ij")
        a = offsets[l] + hh * i + ii
        b = offsets[l + 1] + ii * j + jj
        pairs.append(np.stack([a.ravel(), b.ravel()], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=int)


def line_graph_adjacency(layers: Sequence[DenseLayer]) -> np.ndarray:
    """Symmetric 0/1 adjacency of the line graph, ``(n_weights, n_weights)``; tiny stacks only."""
    n = n_weights(layers)
    adj = np.zeros((n, n))
    e = line_graph_edges(layers)
    adj[e[:, 0], e[:, 1]] = 1.0
    adj[e[:, 1], e[:, 0]] = 1.0
    return adj
