"""Resumable sweeps: fine-tune a zoo, recording everything the predictors need per epoch.

:func:`run_sweep` fine-tunes every candidate (SPEC 2.3: backbone -> frozen probe -> new
head) and appends one JSON line per candidate and epoch to ``out_dir/records.jsonl``.
Candidates with the same :attr:`~capjax.zoo.Candidate.group_key` train together: their
parameters are stacked along a leading candidate axis, vectorised with ``jax.vmap`` on a
device and split across devices with ``jax.shard_map`` (one jitted ``lax.scan`` over an
epoch's batches per group and epoch). The sweep runs epoch by epoch, every group in
turn, so all candidates advance together and one checkpoint covers them all.

Record fields (one line per live candidate per epoch; epoch 0 is the model before
fine-tuning):

* ``train_loss``: mean of the epoch's mini-batch losses (null at epoch 0, before any
  training step); ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc`` on the whole
  splits after the epoch. Losses are mean cross-entropy in nats, accuracies fractions.
* ``beta_<interaction>``: ``beta_eff`` of the probe (SPEC 2.2-2.3) for each interaction
  asked, with ``lr = 1`` (``beta_eff`` is linear in the learning rate; multiply by the
  candidate's ``lr`` for the eta-scaled value). It is measured on one FIXED probe batch:
  the first ``probe_batch`` training examples of a permutation drawn from
  :data:`PROBE_DATA_SEED`, the same for every candidate and epoch, so ``beta_eff(t)``
  changes only through the model (features from the current backbone, errors through
  the current head), never through the draw of a batch.
* ``passes_train``, ``passes_eval``, ``passes_beta``: cumulative example passes, one pass
  being one example through the whole model in one direction. Training costs 2 per
  example (forward + backward; the last ``n_train % batch_size`` examples of each
  epoch's permutation are dropped); evaluation 1 per validation and test example every
  epoch; ``beta_eff`` costs :data:`BETA_COST` per probe example and interaction
  (coupling: a forward and a backward; hessian: a third pass for the Hessian-vector
  product).
* ``wall_s``, ``wall_beta_s``: seconds of the group's training-and-evaluation and of its
  ``beta_eff`` measurement in this epoch, divided evenly among the group's candidates
  (they run as one vectorised computation); compilation is excluded.
* one field per ``record_fns`` entry.

A candidate whose loss or parameters stop being finite is marked failed: one record
``{"name", "epoch", "failed": true, "reason"}``, and no records after it; the others in
its group are unaffected (vmapped lanes never mix).

Crash safety: a kill at any moment (``kill -9``) loses nothing but the epoch in flight.
Per epoch the order is: compute every group (writing snapshots), append all the
epoch's records (one ``write`` plus ``fsync``), then save one orbax checkpoint (every
group's stacked params, optimizer state and live mask; atomic). On start, the records
of epochs after the last checkpoint, and a torn last line, are dropped (atomic rewrite)
and those epochs are recomputed from the checkpoint, deterministically: the batch order
of epoch ``e`` is a function of the candidate's seed and ``e``, and the group programs
are the same. A rerun with a larger ``epochs`` continues from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from capjax.capacitance import beta_eff
from capjax.data import Dataset, load_dataset
from capjax.dynamics import INTERACTIONS
from capjax.sharding import CANDIDATE_AXIS, candidate_mesh, shard_candidates
from capjax.validation import CapjaxInputError
from capjax.zoo import (
    FINETUNE_STREAM,
    Candidate,
    apply_head,
    backbone_features,
    check_candidates,
    cross_entropy,
    data_fingerprint,
    epoch_batches,
    finetune_optimizer,
    init_backbone,
    init_model,
    model_logits,
    n_lineages,
    pretrain_backbones,
    train_epoch,
)

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "sweep.json"
CHECKPOINT_DIR = "ckpt"
SNAPSHOT_DIR = "snapshots"

PROBE_DATA_SEED = 0
"""Seed of the permutation whose first ``probe_batch`` training examples are the probe batch."""

BETA_COST: dict[str, int] = {"coupling": 2, "hessian": 3}
"""Example passes per probe example of one ``beta_eff`` measurement, by interaction."""

WALL_FIELDS = ("wall_s", "wall_beta_s")
"""Record fields that differ between otherwise identical runs."""

EVAL_CHUNK = 1024
"""Examples per evaluation chunk; bounds memory on large splits."""

_BUILTIN_FIELDS = frozenset({
    "name", "epoch", "failed", "reason", "train_loss", "val_loss", "val_acc", "test_loss",
    "test_acc", "passes_train", "passes_eval", "passes_beta", *WALL_FIELDS,
})


@dataclasses.dataclass(frozen=True)
class SweepContext:
    """What a ``record_fns`` callable may use besides the candidate's parameters.

    Attributes:
      candidate: the candidate (use it with :func:`capjax.zoo.model_logits` or
        :func:`capjax.zoo.backbone_features`).
      epoch: the epoch just finished (0: before fine-tuning).
      dataset: the target dataset.
      probe_x, probe_y: the fixed probe batch, ``(probe_batch, *input_shape)`` and
        ``(probe_batch,)``.
    """

    candidate: Candidate
    epoch: int
    dataset: Dataset
    probe_x: np.ndarray
    probe_y: np.ndarray


RecordFn = Callable[[dict, SweepContext], float]
"""``fn(params, ctx) -> float`` with one candidate's ``{"backbone", "probe", "head"}``."""


