"""Every early predictor behind one interface, over the records of a sweep (docs/method.md §2.4, §3, §4).

A predictor is a pure function ``Task -> Forecast``: it sees the zoo's records up to the
budget (``Task.budget`` early epochs) and, for supervised predictors, the true final
accuracy of the *reference* candidates only (``Task.reference``). It returns one score per
candidate, higher meaning "predicted to end up better"; predictors that forecast accuracy
itself also return it with an interval and joint posterior draws.

Each registered predictor is a :class:`PredictorSpec`: the function and what it
:class:`Needs` (record fields, beta_eff interactions, parameter snapshots, references, a
minimum budget). Callers read the needs to record exactly that (``capjax select``) or to
refuse at once; calling a spec whose needs the task does not meet fails every candidate
with the unmet need as the reason, instead of failing somewhere inside.

A predictor that cannot score a candidate (too few points, a curve fit that does not
converge, a candidate that diverged) marks it NaN with the reason in
``Forecast.reasons``; it never raises for one bad candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from capjax.bayes.decision import Ranking, prob_best, ranking
from capjax.records.fields import beta_field
from capjax.records.files import SNAPSHOT_DIR
from capjax.records.sweep import SweepResult


@dataclasses.dataclass(frozen=True)
class Task:
    """What a predictor may look at.

    Attributes:
      sweep: the zoo's records (only epochs ``0..budget`` may be read).
      budget: early epochs available, >= 1.
      full_epochs: the length of full training, where final accuracy is read.
      reference: ``(C,)`` true final accuracy of reference candidates, NaN elsewhere;
        None for unsupervised use (supervised predictors then fail every candidate).
      seed: for predictors that sample.
      options: predictor-specific settings (e.g. ``{"level": 0.8}``).
    """

    sweep: SweepResult
    budget: int
    full_epochs: int
    reference: np.ndarray | None = None
    seed: int = 0
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def early(self, field: str, *, initial: bool = False) -> np.ndarray:
        """``(C, budget)`` values of ``field`` over epochs 1..budget.

        With ``initial=True``, ``(C, budget + 1)`` starting at epoch 0 (the model before
        fine-tuning: pretrained backbone, fresh head).
        """
        early = self.sweep.array(field, self.budget)
        return np.concatenate([self.sweep.initial(field)[:, None], early], axis=1) if initial else early

    @property
    def n_references(self) -> int:
        """Reference candidates with a finite final accuracy."""
        return 0 if self.reference is None else int(np.isfinite(self.reference).sum())


@dataclasses.dataclass(frozen=True)
class Forecast:
    """One predictor's output for a zoo.

    Attributes:
      names: candidate names, ``(C,)``.
      score: ``(C,)`` higher = predicted better; NaN where the predictor failed.
      mean, lower, upper: ``(C,)`` predicted final accuracy and its interval, for
        predictors that forecast accuracy (None otherwise).
      samples: ``(S, C)`` joint draws of final accuracy (None without a posterior).
      level: nominal coverage of ``[lower, upper]``.
      reasons: candidate name -> why its score is NaN.
    """

    names: tuple[str, ...]
    score: np.ndarray
    mean: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    samples: np.ndarray | None = None
    level: float = 0.9
    reasons: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def prob_best(self) -> np.ndarray | None:
        """P(candidate ends up best) from the joint draws; None without draws."""
        return None if self.samples is None else prob_best(self.samples)

    def ranking(self) -> Ranking:
        """The candidates ranked by score (:func:`capjax.bayes.decision.ranking`)."""
        return ranking(
            self.names,
            self.score,
            mean=self.mean,
            lower=self.lower,
            upper=self.upper,
            samples=self.samples,
            level=self.level,
            reasons=self.reasons,
        )


@dataclasses.dataclass(frozen=True)
class Needs:
    """What a predictor reads beyond the learning curve, which every sweep records.

    Attributes:
      fields: signal record fields (:data:`capjax.records.fields.SIGNAL_FIELDS`).
      interactions: beta_eff interactions (record fields ``beta_<interaction>``).
      snapshots: per-epoch parameter snapshots (``run_sweep(snapshot_params=True)``).
      references: fully trained reference candidates (``Task.reference``) it fits on.
      min_budget: early epochs below which it scores no candidate.
      imputes: the fields and interactions are read when recorded and imputed when not
        (a sweep should record them, but the predictor runs without them).
    """

    fields: tuple[str, ...] = ()
    interactions: tuple[str, ...] = ()
    snapshots: bool = False
    references: int = 0
    min_budget: int = 1
    imputes: bool = False


Predictor = Callable[[Task], Forecast]


@dataclasses.dataclass(frozen=True)
class PredictorSpec:
    """A registered predictor: its name, its function and its :class:`Needs`.

    Calling the spec calls the function when the task meets the needs, and otherwise
    returns a forecast that fails every candidate with the unmet need as the reason.
    """

    name: str
    fn: Predictor
    needs: Needs = Needs()

    @property
    def description(self) -> str:
        """The first line of the function's docstring."""
        return (self.fn.__doc__ or self.name).strip().splitlines()[0]

    def unmet(self, task: Task) -> str | None:
        """Why ``task`` does not meet the needs (the first unmet one), or None."""
        recorded = {f for t in task.sweep.trajectories.values() for f in t.values}
        if self.needs.imputes:
            recorded.update(self.needs.fields, map(beta_field, self.needs.interactions))
        for interaction in self.needs.interactions:
            if beta_field(interaction) not in recorded:
                return (
                    f"{self.name} needs beta_eff with the {interaction!r} interaction, which the sweep "
                    f"did not record: run the sweep with interactions including {interaction!r}"
                )
        missing = [f for f in self.needs.fields if f not in recorded]
        if missing:
            return (
                f"{self.name} needs the record field(s) {missing}, which the sweep did not record: run it "
                f"with record_fns=capjax.training.record_fns({list(self.needs.fields)})"
            )
        if self.needs.snapshots and not (task.sweep.out_dir / SNAPSHOT_DIR).is_dir():
            return f"{self.name} needs per-epoch parameter snapshots: run the sweep with snapshot_params=True"
        if task.budget < self.needs.min_budget:
            return f"{self.name} needs a budget of >= {self.needs.min_budget} epochs ({task.budget} given)"
        if task.n_references < self.needs.references:
            return (
                f"{self.name} is fitted on fully trained reference candidates and needs >= "
                f"{self.needs.references}; {task.n_references} given (pass Task.reference)"
            )
        return None

    def __call__(self, task: Task) -> Forecast:
        why = self.unmet(task)
        if why is not None:
            return from_scores(task, np.full(len(task.sweep.names), np.nan), why)
        return self.fn(task)


