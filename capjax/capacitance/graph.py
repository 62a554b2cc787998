"""The graph view of a dense layer stack (docs/method.md §2.1, 2.2).

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
from flax import nnx

from capjax.base.validation import CapjaxInputError, check_finite

DenseLayer = Mapping[str, jax.Array]
"""``{"kernel": (d_in, d_out), "bias": (d_out,)}``."""


def _natural_key(key: str) -> tuple:
    parts = re.split(r"(\d+)", key)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def _ordered_items(tree: Mapping) -> list:
    keys = list(tree)
    # jax.tree.map and optax rebuild dicts with lexicographically sorted keys, which puts
    # Linen's "Dense_10" before "Dense_2"; a str-keyed dict already in that order is read
    # in natural order instead. Any other dict keeps its order of appearance.
    if all(isinstance(k, str) for k in keys) and keys == sorted(keys):
        keys = sorted(keys, key=_natural_key)
    return [(k, tree[k]) for k in keys]


def _collect(tree: Any, out: list[dict]) -> None:
    if isinstance(tree, Mapping):
        if "kernel" in tree:
            out.append({"kernel": tree["kernel"], "bias": tree.get("bias")})
            return
        for _, child in _ordered_items(tree):
            _collect(child, out)
    elif isinstance(tree, Sequence) and not isinstance(tree, str):
        for child in tree:
            _collect(child, out)


def as_layer_stack(params: Any) -> list[dict]:
    """Ordered ``[{"kernel", "bias"}, ...]`` of every kernel-bearing layer in ``params``.

    Accepts a sequence of layer dicts, a Flax Linen variable dict (``{"params": ...}``;
    other collections such as ``batch_stats`` are ignored), a Flax NNX module or
    ``nnx.State``, or a nested dict of those. Layers appear in the order the dicts list
    them (natural order for Linen's ``Dense_0 .. Dense_11`` even after a ``jax.tree.map``
    re-sorted the keys). Kernels are dense ``(d_in, d_out)`` or conv
    ``(kh, kw, c_in, c_out)``; a missing bias becomes zeros ``(d_out,)`` (biases are not
    edges and only enter the forward pass). Layers without a kernel (norms) are skipped.

    Raises:
      CapjaxInputError: when no layer with a ``"kernel"`` is found.
    """
    tree = params
    if isinstance(tree, nnx.Module):
        tree = nnx.state(tree, nnx.Param)
    if isinstance(tree, nnx.State):
        tree = nnx.to_pure_dict(tree)
    if isinstance(tree, Mapping) and "params" in tree and "kernel" not in tree:
        tree = tree["params"]
    stack: list[dict] = []
    _collect(tree, stack)
    if not stack:
        raise CapjaxInputError(
            "found no layer with a 'kernel' in the parameters; pass a Flax params dict, an NNX "
            "module or a list of {'kernel': ..., 'bias': ...} dicts in forward order"
        )
    for layer in stack:
        if layer["bias"] is None:
            kernel = jnp.asarray(layer["kernel"])
            layer["bias"] = jnp.zeros(kernel.shape[-1:], kernel.dtype)
    return stack


as_dense_stack = as_layer_stack
"""A dense stack is a layer stack whose kernels are all 2-D; :func:`check_stack` checks that."""


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

    Weight ``W^l[h, i]`` is linked to ``W^{l+1}[i, j]`` for every h, i, j (docs/method.md §2.2); each
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
