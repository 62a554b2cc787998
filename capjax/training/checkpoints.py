"""Orbax checkpoints of a sweep: every group's members' stacked state and live mask, per epoch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np

from capjax.training.groups import pad_lanes


class Checkpoints:
    """Orbax checkpoints of a sweep: every group's members' stacked state and live mask."""

    def __init__(self, path: Path):
        import orbax.checkpoint as ocp  # here: orbax is heavy and only sweeps need it

        self._ocp = ocp
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
        self.manager.save(epoch, args=self._ocp.args.StandardSave(tree))

    def restore(
        self, epoch: int, templates: Mapping[str, tuple[tuple, int]]
    ) -> dict[str, tuple[tuple, np.ndarray]]:
        """``{group id: (state, alive)}`` from ``{group id: (state template, n_members)}``.

        States come back padded to the template's lanes (the padding repeats the last
        member, as :func:`capjax.training.groups.plan_groups` does).
        """
        target = {
            gid: {"leaves": [np.zeros((n, *t.shape[1:]), t.dtype)
                             for t in jax.tree.leaves(template)],
                  "alive": np.zeros(n, bool)}
            for gid, (template, n) in templates.items()
        }
        got = self.manager.restore(epoch, args=self._ocp.args.StandardRestore(target))
        out = {}
        for gid, (template, _) in templates.items():
            leaves, treedef = jax.tree.flatten(template)
            lanes = leaves[0].shape[0]
            state = jax.tree.unflatten(
                treedef, [pad_lanes(np.asarray(x), lanes) for x in got[gid]["leaves"]]
            )
            out[gid] = (state, np.asarray(got[gid]["alive"], bool))
        return out

    def close(self) -> None:
        self.manager.close()


# ---------------------------------------------------------------------------------------
# The sweep
