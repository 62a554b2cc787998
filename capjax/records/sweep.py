"""Reading a sweep: one :class:`Trajectory` per candidate, one :class:`SweepResult` per sweep.

NumPy only: a sweep written on an accelerator, or by another process, is read here without
JAX. See :mod:`capjax.records.fields` for what a record holds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.records.files import MANIFEST_FILE, RECORDS_FILE, SNAPSHOT_DIR, read_lines, read_manifest


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


def load_records(out_dir: str | os.PathLike[str]) -> dict[str, Trajectory]:
    """Read ``out_dir/records.jsonl`` into one :class:`Trajectory` per candidate.

    A torn last line (a sweep killed while writing) is ignored. Missing fields (e.g. a
    ``record_fns`` output added later) are NaN.
    """
    return _trajectories(read_lines(Path(out_dir) / RECORDS_FILE)[0])


def load_recorded(path: str | os.PathLike[str]) -> SweepResult:
    """A :class:`SweepResult` from a records file alone (``records.jsonl`` or ``.jsonl.gz``).

    Candidates are in the order of their first record; ``out_dir`` is the file's folder, so
    snapshots are not available.
    """
    path = Path(path)
    if not path.is_file():
        raise CapjaxInputError(f"{path} is not a records file; pass a records.jsonl or records.jsonl.gz")
    records = read_lines(path)[0]
    names = tuple(dict.fromkeys(r["name"] for r in records))
    return SweepResult(path.parent, names, _trajectories(records))


def _trajectories(records: list[dict]) -> dict[str, Trajectory]:
    by_name: dict[str, dict[int, dict]] = {}
    failures: dict[str, dict] = {}
    for rec in records:
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
      names: the candidates' names, in the order the sweep was given them.
      trajectories: name -> :class:`Trajectory` (see :func:`load_records`).
      passes_by_process: training passes each process of a multi-process run computed in
        the :func:`~capjax.training.run_sweep` call that returned this (one entry per
        process); None when the sweep was read from disk.
    """

    out_dir: Path
    names: tuple[str, ...]
    trajectories: Mapping[str, Trajectory]
    passes_by_process: tuple[int, ...] | None = None

    @property
    def failed(self) -> np.ndarray:
        """``(n_candidates,)`` bool, True for candidates that diverged."""
        return np.array([self._traj(n).failed for n in self.names], dtype=bool)

    def _traj(self, name: str) -> Trajectory:
        return self.trajectories.get(name) or Trajectory(name, np.zeros(0, int), {})

    def array(self, field: str, epochs: int | None = None) -> np.ndarray:
        """``(n_candidates, epochs)`` values of ``field`` over epochs 1..epochs.

        Column ``j`` is epoch ``j + 1`` (the convention of :mod:`capjax.signals.curves`); NaN
        where a candidate has no record (failed, or not trained that far). ``epochs``
        defaults to the last epoch recorded by any candidate.
        """
        if epochs is None:
            epochs = max((int(t.epochs.max()) for t in self.trajectories.values()
                          if t.epochs.size), default=0)
        out = np.full((len(self.names), epochs), np.nan)
        for i, name in enumerate(self.names):
            t = self._traj(name)
            if field in t.values:
                cols = t.epochs - 1
                ok = (cols >= 0) & (cols < epochs)
                out[i, cols[ok]] = t.values[field][ok]
        return out

    def initial(self, field: str) -> np.ndarray:
        """``(n_candidates,)`` values of ``field`` at epoch 0, before fine-tuning."""
        out = np.full(len(self.names), np.nan)
        for i, name in enumerate(self.names):
            t = self._traj(name)
            if field in t.values and t.epochs.size and t.epochs[0] == 0:
                out[i] = t.values[field][0]
        return out


def load_sweep(out_dir: str | os.PathLike[str]) -> SweepResult:
    """The :class:`SweepResult` of a sweep directory (finished or not)."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise CapjaxInputError(
            f"{out_dir} holds no sweep ({MANIFEST_FILE} missing); pass the out_dir of run_sweep"
        )
    names = tuple(str(d["name"]) for d in manifest["candidates"])
    return SweepResult(out_dir, names, load_records(out_dir))


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