# ---------------------------------------------------------------------------------------
# Records


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One candidate's records as arrays over its recorded epochs.

    Attributes:
      name: candidate name.
      epochs: ``(T,)`` int epochs recorded, ascending (0 is the initial model).
      values: field name -> ``(T,)`` float array (NaN where not finite or not recorded).
      failed: whether the candidate diverged.
      failed_epoch: the epoch it was marked failed, else None.
      reason: why, else None.

    ``trajectory["val_acc"]`` is ``trajectory.values["val_acc"]``.
    """

    name: str
    epochs: np.ndarray
    values: Mapping[str, np.ndarray]
    failed: bool = False
    failed_epoch: int | None = None
    reason: str | None = None

    def __getitem__(self, field: str) -> np.ndarray:
        if field not in self.values:
            raise CapjaxInputError(
                f"candidate {self.name} has no field {field!r}; recorded: {sorted(self.values)}"
            )
        return self.values[field]


def _read_lines(path: Path) -> tuple[list[dict], bool]:
    """Parsed records and whether the file ends in a torn (partly written) line."""
    if not path.exists():
        return [], False
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    # Every complete record ends with "\n"; whatever follows the last one is torn.
    complete, tail = lines[:-1], lines[-1]
    records = []
    for i, line in enumerate(complete):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i < len(complete) - 1:
                raise CapjaxInputError(
                    f"{path} line {i + 1} is not JSON ({err}); the records file was edited "
                    "or corrupted: delete the sweep directory and rerun"
                ) from err
            return records, True  # a torn last line that happened to contain a newline
    return records, bool(tail)


def load_records(out_dir: str | os.PathLike[str]) -> dict[str, Trajectory]:
    """Read ``out_dir/records.jsonl`` into one :class:`Trajectory` per candidate.

    A torn last line (a sweep killed while writing) is ignored. Missing fields (e.g. a
    ``record_fns`` output added later) are NaN.
    """
    by_name: dict[str, dict[int, dict]] = {}
    failures: dict[str, dict] = {}
    for rec in _read_lines(Path(out_dir) / RECORDS_FILE)[0]:
        if rec.get("failed"):
            failures[rec["name"]] = rec
        else:
            by_name.setdefault(rec["name"], {})[int(rec["epoch"])] = rec
    out = {}
    for name in {*by_name, *failures}:
        recs = by_name.get(name, {})
        epochs = np.array(sorted(recs), dtype=int)
        fields = sorted({k for r in recs.values() for k in r} - {"name", "epoch"})
        values = {
            f: np.array([_as_float(recs[e].get(f)) for e in epochs], dtype=float) for f in fields
        }
        fail = failures.get(name)
        out[name] = Trajectory(
            name, epochs, values, failed=fail is not None,
            failed_epoch=None if fail is None else int(fail["epoch"]),
            reason=None if fail is None else fail.get("reason"),
        )
    return out


def _as_float(v: Any) -> float:
    return float("nan") if v is None else float(v)


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A sweep's candidates and records, in the candidates' order.

    Attributes:
      out_dir: the sweep directory.
      candidates: the candidates, as given to :func:`run_sweep`.
      trajectories: name -> :class:`Trajectory` (see :func:`load_records`).
    """

    out_dir: Path
    candidates: tuple[Candidate, ...]
    trajectories: Mapping[str, Trajectory]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.candidates]

    @property
    def failed(self) -> np.ndarray:
        """``(n_candidates,)`` bool, True for candidates that diverged."""
        return np.array([self._traj(n).failed for n in self.names], dtype=bool)

    def _traj(self, name: str) -> Trajectory:
        return self.trajectories.get(name) or Trajectory(name, np.zeros(0, int), {})

    def array(self, field: str, epochs: int | None = None) -> np.ndarray:
        """``(n_candidates, epochs)`` values of ``field`` over epochs 1..epochs.

        Column ``j`` is epoch ``j + 1`` (the convention of :mod:`capjax.curves`); NaN
        where a candidate has no record (failed, or not trained that far). ``epochs``
        defaults to the last epoch recorded by any candidate.
        """
        if epochs is None:
            epochs = max((int(t.epochs.max()) for t in self.trajectories.values()
                          if t.epochs.size), default=0)
        out = np.full((len(self.candidates), epochs), np.nan)
        for i, name in enumerate(self.names):
            t = self._traj(name)
            if field in t.values:
                cols = t.epochs - 1
                ok = (cols >= 0) & (cols < epochs)
                out[i, cols[ok]] = t.values[field][ok]
        return out

    def initial(self, field: str) -> np.ndarray:
        """``(n_candidates,)`` values of ``field`` at epoch 0, before fine-tuning."""
        out = np.full(len(self.candidates), np.nan)
        for i, name in enumerate(self.names):
            t = self._traj(name)
            if field in t.values and t.epochs.size and t.epochs[0] == 0:
                out[i] = t.values[field][0]
        return out