PREDICTORS: dict[str, PredictorSpec] = {}
"""Registered predictors by name; see :func:`register`. Whole once ``capjax.predictors`` is imported."""


def register(name: str, needs: Needs = Needs()) -> Callable[[Predictor], Predictor]:
    """Decorator adding a predictor to :data:`PREDICTORS` under ``name`` with its ``needs``."""

    def deco(fn: Predictor) -> Predictor:
        PREDICTORS[name] = PredictorSpec(name, fn, needs)
        return fn

    return deco


def needs_of(names: Sequence[str]) -> Needs:
    """The union of the needs of the predictors ``names`` (what a sweep must record for all)."""
    specs = [PREDICTORS[n].needs for n in names]
    union = lambda attr: tuple(dict.fromkeys(x for s in specs for x in getattr(s, attr)))  # noqa: E731
    return Needs(
        fields=union("fields"),
        interactions=union("interactions"),
        snapshots=any(s.snapshots for s in specs),
        references=max((s.references for s in specs), default=0),
        min_budget=max((s.min_budget for s in specs), default=1),
    )


def from_scores(task: Task, score: np.ndarray, why: str, **kwargs: Any) -> Forecast:
    """Wrap per-candidate scores; NaN entries get ``why`` (or the divergence reason)."""
    score = np.asarray(score, dtype=float)
    reasons = {}
    for name, s, failed in zip(task.sweep.names, score, task.sweep.failed, strict=True):
        if not np.isfinite(s):
            traj = task.sweep.trajectories.get(name)
            reasons[name] = traj.reason if failed and traj is not None and traj.reason else why
    return Forecast(tuple(task.sweep.names), np.where(np.isfinite(score), score, np.nan), reasons=reasons, **kwargs)


def with_reasons(task: Task, forecast: Forecast, reasons: Mapping[str, str]) -> Forecast:
    """``forecast`` with ``reasons[name]`` in place of the generic reason of each NaN candidate.

    Candidates with a finite score get no reason. A diverged candidate keeps the reason
    :func:`from_scores` gave it: its divergence, not what it left a signal.
    """
    merged = dict(forecast.reasons)
    for name, failed in zip(task.sweep.names, task.sweep.failed, strict=True):
        if name in merged and name in reasons and not failed:
            merged[name] = reasons[name]
    return dataclasses.replace(forecast, reasons=merged)
