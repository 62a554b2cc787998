"""Resumable sweeps: fine-tune a zoo, recording everything the predictors need per epoch.

:func:`run_sweep` fine-tunes every candidate (docs/method.md §2.3: backbone -> frozen
probe -> new head) and appends one JSON line per candidate and epoch to
``out_dir/records.jsonl`` (the fields of :mod:`capjax.records.fields`). Candidates train in
vmapped, sharded groups (:mod:`capjax.training.groups`), one jitted ``lax.scan`` over an
epoch's batches per group and epoch. Each candidate trains to its own epoch (a selection
trains some further than others): the sweep runs in *ticks*, one epoch of every candidate
not yet at its epoch, every group in turn, and one checkpoint per tick covers them all.
Lanes of a group that are not training in a tick keep their state; on a vmapped group
they still compute, which costs wall time but no recorded passes.

Record fields (one line per live candidate per epoch; epoch 0 is the model before
fine-tuning):

* ``train_loss``: mean of the epoch's mini-batch losses (null at epoch 0, before any
  training step); ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc`` on the whole
  splits after the epoch. Losses are mean cross-entropy in nats, accuracies fractions.
* ``beta_<interaction>``: ``beta_eff`` of the probe (docs/method.md §2.2-2.3) for each
  interaction asked (none when ``interactions`` is empty), with ``lr = 1`` (``beta_eff``
  is linear in the learning rate; multiply by the candidate's ``lr`` for the eta-scaled
  value). It is measured on one FIXED probe batch: the first ``probe_batch`` training
  examples of a permutation drawn from :data:`capjax.training.groups.PROBE_DATA_SEED`,
  the same for every candidate and epoch, so ``beta_eff(t)`` changes only through the
  model (features from the current backbone, errors through the current head), never
  through the draw of a batch.
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
Per tick the order is: compute every group (writing snapshots), append all the tick's
records (one ``write`` plus ``fsync``), then save one orbax checkpoint (every group's
stacked params and optimizer state, and each candidate's epoch and live mask; atomic).
On start, each candidate's records after the epoch its checkpoint holds, and a torn
last line, are dropped (atomic rewrite) and those epochs are recomputed from the
checkpoint, deterministically: the batch order of epoch ``e`` is a function of the
candidate's seed and ``e``, and the group programs are the same. A rerun with larger
``epochs`` continues from the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from capjax.base.distributed import gathered, is_primary, per_process, shared
from capjax.base.progress import progress_bar
from capjax.base.validation import CapjaxInputError
from capjax.capacitance.dynamics import INTERACTIONS
from capjax.data.dataset import Dataset
from capjax.data.sources import load_dataset
from capjax.records.fields import BUILTIN_FIELDS, beta_field
from capjax.records.files import (
    CHECKPOINT_DIR,
    RECORDS_FILE,
    SNAPSHOT_DIR,
    append_lines,
    exclusive,
    json_number,
    written,
)
from capjax.records.sweep import SweepResult, load_sweep
from capjax.training.checkpoints import Checkpoints
from capjax.training.groups import (
    Group,
    PlacedData,
    group_steps,
    initial_state,
    local_lanes,
    on_candidates,
    pad_lanes,
    place_data,
    plan_groups,
    probe_rows,
    template,
)
from capjax.training.model import epoch_batches, epoch_keys
from capjax.training.pretrain import data_fingerprint, n_lineages, pretrain_backbones
from capjax.training.recorders import RecordFn, SweepContext
from capjax.training.resume import NO_HISTORY, Resume, advance, check_manifest, resume_point
from capjax.training.spec import DROPOUT_STREAM, FINETUNE_STREAM, Candidate, check_candidates

BETA_COST: dict[str, int] = {"coupling": 2, "hessian": 3}
"""Example passes per probe example of one ``beta_eff`` measurement, by interaction."""


def train_passes_per_epoch(n_train: int, batch_size: int) -> int:
    """Training passes of one epoch: forward and backward over the whole batches only."""
    return 2 * (n_train // batch_size) * batch_size


# ---------------------------------------------------------------------------------------
# Groups and their jitted steps


LOSS_BLOWUP = 1e3
"""A validation loss above this multiple of its epoch-0 value marks a candidate diverged."""
CHANCE_MARGIN, LEARNED_MARGIN = 0.02, 0.1
"""Validation accuracy back within ``CHANCE_MARGIN`` of chance (1/K), after it had been
``LEARNED_MARGIN`` above it, marks a candidate diverged."""


def _divergence(values: Mapping[str, float], params_finite: bool, epoch: int, history: tuple[float, float],
                num_classes: int) -> str | None:
    """Why a candidate counts as diverged after ``epoch``, or None if it has not.

    ``history`` is its ``(validation loss at epoch 0, best validation accuracy so far)``.
    Beyond NaN/inf, divergence by magnitude: a loss that blew up, or an accuracy that
    collapsed back to chance after the candidate had learned.
    """
    when = "at initialisation" if epoch == 0 else f"in epoch {epoch}"
    fix = "; lower the learning rate or the init scale"
    losses = [("validation loss", values["val_loss"])]
    if epoch > 0:  # epoch 0 has no training loss
        losses.insert(0, ("train loss", values["train_loss"]))
    for what, value in losses:
        if not math.isfinite(value):
            return f"{what} is {value} {when}{fix}"
    if not params_finite:
        return f"parameters hold NaN/inf {when}{fix}"
    loss0, peak = history
    if epoch > 0 and values["val_loss"] > LOSS_BLOWUP * loss0:
        return (f"validation loss {values['val_loss']:.3g} {when} is over {LOSS_BLOWUP:g} times its {loss0:.3g} "
                f"at epoch 0{fix}")
    chance = 1 / num_classes
    if peak >= chance + LEARNED_MARGIN and values["val_acc"] <= chance + CHANCE_MARGIN:
        return (f"validation accuracy fell back to chance ({values['val_acc']:.3f}, K = {num_classes}) {when} after "
                f"reaching {peak:.3f}{fix}")
    return None


def _scalar(name: str, value: Any) -> float | None:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise CapjaxInputError(
            f"record_fns[{name!r}] returned {type(value).__name__} of shape {arr.shape}; "
            "it must return one number"
        )
    return json_number(arr.reshape(()))


def _save_snapshot(out_dir: Path, name: str, epoch: int, params: dict) -> None:
    folder = out_dir / SNAPSHOT_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    flat, _ = ravel_pytree({"backbone": params["backbone"], "head": params["head"]})
    tmp = folder / f"{epoch:04d}.tmp.npy"
    np.save(tmp, np.asarray(flat, np.float32))
    os.replace(tmp, folder / f"{epoch:04d}.npy")


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every group's run shares."""

    dataset: Dataset
    targets: Mapping[str, int]  # the epoch each candidate trains to
    out_dir: Path
    interactions: tuple[str, ...]
    probe_batch: int
    record_fns: Mapping[str, RecordFn]
    snapshot_params: bool

    def target(self, name: str) -> int:
        return self.targets[name]

    def passes(self, epoch: int, batch_size: int) -> dict[str, int]:
        d = self.dataset
        per_epoch = train_passes_per_epoch(len(d.y_train), batch_size)
        beta = self.probe_batch * sum(BETA_COST[i] for i in self.interactions)
        return {
            "passes_train": epoch * per_epoch,
            "passes_eval": (epoch + 1) * (len(d.y_val) + len(d.y_test)),
            "passes_beta": (epoch + 1) * beta,
        }