def load_sweep(out_dir: str | os.PathLike[str]) -> SweepResult:
    """The :class:`SweepResult` of a sweep directory (finished or not)."""
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if manifest is None:
        raise CapjaxInputError(
            f"{out_dir} holds no sweep ({MANIFEST_FILE} missing); pass the out_dir of run_sweep"
        )
    cands = tuple(Candidate.from_dict(d) for d in manifest["candidates"])
    return SweepResult(out_dir, cands, load_records(out_dir))


def load_snapshots(out_dir: str | os.PathLike[str], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch trainable parameters saved by ``run_sweep(..., snapshot_params=True)``.

    Returns:
      ``(epochs, flat)``: the epochs ``(T,)`` and ``(T, n_params)`` float32 rows, each the
      candidate's ``{"backbone", "head"}`` flattened by ``jax.flatten_util.ravel_pytree``
      (the probe is frozen, so it is left out).
    """
    folder = Path(out_dir) / SNAPSHOT_DIR / name
    files = sorted(folder.glob("*.npy")) if folder.exists() else []
    if not files:
        raise CapjaxInputError(
            f"no snapshots for {name!r} in {folder}; run the sweep with snapshot_params=True"
        )
    return np.array([int(f.stem) for f in files]), np.stack([np.load(f) for f in files])


# ---------------------------------------------------------------------------------------
# Files written atomically


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _append(path: Path, records: Sequence[dict]) -> None:
    if not records:
        return
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read_manifest(out_dir: Path) -> dict | None:
    path = out_dir / MANIFEST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _check_manifest(out_dir: Path, manifest: dict) -> None:
    """Write the manifest of a new sweep, or check a resumed one matches it."""
    old = _read_manifest(out_dir)
    if old is None:
        _atomic_write(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
        return

    def comparable(m: dict, field: str) -> Any:
        value = m.get(field)
        return sorted(value, key=lambda d: d["name"]) if field == "candidates" else value

    for field in manifest:
        if comparable(old, field) != comparable(manifest, field):
            raise CapjaxInputError(
                f"{out_dir} holds a sweep with different {field}; pass a new out_dir, or the "
                "same candidates, dataset and settings to resume or extend that sweep"
            )


# ---------------------------------------------------------------------------------------
# Groups and their jitted steps


@dataclasses.dataclass(frozen=True)
class _Group:
    gid: str
    members: tuple[Candidate, ...]
    lanes: tuple[Candidate, ...]  # members, padded by repeating the last to fill the mesh
    mesh: Mesh


def _plan_groups(candidates: Sequence[Candidate], devices: Sequence[jax.Device]) -> list[_Group]:
    """Groups of equal ``group_key``, each over as many devices as it has candidates (at most
    all), with the candidate axis padded to a multiple of its device count."""
    groups: dict[tuple, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.group_key, []).append(c)
    out = []
    for members in groups.values():
        n = len(members)
        per_device = math.ceil(n / len(devices))
        n_dev = math.ceil(n / per_device)  # as many devices as possible, padding < per_device
        lanes = members + [members[-1]] * (n_dev * per_device - n)
        c = members[0]
        digest = hashlib.blake2b(
            "\n".join(sorted(m.name for m in members)).encode(), digest_size=4
        ).hexdigest()
        gid = f"{c.family}-d{c.depth}-w{c.width}-b{c.batch_size}-{digest}"
        out.append(_Group(gid, tuple(members), tuple(lanes), candidate_mesh(devices[:n_dev])))
    return out


def _shape_candidate(key: tuple) -> Candidate:
    """A stand-in for every candidate of a group: what the group's jitted steps depend on."""
    family, depth, width, probe_widths, batch_size = key
    return Candidate("group", family, depth, width, probe_widths=probe_widths,
                     batch_size=batch_size)


class _Steps(NamedTuple):
    train: Callable[..., Any]
    measure: Callable[..., Any]
    beta: Callable[..., Any]


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


@functools.cache
def _steps(key: tuple, interactions: tuple[str, ...], mesh: Mesh) -> _Steps:
    """The group's per-candidate steps, sharded over ``mesh``; cached so each compiles once."""
    rep = _shape_candidate(key)
    tx = finetune_optimizer(0.0, 0.0)  # update() reads lr and weight decay from the state

    def loss(p, xb, yb):
        return cross_entropy(model_logits(rep, p, xb), yb)

    def train(params, opt_state, idx, x, y):
        params, opt_state, losses = train_epoch(loss, tx, params, opt_state, x, y, idx)
        return params, opt_state, losses.mean()

    def measure(params, *splits):
        """Mean loss and accuracy ``(n_splits,)`` on chunked splits, and params finiteness."""

        def one(split):
            xs, ys, mask = split

            def chunk(total, c):
                xc, yc, mc = c
                logits = model_logits(rep, params, xc)
                ce = optax.softmax_cross_entropy_with_integer_labels(logits, yc)
                hit = (jnp.argmax(logits, -1) == yc).astype(jnp.float32)
                return total + jnp.stack([jnp.sum(ce * mc), jnp.sum(hit * mc)]), None

            total, _ = jax.lax.scan(chunk, jnp.zeros(2), (xs, ys, mask))
            return total / jnp.sum(mask)

        out = jnp.stack([one(s) for s in splits])
        return out[:, 0], out[:, 1], _all_finite(params)

    def beta(params, x, y):
        feats = backbone_features(rep, params["backbone"], x)

        def loss_fn(h):
            return cross_entropy(apply_head(params["head"], h), y)

        return jnp.stack([beta_eff(params["probe"], feats, loss_fn, interaction=i)
                          for i in interactions])

    return _Steps(shard_candidates(train, mesh, 3), shard_candidates(measure, mesh, 1),
                  shard_candidates(beta, mesh, 1))


class _Data(NamedTuple):
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


def _probe_rows(n_train: int, probe_batch: int) -> np.ndarray:
    return np.random.default_rng(PROBE_DATA_SEED).permutation(n_train)[:probe_batch]


def _place_data(dataset: Dataset, probe_batch: int, mesh: Mesh) -> _Data:
    rows = _probe_rows(len(dataset.y_train), probe_batch)
    host = _Data(
        dataset.x_train, dataset.y_train,
        _chunked(dataset.x_val, dataset.y_val),
        _chunked(dataset.x_test, dataset.y_test),
        dataset.x_train[rows], dataset.y_train[rows],
    )
    return jax.device_put(host, NamedSharding(mesh, PartitionSpec()))


@functools.cache
def _init_fn(key: tuple, input_shape: tuple, num_classes: int) -> Callable[..., tuple]:
    """Jitted, vmapped ``(backbone, seed, lr, wd) -> (params, opt_state)`` of a group."""
    rep = _shape_candidate(key)

    def one(backbone, seed, lr, wd):
        params = init_model(rep, backbone, input_shape, num_classes, seed=seed)
        return params, finetune_optimizer(lr, wd).init(params)

    return jax.jit(jax.vmap(one))


def _lane_hyperparameters(group: _Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lanes = group.lanes
    return (np.array([c.seed for c in lanes], np.int32),
            np.array([c.lr for c in lanes], np.float32),
            np.array([c.weight_decay for c in lanes], np.float32))


def _initial_state(group: _Group, backbones: Mapping[str, Any], dataset: Dataset) -> tuple:
    """The group's stacked ``(params, opt_state)`` from NumPy ``backbones``."""
    init = _init_fn(group.members[0].group_key, dataset.input_shape, dataset.num_classes)
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *[backbones[c.name] for c in group.lanes])
    return init(stacked, *_lane_hyperparameters(group))


def _template(group: _Group, dataset: Dataset) -> tuple:
    """Shapes of a group's state, without pretraining (for restoring a checkpoint)."""
    init = _init_fn(group.members[0].group_key, dataset.input_shape, dataset.num_classes)
    one = jax.eval_shape(
        lambda: init_backbone(jax.random.key(0), group.members[0], dataset.input_shape)
    )
    stacked = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct((len(group.lanes), *s.shape), s.dtype), one
    )
    return jax.eval_shape(init, stacked, *_lane_hyperparameters(group))


