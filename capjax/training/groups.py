"""Vmapped groups of a sweep: which candidates train together, and their compiled steps.

Candidates with the same :attr:`~capjax.training.spec.Candidate.group_key` train together:
their parameters are stacked along a leading candidate axis, vectorised with ``jax.vmap``
on a device and split across devices with ``jax.shard_map``
(:func:`capjax.base.sharding.shard_candidates`). Each group's steps compile once per key,
interactions and mesh.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from capjax.base.sharding import CANDIDATE_AXIS, candidate_mesh, shard_candidates
from capjax.capacitance.reduction import beta_eff
from capjax.data.dataset import Dataset
from capjax.signals.zerocost import cross_entropy
from capjax.training.model import (
    apply_head,
    backbone_features,
    finetune_optimizer,
    init_backbone,
    init_model,
    model_logits,
    train_epoch,
    train_logits,
)
from capjax.training.spec import OWN, Candidate, GroupKey

PROBE_DATA_SEED = 0
"""Seed of the permutation whose first ``probe_batch`` training examples are the probe batch."""

EVAL_CHUNK = 1024
"""Examples per evaluation chunk; bounds memory on large splits."""


@dataclasses.dataclass(frozen=True)
class Group:
    gid: str
    members: tuple[Candidate, ...]
    lanes: tuple[Candidate, ...]  # members, padded by repeating the last to fill the mesh
    mesh: Mesh


def plan_groups(candidates: Sequence[Candidate], devices: Sequence[jax.Device],
                *, spread: bool | None = None) -> list[Group]:
    """Groups of equal ``group_key``, each over as many devices as it has candidates (at
    most all), with the candidate axis padded to a multiple of its device count.

    With ``spread`` (the default in a multi-process run, docs/method.md §9) every group
    spans every device, and the groups lie one after another around the ring of
    ``devices``, taken in turn from each process
    (:func:`~capjax.base.sharding.candidate_mesh`): each group's mesh begins at the device
    after the last one holding the previous group's members. Each process must take part
    in each group's program, so a group smaller than the mesh pads it with copies of its
    last member, and the ring puts small groups' members on the processes in turn rather
    than all on process 0. Without it (one process) each group takes the first devices it
    needs: its groups tick one after another, so spreading them would buy nothing, and
    equal groups of later sweeps reuse the compiled steps.
    """
    spread = jax.process_count() > 1 if spread is None else spread
    groups: dict[GroupKey, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.group_key, []).append(c)
    ring = list(candidate_mesh(devices).devices)
    start, out = 0, []
    for members in groups.values():
        n = len(members)
        per_device = math.ceil(n / len(ring))
        used = math.ceil(n / per_device)  # devices that hold members; the rest hold padding
        n_dev = len(ring) if spread else used
        lanes = members + [members[-1]] * (n_dev * per_device - n)
        c = members[0]
        digest = hashlib.blake2b(
            "\n".join(sorted(m.name for m in members)).encode(), digest_size=4
        ).hexdigest()
        gid = f"{c.family}-d{c.depth}-w{c.width}-b{c.batch_size}-{digest}"
        mesh = Mesh(np.asarray((ring[start:] + ring[:start])[:n_dev]), (CANDIDATE_AXIS,))
        out.append(Group(gid, tuple(members), tuple(lanes), mesh))
        start = (start + used) % len(ring) if spread else 0
    return out


class Steps(NamedTuple):
    """A group's sharded steps: one epoch of training, evaluation, and beta_eff (None when
    no interaction is recorded)."""

    train: Callable[..., Any]
    measure: Callable[..., Any]
    beta: Callable[..., Any] | None


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


@functools.cache
def group_steps(key: GroupKey, interactions: tuple[str, ...], mesh: Mesh) -> Steps:
    """The group's per-candidate steps, sharded over ``mesh``; cached so each compiles once."""
    family = key.net
    tx = finetune_optimizer(0.0, 0.0, key.optimizer)  # AdamW's update() reads lr and weight decay from the state

    def loss(p, xb, yb, k):
        logits, moved = train_logits(family, p, xb, k)
        return cross_entropy(logits, yb), moved

    def train(params, opt_state, idx, rng, active, x, y):
        new_params, new_state, losses = train_epoch(loss, tx, params, opt_state, x, y, idx, rng)
        # lanes of one group may stand at different epochs: those not asked to train keep
        # their state (they still compute, as vmapped lanes do; their passes are not counted)
        keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(active, new, old))
        return keep(new_params, params), keep(new_state, opt_state), losses.mean()

    def measure(params, *splits):
        """Mean loss and accuracy ``(n_splits,)`` on chunked splits, and params finiteness."""

        def one(split):
            xs, ys, mask = split

            def chunk(total, c):
                xc, yc, mc = c
                logits = model_logits(family, params, xc)
                ce = optax.softmax_cross_entropy_with_integer_labels(logits, yc)
                hit = (jnp.argmax(logits, -1) == yc).astype(jnp.float32)
                return total + jnp.stack([jnp.sum(ce * mc), jnp.sum(hit * mc)]), None

            total, _ = jax.lax.scan(chunk, jnp.zeros(2), (xs, ys, mask))
            return total / jnp.sum(mask)

        out = jnp.stack([one(s) for s in splits])
        return out[:, 0], out[:, 1], _all_finite(params)

    def beta(params, x, y):
        feats = backbone_features(family, params["backbone"], x)

        def loss_fn(h):
            return cross_entropy(apply_head(params["head"], h), y)

        return jnp.stack([beta_eff(params["probe"], feats, loss_fn, interaction=i)
                          for i in interactions])

    return Steps(shard_candidates(train, mesh, 5), shard_candidates(measure, mesh, 1),
                 shard_candidates(beta, mesh, 1) if interactions else None)


