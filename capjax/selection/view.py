"""What a selection policy may read: only the epochs it has paid for (docs/method.md §6).

A :class:`PaidView` wraps the records of a sweep that trained every candidate to the end.
A policy *trains* a candidate to an epoch (:meth:`PaidView.train`), which pays for it, and
may then read that candidate's records up to that epoch; reading a later epoch raises
:class:`UnpaidEpochError`. Compute is counted in training passes (a forward and a backward
pass over one training example), as the sweep records ``passes_train``, so a policy's cost
is the sum over candidates of ``passes_train`` at the last epoch it paid for; evaluation
and beta_eff passes are not counted.
"""

from __future__ import annotations

import time

import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.records.sweep import SweepResult


class UnpaidEpochError(CapjaxInputError):
    """A policy read an epoch of a candidate it has not trained that far."""


def check_full_epochs(full_epochs: object) -> int:
    """``full_epochs`` as an int, or a one-line error."""
    if isinstance(full_epochs, bool) or not isinstance(full_epochs, int | np.integer) or full_epochs < 1:
        raise CapjaxInputError(f"full_epochs is {full_epochs!r}; pass the length of full training, >= 1")
    return int(full_epochs)


class View:
    """What a policy sees of a sweep: each candidate's records up to the epoch it paid for.

    Subclasses say how training is paid for: :class:`PaidView` replays a finished sweep;
    :class:`capjax.workflows.LiveView` trains for real. A policy calls :meth:`train_to`
    (or :meth:`train`) and then :meth:`read`; it never learns more than it paid for.

    Attributes:
      names: the candidates, ``(C,)``.
      full_epochs: the length of full training.
      paid: ``(C,)`` int, the last epoch paid for per candidate (0: nothing trained yet).
      stops: per candidate, the epochs its payments ended at, in order: where the policy
        decided about it again. A gain between two consecutive stops was paid for on what
        was known at the first, so it carries no selection on its own outcome.
      passes_per_epoch: ``(C,)`` training passes of one epoch of each candidate.
      eval_examples: validation plus test examples (None: unknown), for the measurement
        noise between a candidate's validation and test accuracy.
      timings: one ``(seconds deciding, seconds paying)`` per payment after the first: the
        policy's time since the previous payment returned, and the payment's own (training,
        for a live view).
    """

    def __init__(self, names, full_epochs: int, passes_per_epoch: np.ndarray, eval_examples: int | None = None):
        self.names = tuple(names)
        self.full_epochs = check_full_epochs(full_epochs)
        self.paid = np.zeros(len(self.names), dtype=int)
        self.stops: list[list[int]] = [[] for _ in self.names]
        self.passes_per_epoch = np.asarray(passes_per_epoch, dtype=float)
        self.eval_examples = eval_examples
        self.timings: list[tuple[float, float]] = []
        self._returned: float | None = None
        self._tables: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.names)

    def train(self, candidates, epoch: int) -> None:
        """Pay for ``candidates`` (indices) up to ``epoch``; never lowers what was paid."""
        self.train_to({int(c): epoch for c in np.atleast_1d(np.asarray(candidates, dtype=int))})

    def train_to(self, plan: dict[int, int]) -> None:
        """Pay for each candidate ``c`` of ``plan`` up to epoch ``plan[c]``, all at once."""
        for epoch in plan.values():
            if not 0 <= epoch <= self.full_epochs:
                raise CapjaxInputError(f"epoch {epoch} is outside 0..{self.full_epochs}")
        start = time.perf_counter()
        raised = {c: int(e) for c, e in plan.items() if e > self.paid[c]}
        self._pay({c: max(int(self.paid[c]), int(e)) for c, e in plan.items()})
        for c, e in raised.items():
            self.stops[c].append(e)
        if self._returned is not None:
            self.timings.append((start - self._returned, time.perf_counter() - start))
        self._returned = time.perf_counter()

    def _pay(self, plan: dict[int, int]) -> None:
        for c, epoch in plan.items():
            self.paid[c] = epoch

    @property
    def failed(self) -> np.ndarray:
        """``(C,)`` bool: candidates that diverged within the epochs paid for."""
        sweep = self._sweep()
        return np.array([t.failed and t.failed_epoch <= p for t, p in
                         zip((sweep.trajectories[n] for n in self.names), self.paid, strict=True)])

    def reasons(self) -> list[str | None]:
        """Why each candidate failed (None where it has not, within what was paid)."""
        sweep = self._sweep()
        return [sweep.trajectories[n].reason if f else None for n, f in zip(self.names, self.failed, strict=True)]

    def _sweep(self) -> SweepResult:
        raise NotImplementedError

    def records(self) -> SweepResult:
        """Every record the view holds (a policy reads them through :meth:`read` instead;
        this is for what comes after a selection: predictors on paid epochs, verification)."""
        return self._sweep()

    def read(self, field: str, epoch: int, candidates) -> np.ndarray:
        """``field`` at ``epoch`` of ``candidates`` (indices); NaN where a candidate diverged.

        Raises:
          UnpaidEpochError: if a candidate has not been trained to ``epoch``.
        """
        if not 0 <= epoch <= self.full_epochs:  # a negative index would read the final epoch
            raise UnpaidEpochError(f"epoch {epoch} is outside 0..{self.full_epochs}")
        idx = np.asarray(candidates, dtype=int)
        unpaid = idx[self.paid[idx] < epoch]
        if unpaid.size:
            raise UnpaidEpochError(
                f"epoch {epoch} of {[self.names[i] for i in unpaid[:3]]} was read but not paid for "
                f"(paid up to {self.paid[unpaid[:3]].tolist()}); train them first"
            )
        return self._table(field)[idx, epoch]

    def _table(self, field: str) -> np.ndarray:
        """``(C, full + 1)`` values of ``field`` at epochs 0..full, built once per field.

        Policies read one epoch at a time, round after round; rebuilding the array from the
        trajectories on every read made the engine's rounds quadratic in the epochs.
        """
        if field not in self._tables:
            sweep = self._sweep()
            initial = sweep.initial(field)[:, None]
            self._tables[field] = np.concatenate([initial, sweep.array(field, self.full_epochs)], axis=1)
        return self._tables[field]

    def val_acc(self, epoch: int, candidates) -> np.ndarray:
        """Validation accuracy at ``epoch``; a diverged candidate reads ``-inf`` (never best)."""
        acc = self.read("val_acc", epoch, candidates)
        return np.where(np.isfinite(acc), acc, -np.inf)

    @property
    def spent(self) -> float:
        """Training passes paid for so far."""
        return float((self.paid * self.passes_per_epoch).sum())

    @property
    def full_cost(self) -> float:
        """Training passes of training every candidate to the end."""
        return float(self.full_epochs * self.passes_per_epoch.sum())

    @property
    def fraction(self) -> float:
        """:attr:`spent` over :attr:`full_cost`: the compute fraction a policy reports."""
        return self.spent / self.full_cost

    def epoch_budget(self, budget: float) -> float:
        """``budget`` (a fraction of :attr:`full_cost`) in candidate-epochs for planning.

        Each planned candidate-epoch is charged at the dearest candidate's passes per epoch,
        so a plan that fits in candidate-epochs fits in passes whichever candidates it
        ends up training (they differ when batch sizes leave different remainders).
        """
        return budget * self.full_cost / float(self.passes_per_epoch.max())

    def epochs_fraction(self, candidate_epochs: float) -> float:
        """The compute fraction that :meth:`epoch_budget` turns into ``candidate_epochs``."""
        return candidate_epochs * float(self.passes_per_epoch.max()) / self.full_cost