class GroupRun:
    """One group on its mesh: its state, each member's epoch, and a tick of training and records."""

    def __init__(self, job: _Job, group: Group, state: tuple, alive: np.ndarray, at: np.ndarray,
                 data: PlacedData, history: Mapping[str, tuple[float, float]]):
        self.job, self.group, self.alive, self.at, self.data = job, group, alive, at, data
        self.history = {c.name: history.get(c.name, NO_HISTORY) for c in group.members}
        self.steps = group_steps(group.members[0].group_key, job.interactions, group.mesh)
        self.params, self.opt_state = on_candidates(state, group.mesh)
        self._host: tuple | None = state  # the state on the host while it has not moved on
        self.seeds = np.array([c.seed for c in group.lanes], np.int32)
        self.target = np.array([job.target(c.name) for c in group.members])
        rows = probe_rows(len(job.dataset.y_train), job.probe_batch)  # on the host, for record_fns
        self.probe = (job.dataset.x_train[rows], job.dataset.y_train[rows])
        self.epoch_passes = np.array([train_passes_per_epoch(len(job.dataset.y_train), c.batch_size)
                                      for c in group.members])
        self.local = local_lanes(self.params, len(group.members))
        self.passes = 0  # training passes of this process's lanes, in this run
        # Compile now, so that wall_s measures epochs, not XLA.
        if self._active().any():
            if (self.target >= np.maximum(self.at + 1, 1)).any():
                self.steps.train.lower(self.params, self.opt_state, *self._order(self._lanes(self.at + 1)),
                                       on_candidates(self._lanes(self._active()), group.mesh), data.x_train,
                                       data.y_train).compile()
            self.steps.measure.lower(self.params, data.val, data.test).compile()
            if self.steps.beta is not None:
                self.steps.beta.lower(self.params, data.probe_x, data.probe_y).compile()

    def _active(self) -> np.ndarray:
        """``(n_members,)``: members with an epoch left to train (or epoch 0 to measure)."""
        return self.alive & (self.at < self.target)

    def _lanes(self, per_member: np.ndarray) -> np.ndarray:
        """A per-member array over the group's lanes (padding lanes copy the last member)."""
        return pad_lanes(np.asarray(per_member), len(self.group.lanes))

    def _order(self, epochs: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """Each lane's batch order and random key (Dropout) for its epoch."""
        n_train, epochs = len(self.job.dataset.y_train), np.maximum(epochs, 1)
        idx = epoch_batches(self.seeds, epochs, n_train, self.group.members[0].batch_size, FINETUNE_STREAM)
        return on_candidates(idx, self.group.mesh), on_candidates(epoch_keys(self.seeds, epochs, DROPOUT_STREAM),
                                                                  self.group.mesh)

    def remaining(self) -> int:
        """Candidate-epochs (and epoch-0 measurements) this group still has to run."""
        return int(np.where(self.alive, np.maximum(self.target - self.at, 0), 0).sum())

    def host_state(self) -> tuple:
        """``(params, opt_state)`` on the host: gathered (a collective) once per epoch that trained."""
        if self._host is None:
            self._host = gathered((self.params, self.opt_state))
        return self._host

    def checkpoint(self) -> tuple[tuple, np.ndarray, np.ndarray]:  # (state, alive, epoch) on the host
        return self.host_state(), self.alive.copy(), self.at.copy()

    def tick(self) -> list[dict]:
        """One epoch of every active member (epoch 0: measure only), and their records."""
        active = self._active()
        if not active.any():
            return []
        job, data, steps = self.job, self.data, self.steps
        epoch = self.at + 1
        t0 = time.perf_counter()
        train_loss = np.full(len(self.group.lanes), np.nan)  # no training before epoch 1
        trains = active & (epoch >= 1)
        if trains.any():
            self.params, self.opt_state, train_loss = steps.train(
                self.params, self.opt_state, *self._order(self._lanes(epoch)),
                on_candidates(self._lanes(trains), self.group.mesh), data.x_train, data.y_train)
            self.passes += int(self.epoch_passes[trains & self.local].sum())
            self._host = None
        measured = steps.measure(self.params, data.val, data.test)
        (losses, accs, finite), train_loss = gathered((measured, train_loss))
        t1 = time.perf_counter()
        betas = (np.zeros((len(self.group.lanes), 0)) if steps.beta is None
                 else gathered(steps.beta(self.params, data.probe_x, data.probe_y)))
        t2 = time.perf_counter()

        n = int(active.sum())
        host = self.host_state()[0] if job.record_fns or job.snapshot_params else None
        records = []
        for i in np.flatnonzero(active):
            c, e = self.group.members[i], int(epoch[i])
            self.at[i] = e
            values = {"train_loss": train_loss[i], "val_loss": losses[i, 0],
                      "val_acc": accs[i, 0], "test_loss": losses[i, 1], "test_acc": accs[i, 1]}
            values = {k: float(v) for k, v in values.items()}
            reason = _divergence(values, bool(finite[i]), e, self.history[c.name], job.dataset.num_classes)
            self.history[c.name] = advance(self.history[c.name], e, values["val_loss"], values["val_acc"])
            if reason is not None:
                self.alive[i] = False
                records.append({"name": c.name, "epoch": e, "failed": True, "reason": reason})
                continue
            rec = {"name": c.name, "epoch": e, **{k: json_number(v) for k, v in values.items()}}
            rec.update({beta_field(k): json_number(b)
                        for k, b in zip(job.interactions, betas[i], strict=True)})
            rec.update(job.passes(e, c.batch_size))
            rec.update(wall_s=(t1 - t0) / n, wall_beta_s=(t2 - t1) / n)
            if host is not None:
                own = jax.tree.map(lambda leaf, i=i: leaf[i], host)
                rec.update(_extras(job, c, e, own, self.probe))
            records.append(rec)
        return records


def _extras(job: _Job, c: Candidate, epoch: int, params: dict, probe: tuple) -> dict:
    """``record_fns`` outputs of one candidate; saves its snapshot if asked."""
    ctx = SweepContext(c, epoch, job.dataset, *probe)
    out = {k: _scalar(k, fn(params, ctx)) for k, fn in job.record_fns.items()}
    if job.snapshot_params and is_primary():
        _save_snapshot(job.out_dir, c.name, epoch, params)
    return out


def _check_sweep_args(
    dataset: Any, interactions: Any, probe_batch: Any, record_fns: Any,
    candidates: Sequence[Candidate],
) -> tuple[Dataset, tuple[str, ...], dict[str, RecordFn]]:
    if isinstance(dataset, str):
        dataset = load_dataset(dataset)
    if not isinstance(dataset, Dataset):
        raise CapjaxInputError(
            f"dataset is {type(dataset).__name__}; pass a capjax.data.Dataset or a spec string"
        )
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
            "lower their batch_size (for your own models: capjax.Model(backbone, batch_size=...))"
        )
    record_fns = dict(record_fns or {})
    for k, fn in record_fns.items():
        reserved = k in BUILTIN_FIELDS or str(k).startswith("beta_")
        if not isinstance(k, str) or reserved or not callable(fn):
            raise CapjaxInputError(
                f"record_fns entry {k!r}: keys must be new field names (not built-in fields or "
                "beta_*) mapping to callables fn(params, ctx) -> float"
            )
    return dataset, interactions, record_fns