def _on_candidates(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(CANDIDATE_AXIS)))


def _pad_lanes(leaf: np.ndarray, n_lanes: int) -> np.ndarray:
    return np.concatenate([leaf, np.repeat(leaf[-1:], n_lanes - len(leaf), axis=0)])


class _Checkpoints:
    """Orbax checkpoints of a sweep: every group's members' stacked state and live mask."""

    def __init__(self, path: Path):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=2, enable_async_checkpointing=False, cleanup_tmp_directories=True
        )
        self.manager = ocp.CheckpointManager(path.absolute(), options=options)

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def save(self, epoch: int, states: Mapping[str, tuple[tuple, np.ndarray]]) -> None:
        """Save ``{group id: (state, alive)}`` as the checkpoint of ``epoch``."""
        tree = {
            gid: {"leaves": [np.asarray(leaf)[: len(alive)] for leaf in jax.tree.leaves(state)],
                  "alive": alive}
            for gid, (state, alive) in states.items()
        }
        self.manager.save(epoch, args=ocp.args.StandardSave(tree))

    def restore(
        self, epoch: int, templates: Mapping[str, tuple[tuple, int]]
    ) -> dict[str, tuple[tuple, np.ndarray]]:
        """``{group id: (state, alive)}`` from ``{group id: (state template, n_members)}``.

        States come back padded to the template's lanes (the padding repeats the last
        member, as :func:`_plan_groups` does).
        """
        target = {
            gid: {"leaves": [np.zeros((n, *t.shape[1:]), t.dtype)
                             for t in jax.tree.leaves(template)],
                  "alive": np.zeros(n, bool)}
            for gid, (template, n) in templates.items()
        }
        got = self.manager.restore(epoch, args=ocp.args.StandardRestore(target))
        out = {}
        for gid, (template, _) in templates.items():
            leaves, treedef = jax.tree.flatten(template)
            lanes = leaves[0].shape[0]
            state = jax.tree.unflatten(
                treedef, [_pad_lanes(np.asarray(x), lanes) for x in got[gid]["leaves"]]
            )
            out[gid] = (state, np.asarray(got[gid]["alive"], bool))
        return out

    def close(self) -> None:
        self.manager.close()


