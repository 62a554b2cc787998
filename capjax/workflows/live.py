"""A view that trains for real: what ``capjax select`` hands the selection engine (docs/method.md §6).

:class:`LiveView` is the :class:`~capjax.selection.View` of a sweep being run: paying for
epochs trains those candidates, in one :func:`~capjax.training.run_sweep` call per round
on one resumable sweep folder, each candidate to its own epoch. A policy written against
a :class:`~capjax.selection.PaidView` (a replay of recorded full sweeps, as the policy
benchmark uses) runs unchanged on it.

In a multi-process run (docs/method.md §9) process 0 runs the policy and every other
process runs :meth:`LiveView.serve`: each round process 0 decides, sends the plan, and
all processes train it together, each its own lanes of the global mesh (:func:`drive`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

from capjax.base.distributed import is_primary, shared
from capjax.data.dataset import Dataset
from capjax.records.sweep import SweepResult, load_sweep
from capjax.selection.view import View
from capjax.training.spec import Candidate
from capjax.training.sweep import run_sweep, train_passes_per_epoch

T = TypeVar("T")
TRAIN, DONE = "train", "done"
"""What process 0 sends the workers: a plan to train, or the end of the run and its result."""


def passes_per_epoch(candidates: Sequence[Candidate], dataset: Dataset) -> np.ndarray:
    """``(C,)`` training passes of one epoch: 2 per example of the whole batches (as the sweep records)."""
    n = len(dataset.y_train)
    return np.array([train_passes_per_epoch(n, c.batch_size) for c in candidates], dtype=float)


class LiveView(View):
    """A :class:`~capjax.selection.View` whose :meth:`train_to` runs the sweep in ``sweep_dir``.

    Args:
      candidates: the zoo.
      dataset: the data they train on.
      full_epochs: the length of full training.
      sweep_dir: the sweep's folder; a rerun with the same settings resumes in it.
      **sweep_options: passed to :func:`~capjax.training.run_sweep` (interactions,
        record_fns, progress, cache_dir, ...).
    """

    def __init__(self, candidates: Sequence[Candidate], dataset: Dataset, full_epochs: int,
                 sweep_dir: str | os.PathLike[str], **sweep_options: Any):
        self.candidates = tuple(candidates)
        self.dataset = dataset
        self.sweep_dir = Path(sweep_dir)
        self._options = sweep_options
        self._result: SweepResult | None = None
        self.passes_by_process = np.zeros(jax.process_count(), np.int64)
        """Training passes each process computed so far (the workers' share of the rounds)."""
        super().__init__([c.name for c in self.candidates], full_epochs,
                         passes_per_epoch(self.candidates, dataset), len(dataset.y_val) + len(dataset.y_test))

    def _pay(self, plan: Mapping[int, int]) -> None:
        shared(lambda: (TRAIN, dict(plan)))  # the workers train this round with us (one process: a no-op)
        self._train(plan)

    def _train(self, plan: Mapping[int, int]) -> None:
        targets = {c.name: int(self.paid[i]) for i, c in enumerate(self.candidates)}
        targets.update({self.names[c]: int(e) for c, e in plan.items()})
        self._result = run_sweep(self.candidates, self.dataset, epochs=targets, out_dir=self.sweep_dir,
                                 **self._options)
        self.passes_by_process += np.asarray(self._result.passes_by_process)
        self._tables.clear()
        super()._pay(plan)

    def serve(self) -> Any:
        """A worker's loop (process > 0): train every round process 0 sends; return what it ends with."""
        while True:
            kind, value = shared(lambda: None)
            if kind != TRAIN:
                return value
            self._train(value)

    def _sweep(self) -> SweepResult:
        if self._result is None:
            self._result = load_sweep(self.sweep_dir)
        return self._result

    def passes_eval_beta(self) -> dict[str, float]:
        """Evaluation and beta_eff passes spent so far (reported apart; not counted as compute)."""
        out = {}
        for field in ("passes_eval", "passes_beta"):
            table = self._table(field)
            last = np.array([table[i, : p + 1][np.isfinite(table[i, : p + 1])][-1:].sum()
                             for i, p in enumerate(self.paid)])
            out[field] = float(last.sum())
        return out


def _raise(err: BaseException) -> None:
    raise err


def drive(view: LiveView, work: Callable[[], T], result: Callable[[T], Any]) -> T | Any:
    """``work()`` on process 0, which pays ``view``'s rounds; the other processes serve them.

    One process: ``work()``. Several: process 0 returns ``work()``; the others return
    ``result(work())`` as process 0 sent it (something they can pickle), and raise what
    ``work`` raised, so that no process waits for a round that will not come.
    """
    if jax.process_count() == 1:
        return work()
    if not is_primary():
        return view.serve()
    try:
        out = work()
    except BaseException as err:
        shared(functools.partial(_raise, err))  # the workers raise it too; shared re-raises it here
        raise
    shared(lambda: (DONE, result(out)))
    return out