def _targets(epochs: Any, candidates: Sequence[Candidate]) -> dict[str, int]:
    """``{name: epoch}`` from one epoch count for all or a mapping with every candidate's."""
    def check(what: str, e: Any) -> int:
        if isinstance(e, bool) or not isinstance(e, int | np.integer) or e < 0:
            raise CapjaxInputError(f"{what} is {e!r}; pass a whole number of epochs >= 0")
        return int(e)

    if not isinstance(epochs, Mapping):
        e = check("epochs", epochs)
        return {c.name: e for c in candidates}
    names = {c.name for c in candidates}
    if set(epochs) != names:
        odd = sorted(set(epochs) ^ names)[:3]
        raise CapjaxInputError(f"epochs must give every candidate's epoch, and only theirs; check {odd}")
    return {name: check(f"epochs[{name!r}]", e) for name, e in epochs.items()}


def run_sweep(
    candidates: Iterable[Candidate],
    dataset: Dataset | str,
    *,
    epochs: int | Mapping[str, int],
    out_dir: str | os.PathLike[str],
    interactions: Sequence[str] = ("coupling",),
    probe_batch: int = 256,
    record_fns: Mapping[str, RecordFn] | None = None,
    snapshot_params: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> SweepResult:
    """Fine-tune every candidate to its epoch, recording each epoch; resumable.

    See the module docstring for the records and the crash-safety protocol. Running
    again on the same ``out_dir`` resumes a killed sweep, returns at once for a finished
    one, and continues from the checkpoints when a candidate's epoch is larger (e.g. to
    extend an early sweep to full training, or to train some candidates further than
    others, as a selection does). A candidate already past its epoch stays where it is.
    Candidates, dataset and the other recording settings must be the same as the first run's.

    Args:
      candidates: the zoo (unique names); groups of equal ``group_key`` train vectorised.
      dataset: a :class:`capjax.data.Dataset` or a spec for :func:`capjax.data.load_dataset`.
      epochs: fine-tuning epochs (records cover epochs 0..epochs), one number for every
        candidate or ``{name: epochs}`` for each.
      out_dir: the sweep directory (records, manifest, checkpoints, snapshots).
      interactions: ``beta_eff`` interaction types to record (docs/method.md §2.2; none: record no beta_eff).
      probe_batch: examples in the fixed probe batch for ``beta_eff``.
      record_fns: extra per-epoch scalars, ``{field: fn(params, ctx) -> float}`` with one
        candidate's params ``{"backbone", "probe", "head"}`` (NumPy) and a
        :class:`SweepContext`; called on the host for every live candidate and epoch.
      snapshot_params: save each candidate's trainable parameters every epoch under
        ``out_dir/snapshots/<name>/<epoch>.npy`` (read them with :func:`load_snapshots`).
      progress: show rich progress bars.
      cache_dir: pretrained-backbone cache (default :func:`capjax.training.pretrain.default_cache_dir`).
      devices: devices to shard groups over (default: all).

    Returns:
      The :class:`SweepResult` of ``out_dir``.
    """
    candidates = check_candidates(candidates)
    targets = _targets(epochs, candidates)
    dataset, interactions, record_fns = _check_sweep_args(
        dataset, interactions, probe_batch, record_fns, candidates
    )
    out_dir = Path(out_dir)
    manifest = {
        "candidates": [c.to_dict() for c in candidates],
        "dataset": {"name": dataset.name, "fingerprint": data_fingerprint(dataset),
                    "n_val": len(dataset.y_val), "n_test": len(dataset.y_test)},
        "interactions": list(interactions),
        "probe_batch": int(probe_batch),
        "record_fns": sorted(record_fns),
        "snapshot_params": bool(snapshot_params),
    }
    job = _Job(dataset, targets, out_dir, interactions, int(probe_batch), record_fns,
               bool(snapshot_params))
    groups = plan_groups(candidates, list(devices) if devices is not None else jax.devices())
    ckpt: Checkpoints | None = None  # process 0's: it alone reads and writes out_dir
    with contextlib.ExitStack() as held:
        def open_sweep() -> Resume:
            nonlocal ckpt
            held.enter_context(exclusive(out_dir, flag="out_dir"))
            check_manifest(out_dir, manifest)
            ckpt = Checkpoints(out_dir / CHECKPOINT_DIR)
            held.callback(ckpt.close)
            return resume_point(out_dir, ckpt, {g.gid: [c.name for c in g.members] for g in groups},
                                lambda: {g.gid: (template(g, dataset), len(g.members)) for g in groups})

        start = shared(open_sweep)
        todo = [c for g in groups for i, c in enumerate(g.members)
                if g.gid not in start.progress
                or (start.progress[g.gid][0][i] and start.progress[g.gid][1][i] < targets[c.name])]
        passes = _run_epochs(job, groups, ckpt, start, cache_dir, progress) if todo else 0
        result = shared(lambda: load_sweep(out_dir))
    return dataclasses.replace(result, passes_by_process=per_process(passes))


def _run_epochs(job: _Job, groups: Sequence[Group], ckpt: Checkpoints | None, start: Resume,
                cache_dir: str | os.PathLike[str] | None, progress: bool) -> int:
    """Ticks until every live candidate reaches its target, from the pretrained backbones when
    ``start.step`` is None; returns the training passes this process computed.

    ``ckpt`` is None except on process 0, which writes every tick's records and checkpoint.
    """
    with progress_bar(progress) as bar:
        if start.step is None:
            fresh = [c for g in groups for c in g.members]
            task = bar.add_task("pretraining backbones", total=n_lineages(fresh))
            # process 0 pretrains (or reads its cache) and sends the backbones: one cache, one copy
            backbones = shared(lambda: pretrain_backbones(fresh, job.dataset, cache_dir,
                                                          on_lineage=lambda: bar.advance(task)))
            states = {g.gid: (initial_state(g, backbones, job.dataset), np.ones(len(g.members), bool),
                              np.full(len(g.members), -1)) for g in groups}
        else:
            states = {gid: (state, *start.progress[gid]) for gid, state in start.states.items()}
        task = bar.add_task("compiling", total=len(groups))
        placed = place_data(job.dataset, job.probe_batch, groups)
        runs = []
        for g in groups:
            runs.append(GroupRun(job, g, *states[g.gid], placed[g.gid], start.history))
            bar.advance(task)
        task = bar.add_task("fine-tuning", total=sum(run.remaining() for run in runs))
        step = -1 if start.step is None else start.step
        while any(run.remaining() for run in runs):
            records = []
            for k, run in enumerate(runs):
                new = run.tick()
                records += new
                bar.update(task, advance=len(new), description=(
                    f"fine-tuning: epoch {max((r['epoch'] for r in new), default=0)}, group {k + 1}/{len(runs)}"
                ))
            step += 1
            states = {run.group.gid: run.checkpoint() for run in runs}
            shared(functools.partial(_save_tick, job.out_dir, ckpt, step, records, states))
    return sum(run.passes for run in runs)


def _save_tick(out_dir: Path, ckpt: Checkpoints, step: int, records: list[dict], states: dict) -> None:
    with written(out_dir, "records and checkpoint"):
        append_lines(out_dir / RECORDS_FILE, records)  # fsynced before the checkpoint that claims them
        ckpt.save(step, states)

