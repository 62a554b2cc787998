"""Where a sweep restarts: the newest checkpoint its records cover, and a manifest it can trust.

On every start :func:`resume_point` looks for the newest checkpoint that

1. can be read (its progress and its arrays), and
2. is *covered* by the records: every candidate it holds has exactly one record for
   every epoch ``0..e`` it says that candidate was trained to;

deletes newer ones (with a :class:`~capjax.base.validation.CapjaxWarning`), and rewrites
the records to exactly what that checkpoint covers: one record per candidate and epoch,
in order, no torn line, nothing after. When no checkpoint qualifies the sweep starts
over (pretrained backbones come from the cache). Either way the records that follow are
those of an untouched run: epochs are recomputed deterministically from a checkpoint.

:func:`check_manifest` writes a new sweep's manifest, refuses a resumed one whose settings
differ (naming the setting), and rebuilds a lost or torn manifest when the records
prove the same settings (their candidates, beta_eff interactions and signal fields).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError, CapjaxWarning
from capjax.records.fields import BUILTIN_FIELDS, beta_field
from capjax.records.files import MANIFEST_FILE, RECORDS_FILE, atomic_write, read_lines, read_manifest
from capjax.training.checkpoints import Checkpoints


def _comparable(m: dict, field: str) -> Any:
    value = m.get(field)
    return sorted(value, key=lambda d: d["name"]) if field == "candidates" else value


def _proven(records: Sequence[dict], manifest: dict) -> str | None:
    """What in ``records`` contradicts ``manifest``'s settings, or None."""
    names = {c["name"] for c in manifest["candidates"]}
    beta = {beta_field(i) for i in manifest["interactions"]}
    extra = set(manifest["record_fns"])
    for r in records:
        if r.get("failed"):
            continue
        if r["name"] not in names:
            return f"candidate {r['name']!r}, which is not among these candidates"
        fields = set(r) - set(BUILTIN_FIELDS) - {"name", "epoch"}
        held_beta = {f for f in fields if f.startswith("beta_")}
        if held_beta != beta:
            return f"beta_eff fields {sorted(held_beta)}, not {sorted(beta)} (interactions)"
        if fields - held_beta != extra:
            return f"signal fields {sorted(fields - held_beta)}, not {sorted(extra)} (record_fns)"
    return None


def check_manifest(out_dir: Path, manifest: dict) -> None:
    """Write the manifest of a new sweep, check a resumed one, or rebuild a lost one from the records."""
    try:
        old = read_manifest(out_dir)
    except CapjaxInputError as err:
        warnings.warn(f"{err}: rebuilding it", CapjaxWarning, stacklevel=3)
        old = None
    if old is None:
        records, _ = read_lines(out_dir / RECORDS_FILE)
        if records:
            clash = _proven(records, manifest)
            if clash is not None:
                raise CapjaxInputError(
                    f"{out_dir} has no readable manifest and its records hold {clash}; pass a new out_dir, or "
                    "the candidates, dataset and settings that made them"
                )
            warnings.warn(f"{out_dir / MANIFEST_FILE} was missing or torn; rebuilt it from the records, which "
                          "agree with these settings", CapjaxWarning, stacklevel=3)
        atomic_write(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
        return
    for field in manifest:
        if _comparable(old, field) != _comparable(manifest, field):
            raise CapjaxInputError(
                f"{out_dir} holds a sweep with different {field}; pass a new out_dir, or the "
                "same candidates, dataset and settings to resume or extend that sweep"
            )


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a sweep restarts.

    Attributes:
      step: the checkpoint step, or None to start from the pretrained backbones.
      progress: ``{group id: (alive, epoch)}`` of that checkpoint (empty when None).
      states: ``{group id: (params, opt_state)}`` restored from it (empty when None).
      history: ``{name: (validation loss at epoch 0, best validation accuracy)}`` of
        the kept records, for divergence by magnitude.
    """

    step: int | None
    progress: Mapping[str, tuple[np.ndarray, np.ndarray]]
    states: Mapping[str, tuple]
    history: Mapping[str, tuple[float, float]]


def _first_per_epoch(records: Sequence[dict]) -> dict[tuple[str, int], dict]:
    out: dict[tuple[str, int], dict] = {}
    for r in records:
        out.setdefault((r["name"], int(r["epoch"])), r)
    return out


def _covered(kept: Mapping[tuple[str, int], dict], confirmed: Mapping[str, int]) -> bool:
    return all((name, e) in kept for name, at in confirmed.items() for e in range(at + 1))


NO_HISTORY = (np.nan, -np.inf)
"""``(validation loss at epoch 0, best validation accuracy)`` before any epoch."""


def advance(history: tuple[float, float], epoch: int, val_loss: float, val_acc: float) -> tuple[float, float]:
    """A candidate's ``(validation loss at epoch 0, best validation accuracy)`` after one more epoch."""
    loss0, peak = history
    return (val_loss if epoch == 0 else loss0, max(peak, val_acc))


def _history(kept: Sequence[dict]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for r in kept:
        if not r.get("failed") and r.get("val_loss") is not None:
            out[r["name"]] = advance(out.get(r["name"], NO_HISTORY), r["epoch"], r["val_loss"],
                                     r.get("val_acc") or -np.inf)
    return out


def resume_point(out_dir: Path, ckpt: Checkpoints, members: Mapping[str, Sequence[str]],
                 templates: Any) -> Resume:
    """The newest usable checkpoint (see the module docstring); records rewritten to match it.

    Args:
      out_dir: the sweep directory.
      ckpt: its checkpoints.
      members: ``{group id: member names}`` of this run's groups.
      templates: a function returning ``{group id: (state template, n_members)}``
        (built only when a checkpoint is there to restore).
    """
    path = out_dir / RECORDS_FILE
    records, torn = read_lines(path)
    kept = _first_per_epoch(records)
    for step in sorted(ckpt.steps(), reverse=True):
        try:
            progress = ckpt.progress(step)
            confirmed = {name: int(at) for gid, names in members.items() if gid in progress
                         for name, at in zip(names, progress[gid][1], strict=True)}
            why = None if _covered(kept, confirmed) else "the records do not cover it"
            states = ckpt.restore(step, templates()) if why is None else {}
        except Exception as err:  # noqa: BLE001 - orbax reports a torn checkpoint in many ways; any is "unusable"
            why, confirmed = f"it cannot be read: {type(err).__name__}", {}
        if why is None:
            # the first record of each candidate-epoch the checkpoint holds, in file order
            keep = [r for r in records if kept[(r["name"], int(r["epoch"]))] is r
                    and int(r["epoch"]) <= confirmed.get(r["name"], -1)]
            if torn or len(keep) != len(records):
                atomic_write(path, "".join(json.dumps(r) + "\n" for r in keep).encode())
            return Resume(step, progress, states, _history(keep))
        warnings.warn(f"checkpoint {step} of {out_dir} is not usable ({why}); deleting it and resuming from an "
                      "earlier one", CapjaxWarning, stacklevel=3)
        ckpt.delete(step)
    if records:
        warnings.warn(f"no checkpoint of {out_dir} matches its records; starting that sweep over",
                      CapjaxWarning, stacklevel=3)
        atomic_write(path, b"")
    return Resume(None, {}, {}, {})