class PaidView(View):
    """The records of a full sweep, readable only up to each candidate's paid epoch.

    Args:
      sweep: records of every candidate trained to ``full_epochs``.
      full_epochs: the length of full training.
    """

    def __init__(self, sweep: SweepResult, full_epochs: int):
        self._full = sweep
        passes = sweep.array("passes_train", check_full_epochs(full_epochs))
        # training passes per epoch, from the first epoch a candidate recorded (a candidate
        # that diverged still cost its epochs: they are charged at the same rate)
        start = np.nan_to_num(sweep.initial("passes_train"))[:, None]
        steps = np.diff(np.concatenate([start, passes], axis=1), axis=1)
        per_epoch = np.where(steps > 0, steps, -np.inf).max(axis=1, initial=-np.inf)
        per_epoch[~np.isfinite(per_epoch)] = np.nan
        if not np.isfinite(per_epoch).any():
            raise CapjaxInputError("the records hold no passes_train; pass the records of a full sweep")
        # a candidate that diverged before its first epoch is charged like the dearest other
        # each epoch evaluates every validation and test example once (a cost, not a result)
        evals = sweep.initial("passes_eval")
        super().__init__(sweep.names, full_epochs, np.where(np.isfinite(per_epoch), per_epoch, np.nanmax(per_epoch)),
                         int(np.nanmax(evals)) if np.isfinite(evals).any() else None)

    def _sweep(self) -> SweepResult:
        return self._full

    def final_truth(self) -> np.ndarray:
        """``(C,)`` final *test* accuracy, the truth a policy is scored on and never reads."""
        return self._full.array("test_acc", self.full_epochs)[:, -1]


def smallest_epochs(n_candidates: int, full_epochs: int) -> int:
    """Candidate-epochs of the smallest selection: two candidates one epoch each, the better to
    the end, ``full + 1`` (:func:`~capjax.selection.policies.fitted_pool`); ``full`` for a
    single candidate."""
    return full_epochs + min(n_candidates, 2) - 1


def smallest_budget(n_candidates: int, full_epochs: int) -> float:
    """The smallest compute fraction that selects at all, :func:`smallest_epochs` over ``N full``:
    ``(full + 1) / (N * full)``, 8.6% for 12 candidates of 30 epochs."""
    return smallest_epochs(n_candidates, full_epochs) / (n_candidates * full_epochs)
