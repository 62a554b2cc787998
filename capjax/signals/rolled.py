"""The "rolled" graph of a network and its per-epoch node features (docs/method.md §3).

Vahedian, Li, Trivedi, Jin, Koutra (arXiv 2111.05410; CIKM 2022) roll a network into an
undirected weighted graph with one node per neuron (dense) or channel (conv), linking the
nodes of consecutive layers with weight

    |W_ij|                  dense kernel W (d_in, d_out)
    ||K[:, :, i, j]||_2     conv kernel K (kh, kw, c_in, c_out)  (Frobenius over space)

take one snapshot per epoch, compute each node's weighted degree and eigenvector
centrality, and summarise the first T epochs into one feature vector per network for a
classifier/regressor of final accuracy.

A dense layer reading a flattened (NHWC) conv feature map with ``C`` channels links
channel ``i`` to neuron ``j`` with ``||W[(p, i), j]||_2`` over the pixels ``p``: the
dense layer is a conv whose kernel covers the whole map, so the conv rule applies
unchanged (and with ``C == d_in``, after global pooling, it is ``|W_ij|``).

The graph is layered, hence bipartite between even and odd layers; every quantity here is
computed block by block from the ``(n_{l-1}, n_l)`` edge-weight blocks, and
:func:`rolled_adjacency` builds the dense matrix only for small nets and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from capjax.base.validation import CapjaxInputError, check_finite
from capjax.capacitance.graph import as_layer_stack

Array = jax.Array


def rolled_blocks(params: Any) -> list[Array]:
    """Edge-weight blocks ``B_l`` of shape ``(n_{l-1}, n_l)``, one per layer, non-negative.

    Args:
      params: a stack ``[{"kernel", "bias"}, ...]`` in forward order or a Flax params
        dict. Biases are not edges of the rolled graph and are ignored.
    """
    blocks: list[Array] = []
    for i, layer in enumerate(as_layer_stack(params)):
        kernel = layer["kernel"]
        if kernel.ndim == 4:
            blocks.append(jnp.sqrt(jnp.sum(kernel**2, axis=(0, 1))))
            continue
        d_in, d_out = kernel.shape
        n_prev = blocks[-1].shape[1] if blocks else d_in
        if d_in % n_prev:
            raise CapjaxInputError(
                f"layer {i} takes {d_in} inputs, which is no multiple of the {n_prev} "
                "nodes of the layer before; pass the layers in forward order"
            )
        per_node = kernel.reshape(d_in // n_prev, n_prev, d_out)
        blocks.append(jnp.sqrt(jnp.sum(per_node**2, axis=0)))
    return blocks


def _node_counts(blocks: Sequence[Array]) -> list[int]:
    return [blocks[0].shape[0]] + [b.shape[1] for b in blocks]


@jax.jit
def rolled_adjacency(params: Any) -> Array:
    """Dense symmetric weighted adjacency ``(n_nodes, n_nodes)`` of the rolled graph.

    Nodes are numbered layer by layer (input first). Memory is ``n_nodes^2``: for small
    nets and reference checks; the features below never build it.
    """
    blocks = rolled_blocks(params)
    offsets = [0]
    for n in _node_counts(blocks):
        offsets.append(offsets[-1] + n)
    adj = jnp.zeros((offsets[-1], offsets[-1]), blocks[0].dtype)
    for l, block in enumerate(blocks):
        rows = slice(offsets[l], offsets[l + 1])
        cols = slice(offsets[l + 1], offsets[l + 2])
        adj = adj.at[rows, cols].set(block).at[cols, rows].set(block.T)
    return adj


def _matvec(blocks: Sequence[Array], x: Sequence[Array]) -> list[Array]:
    """``A x`` with ``A`` the rolled adjacency, ``x`` split into node layers."""
    out = [jnp.zeros_like(v) for v in x]
    for l, block in enumerate(blocks):
        out[l] = out[l] + block @ x[l + 1]
        out[l + 1] = out[l + 1] + block.T @ x[l]
    return out


@jax.jit
def weighted_degree(blocks: Sequence[Array]) -> list[Array]:
    """Weighted degree ``k_i = sum_j A_ij`` of every node, one ``(n_l,)`` array per layer."""
    return _matvec(blocks, [jnp.ones(n, blocks[0].dtype) for n in _node_counts(blocks)])


@jax.jit
def eigenvector_centrality(
    blocks: Sequence[Array], *, tol: float = 1e-7, max_iter: int = 2000
) -> list[Array]:
    """Eigenvector centrality of every node, one ``(n_l,)`` array per layer.

    The Perron eigenvector ``A x = lambda_max x`` of the symmetric non-negative adjacency,
    ``x >= 0`` with unit l2 norm over all nodes (networkx's normalisation). A layered
    graph is bipartite, so ``-lambda_max`` is an eigenvalue too and plain power iteration
    oscillates; the iteration therefore runs on the shifted ``I + A / k_max``, with
    ``k_max`` the largest weighted degree (``>= lambda_max``), whose dominant eigenvalue is
    ``1 + lambda_max / k_max`` alone. It stops when no entry moves by more than ``tol``
    or after ``max_iter`` steps. Matrix-free and jit-able.

    Args:
      blocks: the edge-weight blocks of :func:`rolled_blocks`.
      tol: convergence threshold on the max-abs change of the unit-norm iterate.
      max_iter: iteration cap.
    """
    counts = _node_counts(blocks)
    k_max = jnp.max(jnp.concatenate(weighted_degree(blocks)))
    scaled = [b / jnp.where(k_max > 0, k_max, 1.0) for b in blocks]

    def normalise(x: list[Array]) -> list[Array]:
        norm = jnp.sqrt(sum(jnp.sum(v**2) for v in x))
        return [v / norm for v in x]

    def step(state):
        x, _, it = state
        ax = _matvec(scaled, x)
        new = normalise([v + a for v, a in zip(x, ax, strict=True)])
        change = jnp.max(jnp.concatenate([jnp.abs(n - v) for n, v in zip(new, x, strict=True)]))
        return new, change, it + 1

    def running(state):
        _, change, it = state
        return (change > tol) & (it < max_iter)

    x0 = normalise([jnp.ones(n, blocks[0].dtype) for n in counts])
    x, _, _ = jax.lax.while_loop(running, step, (x0, jnp.array(jnp.inf, x0[0].dtype), 0))
    return x


@jax.jit
def snapshot_features(params: Any) -> Array:
    """Node features of one snapshot, summarised per node layer.

    Returns:
      ``(4 * n_node_layers,)``: for each node layer (input first), the mean and std of the
      weighted degree, then the mean and std of the eigenvector centrality. Summaries per
      layer rather than per node keep one length for every width, so candidates of one
      depth but different widths share a regressor.
    """
    blocks = rolled_blocks(params)
    degree = weighted_degree(blocks)
    centrality = eigenvector_centrality(blocks)
    per_layer = [
        jnp.stack([jnp.mean(k), jnp.std(k), jnp.mean(c), jnp.std(c)])
        for k, c in zip(degree, centrality, strict=True)
    ]
    return jnp.concatenate(per_layer)


def temporal_features(snapshots: Sequence[Any], T: int) -> Array:
    """One feature vector per network from its first ``T`` snapshots (docs/method.md §3).

    Args:
      snapshots: the network's parameters after epochs 1, 2, ... (stacks or Flax params
        dicts of one structure), oldest first.
      T: how many leading snapshots to use (Vahedian et al.: 5 epochs).

    Returns:
      ``(T * 4 * n_node_layers,)``: :func:`snapshot_features` of epochs 1..T
      concatenated, epoch 1 first. Computed under one ``vmap`` over the epochs.

    Raises:
      CapjaxInputError: ``T`` out of range, snapshots of different structures, non-finite
        weights.
    """
    if not 1 <= T <= len(snapshots):
        raise CapjaxInputError(
            f"T={T} but {len(snapshots)} snapshots were given; pass 1 <= T <= the number "
            "of recorded epochs"
        )
    stacks = [as_layer_stack(s) for s in snapshots[:T]]
    check_finite("snapshots", stacks, "drop the epochs after the run diverged")
    try:
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *stacks)
    except (ValueError, TypeError) as err:
        raise CapjaxInputError(
            "the snapshots differ in structure or shapes; pass the same network's "
            f"parameters at every epoch ({err})"
        ) from err
    return jax.vmap(snapshot_features)(stacked).reshape(-1)
