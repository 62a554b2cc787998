"""Orbax checkpoints of a sweep: every group's stacked state, and each member's epoch and liveness.

A checkpoint is saved after every *tick*, one epoch of every candidate that still has one
to train; candidates may stand at different epochs (a selection trains some further than
others), so each member's epoch is saved beside the state. The progress part (epochs and
live masks, JSON) restores without the arrays, so a sweep can tell what its records must
cover before it builds anything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from capjax.base.distributed import orbax_primary_only
from capjax.base.validation import CapjaxInputError
from capjax.data.dataset import Dataset
from capjax.records.files import CHECKPOINT_DIR
from capjax.training.groups import pad_lanes, plan_groups, template
from capjax.training.spec import Candidate


class Checkpoints:
    """Orbax checkpoints of a sweep, one step per tick."""

    def __init__(self, path: Path):
        import orbax.checkpoint as ocp  # here: orbax is heavy and only sweeps need it

        self._ocp = ocp
        options = ocp.CheckpointManagerOptions(
            max_to_keep=2, enable_async_checkpointing=False, cleanup_tmp_directories=True,
            multiprocessing_options=orbax_primary_only(),  # docs/method.md §9
            create=False,  # orbax cannot create it with active_processes set
        )
        self.path = path.absolute()
        self.path.mkdir(parents=True, exist_ok=True)
        self.manager = ocp.CheckpointManager(self.path, options=options)

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        """Every saved step, oldest first (at most two: each save keeps the newest two)."""
        return sorted(self.manager.all_steps())

    def delete(self, step: int) -> None:
        """Remove checkpoint ``step`` (an unusable one, so that resuming goes past it)."""
        try:
            self.manager.delete(step)
        except Exception:  # noqa: BLE001 - a torn step may confuse orbax; removing its folder is enough
            shutil.rmtree(self.path / str(step), ignore_errors=True)
        self.manager.reload()

    def save(self, step: int, states: Mapping[str, tuple[tuple, np.ndarray, np.ndarray]]) -> None:
        """Save ``{group id: (state, alive, epoch)}`` as checkpoint ``step``.

        ``alive`` and ``epoch`` are ``(n_members,)``: whether each member still trains, and
        the last epoch it was trained to (0: measured before fine-tuning).
        """
        ocp = self._ocp
        tree = {gid: [np.asarray(leaf)[: len(alive)] for leaf in jax.tree.leaves(state)]
                for gid, (state, alive, _) in states.items()}
        progress = {gid: {"alive": np.asarray(alive).tolist(), "epoch": np.asarray(epoch).tolist()}
                    for gid, (_, alive, epoch) in states.items()}
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                        progress=ocp.args.JsonSave(progress)))

    def progress(self, step: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{group id: (alive, epoch)}`` of checkpoint ``step``, without reading its arrays."""
        ocp = self._ocp
        got = self.manager.restore(step, args=ocp.args.Composite(progress=ocp.args.JsonRestore()))
        return {gid: (np.asarray(p["alive"], bool), np.asarray(p["epoch"], int))
                for gid, p in got["progress"].items()}

    def restore(self, step: int, templates: Mapping[str, tuple[tuple, int]]) -> dict[str, tuple]:
        """``{group id: state}`` from ``{group id: (state template, n_members)}``.

        States come back padded to the template's lanes (the padding repeats the last
        member, as :func:`capjax.training.groups.plan_groups` does).
        """
        ocp = self._ocp
        target = {gid: [np.zeros((n, *t.shape[1:]), t.dtype) for t in jax.tree.leaves(shapes)]
                  for gid, (shapes, n) in templates.items()}
        got = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        out = {}
        for gid, (shapes, _) in templates.items():
            leaves, treedef = jax.tree.flatten(shapes)
            lanes = leaves[0].shape[0]
            out[gid] = jax.tree.unflatten(treedef, [pad_lanes(np.asarray(x), lanes) for x in got["state"][gid]])
        return out

    def close(self) -> None:
        self.manager.close()


def trained_params(sweep_dir: str | os.PathLike[str], candidates: Sequence[Candidate], dataset: Dataset,
                   name: str) -> dict:
    """Candidate ``name``'s parameters ``{"backbone", "probe", "head"}`` (NumPy) from the
    latest checkpoint of the sweep in ``sweep_dir`` (the candidates and dataset it ran on)."""
    path = Path(sweep_dir) / CHECKPOINT_DIR
    groups = plan_groups(candidates, jax.devices()[:1])
    where = {c.name: (g.gid, i) for g in groups for i, c in enumerate(g.members)}
    if name not in where:
        raise CapjaxInputError(f"no candidate named {name!r} in this sweep")
    ckpt = Checkpoints(path)
    try:
        step = ckpt.latest()
        if step is None:
            raise CapjaxInputError(f"{path} holds no checkpoint; run the sweep first")
        states = ckpt.restore(step, {g.gid: (template(g, dataset), len(g.members)) for g in groups})
    finally:
        ckpt.close()
    gid, i = where[name]
    params, _ = states[gid]
    return jax.tree.map(lambda leaf: np.asarray(leaf[i]), params)