# ---------------------------------------------------------------------------------------
# The sweep


def _number(v: Any) -> float | None:
    """A JSON-safe float: None for NaN/inf (strict JSON has neither)."""
    v = float(v)
    return v if math.isfinite(v) else None


def _divergence(values: Mapping[str, float], params_finite: bool, epoch: int) -> str | None:
    """Why a candidate counts as diverged after ``epoch``, or None if it has not."""
    when = "at initialisation" if epoch == 0 else f"in epoch {epoch}"
    fix = "; lower the learning rate or the init scale"
    losses = [("validation loss", values["val_loss"])]
    if epoch > 0:  # epoch 0 has no training loss
        losses.insert(0, ("train loss", values["train_loss"]))
    for what, value in losses:
        if not math.isfinite(value):
            return f"{what} is {value} {when}{fix}"
    return None if params_finite else f"parameters hold NaN/inf {when}{fix}"


def _scalar(name: str, value: Any) -> float | None:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise CapjaxInputError(
            f"record_fns[{name!r}] returned {type(value).__name__} of shape {arr.shape}; "
            "it must return one number"
        )
    return _number(arr.reshape(()))


def _save_snapshot(out_dir: Path, name: str, epoch: int, params: dict) -> None:
    folder = out_dir / SNAPSHOT_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    flat, _ = ravel_pytree({"backbone": params["backbone"], "head": params["head"]})
    tmp = folder / f"{epoch:04d}.tmp.npy"
    np.save(tmp, np.asarray(flat, np.float32))
    os.replace(tmp, folder / f"{epoch:04d}.npy")