class PlacedData(NamedTuple):
    """A dataset on a mesh, as a group's steps read it."""

    x_train: jax.Array
    y_train: jax.Array
    val: tuple  # chunked (xs, ys, mask) splits for evaluation
    test: tuple
    probe_x: jax.Array
    probe_y: jax.Array


def _chunked(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(y)
    size = min(EVAL_CHUNK, n)
    n_chunks = math.ceil(n / size)
    pad = n_chunks * size - n
    xs = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    ys = np.concatenate([y, np.zeros(pad, y.dtype)])
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return (xs.reshape(n_chunks, size, *x.shape[1:]), ys.reshape(n_chunks, size),
            mask.reshape(n_chunks, size))


def probe_rows(n_train: int, probe_batch: int) -> np.ndarray:
    """Rows of the fixed probe batch: the first ``probe_batch`` of one seeded permutation."""
    return np.random.default_rng(PROBE_DATA_SEED).permutation(n_train)[:probe_batch]


def place_data(dataset: Dataset, probe_batch: int, groups: Sequence[Group]) -> dict[str, PlacedData]:
    """``{group id: data}``: the dataset (training split, chunked evaluation splits, probe
    batch) replicated once on every device the ``groups`` use, and addressed to each
    group's mesh (some of those devices, in its own order) without a copy."""
    rows = probe_rows(len(dataset.y_train), probe_batch)
    host = PlacedData(
        dataset.x_train, dataset.y_train,
        _chunked(dataset.x_val, dataset.y_val),
        _chunked(dataset.x_test, dataset.y_test),
        dataset.x_train[rows], dataset.y_train[rows],
    )
    used = list(dict.fromkeys(d for g in groups for d in g.mesh.devices.flat))
    placed = jax.device_put(host, NamedSharding(Mesh(np.asarray(used), (CANDIDATE_AXIS,)), PartitionSpec()))

    def on(mesh: Mesh, x: jax.Array) -> jax.Array:
        sharding = NamedSharding(mesh, PartitionSpec())
        buffers = {shard.device: shard.data for shard in x.addressable_shards}
        return jax.make_array_from_single_device_arrays(
            x.shape, sharding, [buffers[d] for d in sharding.addressable_devices_indices_map(x.shape)])

    return {g.gid: jax.tree.map(functools.partial(on, g.mesh), placed) for g in groups}


@functools.cache
def _init_fn(key: GroupKey, input_shape: tuple, num_classes: int) -> Callable[..., tuple]:
    """Jitted, vmapped ``(backbone, seed, lr, wd) -> (params, opt_state)`` of a group."""

    def one(backbone, seed, lr, wd):
        params = init_model(key.net, key.probe_widths, backbone, input_shape, num_classes, seed=seed)
        return params, finetune_optimizer(lr, wd, key.optimizer).init(params)

    return jax.jit(jax.vmap(one))


def _lane_hyperparameters(group: Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lanes = group.lanes
    return (np.array([c.seed for c in lanes], np.int32),
            np.array([c.lr for c in lanes], np.float32),
            np.array([c.weight_decay for c in lanes], np.float32))


def initial_state(group: Group, backbones: Mapping[str, Any], dataset: Dataset) -> tuple:
    """The group's stacked ``(params, opt_state)`` from NumPy ``backbones``, as NumPy (on the
    host, so that any process can place it on a global mesh)."""
    init = _init_fn(group.members[0].group_key, dataset.input_shape, dataset.num_classes)
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *[backbones[c.name] for c in group.lanes])
    return jax.device_get(init(stacked, *_lane_hyperparameters(group)))


def template(group: Group, dataset: Dataset) -> tuple:
    """Shapes of a group's state, without pretraining (for restoring a checkpoint)."""
    init = _init_fn(group.members[0].group_key, dataset.input_shape, dataset.num_classes)
    first = group.members[0]
    one = jax.eval_shape(
        (lambda: first.backbone.tree()) if first.family == OWN
        else (lambda: init_backbone(jax.random.key(0), first.arch, dataset.input_shape))
    )
    stacked = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct((len(group.lanes), *s.shape), s.dtype), one
    )
    return jax.eval_shape(init, stacked, *_lane_hyperparameters(group))


def local_lanes(tree: Any, n: int) -> np.ndarray:
    """``(n,)``: whether each of the first ``n`` lanes of a candidate-sharded ``tree`` sits on
    this process's devices (all of them, in one process)."""
    leaf = jax.tree.leaves(tree)[0]
    lanes = np.zeros(leaf.shape[0], bool)
    for shard in leaf.addressable_shards:
        lanes[shard.index[0]] = True
    return lanes[:n]


def on_candidates(tree: Any, mesh: Mesh) -> Any:
    """Host ``tree`` (the same on every process) split along its candidate axis over ``mesh``.

    Built from each device's slice rather than with ``jax.device_put``, which on a
    multi-process mesh first checks across processes that the values agree: a collective
    per leaf, several per group and epoch.
    """
    sharding = NamedSharding(mesh, PartitionSpec(CANDIDATE_AXIS))

    def put(x: Any) -> jax.Array:
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def pad_lanes(leaf: np.ndarray, n_lanes: int) -> np.ndarray:
    return np.concatenate([leaf, np.repeat(leaf[-1:], n_lanes - len(leaf), axis=0)])