def _drop_unconfirmed(path: Path, last: int | None) -> None:
    """Drop the records of epochs after the last checkpoint, and a torn last line."""
    records, torn = _read_lines(path)
    keep = [r for r in records if last is not None and r["epoch"] <= last]
    if torn or len(keep) != len(records):
        _atomic_write(path, "".join(json.dumps(r) + "\n" for r in keep).encode())


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every group's run shares."""

    dataset: Dataset
    epochs: int
    out_dir: Path
    interactions: tuple[str, ...]
    probe_batch: int
    record_fns: Mapping[str, RecordFn]
    snapshot_params: bool

    def passes(self, epoch: int, batch_size: int) -> dict[str, int]:
        d = self.dataset
        per_epoch = 2 * (len(d.y_train) // batch_size) * batch_size
        beta = self.probe_batch * sum(BETA_COST[i] for i in self.interactions)
        return {
            "passes_train": epoch * per_epoch,
            "passes_eval": (epoch + 1) * (len(d.y_val) + len(d.y_test)),
            "passes_beta": (epoch + 1) * beta,
        }


class _GroupRun:
    """One group on its mesh: its state and its epoch of training, evaluation and records."""

    def __init__(self, job: _Job, group: _Group, state: tuple, alive: np.ndarray,
                 data: _Data, start: int):
        self.job, self.group, self.alive, self.data = job, group, alive, data
        self.steps = _steps(group.members[0].group_key, job.interactions, group.mesh)
        self.params, self.opt_state = _on_candidates(state, group.mesh)
        self.seeds = np.array([c.seed for c in group.lanes], np.int32)
        self.probe = (np.asarray(data.probe_x), np.asarray(data.probe_y))
        # Compile now, so that wall_s measures epochs, not XLA.
        if self.alive.any():
            if job.epochs >= max(start, 1):
                self.steps.train.lower(self.params, self.opt_state, self._order(1),
                                       data.x_train, data.y_train).compile()
            self.steps.measure.lower(self.params, data.val, data.test).compile()
            self.steps.beta.lower(self.params, data.probe_x, data.probe_y).compile()

    def _order(self, epoch: int) -> jax.Array:
        n_train = len(self.job.dataset.y_train)
        idx = epoch_batches(self.seeds, epoch, n_train, self.group.members[0].batch_size,
                            FINETUNE_STREAM)
        return _on_candidates(idx, self.group.mesh)

    def checkpoint(self) -> tuple[tuple, np.ndarray]:
        return (self.params, self.opt_state), self.alive

    def epoch(self, epoch: int) -> list[dict]:
        """Train for ``epoch`` (none at epoch 0), measure, and return the records."""
        if not self.alive.any():
            return []
        job, data, steps = self.job, self.data, self.steps
        t0 = time.perf_counter()
        train_loss = np.full(len(self.group.lanes), np.nan)  # no training before epoch 1
        if epoch > 0:
            self.params, self.opt_state, train_loss = steps.train(
                self.params, self.opt_state, self._order(epoch), data.x_train, data.y_train
            )
        measured = steps.measure(self.params, data.val, data.test)
        (losses, accs, finite), train_loss = jax.device_get((measured, train_loss))
        t1 = time.perf_counter()
        betas = np.asarray(jax.device_get(steps.beta(self.params, data.probe_x, data.probe_y)))
        t2 = time.perf_counter()

        n = len(self.group.members)
        host = jax.device_get(self.params) if job.record_fns or job.snapshot_params else None
        records = []
        for i, c in enumerate(self.group.members):
            if not self.alive[i]:
                continue
            values = {"train_loss": train_loss[i], "val_loss": losses[i, 0],
                      "val_acc": accs[i, 0], "test_loss": losses[i, 1], "test_acc": accs[i, 1]}
            values = {k: float(v) for k, v in values.items()}
            reason = _divergence(values, bool(finite[i]), epoch)
            if reason is not None:
                self.alive[i] = False
                records.append({"name": c.name, "epoch": epoch, "failed": True, "reason": reason})
                continue
            rec = {"name": c.name, "epoch": epoch, **{k: _number(v) for k, v in values.items()}}
            rec.update({f"beta_{k}": _number(b)
                        for k, b in zip(job.interactions, betas[i], strict=True)})
            rec.update(job.passes(epoch, c.batch_size))
            rec.update(wall_s=(t1 - t0) / n, wall_beta_s=(t2 - t1) / n)
            if host is not None:
                own = jax.tree.map(lambda leaf, i=i: leaf[i], host)
                rec.update(_extras(job, c, epoch, own, self.probe))
            records.append(rec)
        return records


def _extras(job: _Job, c: Candidate, epoch: int, params: dict, probe: tuple) -> dict:
    """``record_fns`` outputs of one candidate; saves its snapshot if asked."""
    ctx = SweepContext(c, epoch, job.dataset, *probe)
    out = {k: _scalar(k, fn(params, ctx)) for k, fn in job.record_fns.items()}
    if job.snapshot_params:
        _save_snapshot(job.out_dir, c.name, epoch, params)
    return out


def _check_sweep_args(
    dataset: Any, epochs: Any, interactions: Any, probe_batch: Any, record_fns: Any,
    candidates: Sequence[Candidate],
) -> tuple[Dataset, tuple[str, ...], dict[str, RecordFn]]:
    if isinstance(dataset, str):
        dataset = load_dataset(dataset)
    if not isinstance(dataset, Dataset):
        raise CapjaxInputError(
            f"dataset is {type(dataset).__name__}; pass a capjax.data.Dataset or a spec string"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 0:
        raise CapjaxInputError(f"epochs is {epochs!r}; pass a whole number of epochs >= 0")
    interactions = (interactions,) if isinstance(interactions, str) else tuple(interactions)
    known = sorted(set(INTERACTIONS) & set(BETA_COST))
    for i in interactions:
        if i not in known:
            raise CapjaxInputError(f"unknown interaction {i!r}; choose from {known}")
    if len(set(interactions)) != len(interactions):
        raise CapjaxInputError(f"interactions {interactions} repeat; list each once")
    n_train = len(dataset.y_train)
    if isinstance(probe_batch, bool) or not isinstance(probe_batch, int | np.integer) or not (
        2 <= probe_batch <= n_train
    ):
        raise CapjaxInputError(
            f"probe_batch is {probe_batch!r}; pass an int between 2 and the {n_train} "
            "training examples"
        )
    too_big = [c.name for c in candidates if c.batch_size > n_train]
    if too_big:
        raise CapjaxInputError(
            f"candidates {too_big} have batch_size above the {n_train} training examples; "
            "lower their batch_size"
        )
    record_fns = dict(record_fns or {})
    for k, fn in record_fns.items():
        reserved = k in _BUILTIN_FIELDS or str(k).startswith("beta_")
        if not isinstance(k, str) or reserved or not callable(fn):
            raise CapjaxInputError(
                f"record_fns entry {k!r}: keys must be new field names (not built-in fields or "
                "beta_*) mapping to callables fn(params, ctx) -> float"
            )
    return dataset, interactions, record_fns


def run_sweep(
    candidates: Iterable[Candidate],
    dataset: Dataset | str,
    *,
    epochs: int,
    out_dir: str | os.PathLike[str],
    interactions: Sequence[str] = ("coupling",),
    probe_batch: int = 256,
    record_fns: Mapping[str, RecordFn] | None = None,
    snapshot_params: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> SweepResult:
    """Fine-tune every candidate for ``epochs`` epochs, recording each epoch; resumable.

    See the module docstring for the records and the crash-safety protocol. Running
    again on the same ``out_dir`` resumes a killed sweep, returns at once for a finished
    one, and continues from the checkpoints when ``epochs`` is larger (e.g. to extend an
    early sweep to full training). Candidates, dataset and the other recording settings
    must be the same as the first run's.

    Args:
      candidates: the zoo (unique names); groups of equal ``group_key`` train vectorised.
      dataset: a :class:`capjax.data.Dataset` or a spec for :func:`capjax.data.load_dataset`.
      epochs: fine-tuning epochs (records cover epochs 0..epochs).
      out_dir: the sweep directory (records, manifest, checkpoints, snapshots).
      interactions: ``beta_eff`` interaction types to record (SPEC 2.2).
      probe_batch: examples in the fixed probe batch for ``beta_eff``.
      record_fns: extra per-epoch scalars, ``{field: fn(params, ctx) -> float}`` with one
        candidate's params ``{"backbone", "probe", "head"}`` (NumPy) and a
        :class:`SweepContext`; called on the host for every live candidate and epoch.
      snapshot_params: save each candidate's trainable parameters every epoch under
        ``out_dir/snapshots/<name>/<epoch>.npy`` (read them with :func:`load_snapshots`).
      progress: show rich progress bars.
      cache_dir: pretrained-backbone cache (default :func:`capjax.zoo.default_cache_dir`).
      devices: devices to shard groups over (default: all).

    Returns:
      The :class:`SweepResult` of ``out_dir``.
    """
    candidates = check_candidates(candidates)
    dataset, interactions, record_fns = _check_sweep_args(
        dataset, epochs, interactions, probe_batch, record_fns, candidates
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, {
        "candidates": [c.to_dict() for c in candidates],
        "dataset": {"name": dataset.name, "fingerprint": data_fingerprint(dataset),
                    "n_val": len(dataset.y_val), "n_test": len(dataset.y_test)},
        "interactions": list(interactions),
        "probe_batch": int(probe_batch),
        "record_fns": sorted(record_fns),
        "snapshot_params": bool(snapshot_params),
    })
    job = _Job(dataset, int(epochs), out_dir, interactions, int(probe_batch), record_fns,
               bool(snapshot_params))
    groups = _plan_groups(candidates, list(devices) if devices is not None else jax.devices())
    ckpt = _Checkpoints(out_dir / CHECKPOINT_DIR)
    try:
        last = ckpt.latest()
        _drop_unconfirmed(out_dir / RECORDS_FILE, last)
        if last is None or last < job.epochs:
            _run_epochs(job, groups, ckpt, last, cache_dir, progress)
    finally:
        ckpt.close()
    return load_sweep(out_dir)


def _run_epochs(
    job: _Job, groups: Sequence[_Group], ckpt: _Checkpoints, last: int | None,
    cache_dir: str | os.PathLike[str] | None, progress: bool,
) -> None:
    """Epochs ``last + 1 .. job.epochs`` of every group, from scratch when ``last`` is None."""
    start = 0 if last is None else last + 1
    with _progress_bar(progress) as bar:
        if last is None:
            fresh = [c for g in groups for c in g.members]
            task = bar.add_task("pretraining backbones", total=n_lineages(fresh))
            backbones = pretrain_backbones(fresh, job.dataset, cache_dir,
                                           on_lineage=lambda: bar.advance(task))
            states = {g.gid: (_initial_state(g, backbones, job.dataset),
                              np.ones(len(g.members), bool)) for g in groups}
        else:
            states = ckpt.restore(last, {g.gid: (_template(g, job.dataset), len(g.members))
                                         for g in groups})
        task = bar.add_task("compiling", total=len(groups))
        placed: dict[Mesh, _Data] = {}  # groups on the same devices share one copy of the data
        runs = []
        for g in groups:
            if g.mesh not in placed:
                placed[g.mesh] = _place_data(job.dataset, job.probe_batch, g.mesh)
            runs.append(_GroupRun(job, g, *states[g.gid], placed[g.mesh], start))
            bar.advance(task)
        task = bar.add_task("fine-tuning", total=len(runs) * (job.epochs - start + 1))
        for epoch in range(start, job.epochs + 1):
            records = []
            for k, run in enumerate(runs):
                records += run.epoch(epoch)
                bar.update(task, advance=1, description=(
                    f"fine-tuning: epoch {epoch}/{job.epochs}, group {k + 1}/{len(runs)}"
                ))
            _append(job.out_dir / RECORDS_FILE, records)
            ckpt.save(epoch, {run.group.gid: run.checkpoint() for run in runs})


def _progress_bar(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled,
    )
