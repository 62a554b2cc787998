"""Every early predictor behind one interface, over the records of a sweep (SPEC 2.4, 3, 4).

A predictor is a pure function ``Task -> Forecast``: it sees the zoo's records up to the
budget (``Task.budget`` early epochs) and, for supervised predictors, the true final
accuracy of the *reference* candidates only (``Task.reference``). It returns one score per
candidate, higher meaning "predicted to end up better"; predictors that forecast accuracy
itself also return it with an interval and joint posterior draws.

A predictor that cannot score a candidate (too few points, a curve fit that does not
converge, a candidate that diverged) marks it NaN with the reason in
``Forecast.reasons``; it never raises for one bad candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from capjax import curves
from capjax.bayes_ridge import prob_best as _prob_best
from capjax.sweep import SweepResult


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
      options: predictor-specific settings (e.g. ``{"interaction": "hessian"}``).
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
        return None if self.samples is None else _prob_best(self.samples)


Predictor = Callable[[Task], Forecast]
PREDICTORS: dict[str, Predictor] = {}
"""Registered predictors by name; see :func:`register`."""


def register(name: str) -> Callable[[Predictor], Predictor]:
    """Decorator adding a predictor to :data:`PREDICTORS` under ``name``."""

    def deco(fn: Predictor) -> Predictor:
        PREDICTORS[name] = fn
        return fn

    return deco


def _from_scores(task: Task, score: np.ndarray, why: str, **kwargs: Any) -> Forecast:
    """Wrap per-candidate scores; NaN entries get ``why`` (or the divergence reason)."""
    score = np.asarray(score, dtype=float)
    reasons = {}
    for name, s, failed in zip(task.sweep.names, score, task.sweep.failed, strict=True):
        if not np.isfinite(s):
            traj = task.sweep.trajectories.get(name)
            reasons[name] = traj.reason if failed and traj is not None and traj.reason else why
    return Forecast(tuple(task.sweep.names), np.where(np.isfinite(score), score, np.nan), reasons=reasons, **kwargs)


def _with_reasons(
    task: Task, forecast: Forecast, reasons: Mapping[str, str], *, keep_divergence: bool = True
) -> Forecast:
    """``forecast`` with ``reasons[name]`` in place of the generic reason of each NaN candidate.

    Candidates with a finite score get no reason. A diverged candidate keeps the reason
    :func:`_from_scores` gave it (its divergence) unless ``keep_divergence`` is False.
    """
    merged = dict(forecast.reasons)
    for name, failed in zip(task.sweep.names, task.sweep.failed, strict=True):
        if name in merged and name in reasons and not (failed and keep_divergence):
            merged[name] = reasons[name]
    return dataclasses.replace(forecast, reasons=merged)


@register("early_acc")
def early_acc(task: Task) -> Forecast:
    """VAccES: validation accuracy at the budget (SPEC 4)."""
    return _from_scores(
        task, curves.early_val_accuracy(task.early("val_acc"), task.budget), "no accuracy at the budget"
    )


@register("sovl")
def sovl(task: Task) -> Forecast:
    """Minus the sum of validation losses over the budget (SPEC 4)."""
    return _from_scores(task, curves.sovl(task.early("val_loss"), task.budget), "missing validation loss")


@register("tse")
def tse(task: Task) -> Forecast:
    """Training speed: minus the sum of epoch-mean training losses (Ru et al.; SPEC 4)."""
    return _from_scores(task, curves.tse(task.early("train_loss"), task.budget), "missing training loss")


@register("tse_e")
def tse_e(task: Task) -> Forecast:
    """TSE over the last ``E`` epochs of the budget (default ``E = ceil(budget / 2)``)."""
    e = int(task.options.get("E", -(-task.budget // 2)))
    return _from_scores(task, curves.tse_e(task.early("train_loss"), task.budget, e), "missing training loss")


@register("tse_ema")
def tse_ema(task: Task) -> Forecast:
    """Exponentially weighted TSE, recent epochs heaviest (``gamma`` option, default 0.9)."""
    gamma = float(task.options.get("gamma", 0.9))
    return _from_scores(task, curves.tse_ema(task.early("train_loss"), task.budget, gamma), "missing training loss")


@register("curve")
def curve(task: Task) -> Forecast:
    """Learning-curve extrapolation to the final epoch, families combined (Domhan et al.)."""
    if task.budget < 2:
        return _from_scores(task, np.full(len(task.sweep.names), np.nan), "curve fitting needs >= 2 epochs")
    fits = curves.extrapolate_curve(task.early("val_acc"), task.full_epochs)
    value = np.array([f.value for f in fits])
    out = _from_scores(task, value, "every curve family failed", mean=value)
    # a fit's own reason wins even over a divergence (e.g. "only 1 finite epoch(s)")
    reasons = {name: fit.reason for name, fit in zip(task.sweep.names, fits, strict=True) if fit.reason}
    return _with_reasons(task, out, reasons, keep_divergence=False)


def _beta_forecast(task: Task, interaction: str) -> Forecast:
    """Per-candidate Bayesian ridge of accuracy on beta_eff, read at beta* = 0 (SPEC 2.4).

    The observations are the pairs (beta_eff(t), val_acc(t)) at epochs 0..budget; epoch 0
    is the pretrained backbone with its fresh head, before any fine-tuning step.
    """
    from capjax.predict import predict_final

    field = f"beta_{interaction}"
    pred = predict_final(
        task.early(field, initial=True),
        task.early("val_acc", initial=True),
        method=task.options.get("method", "fast"),
        level=float(task.options.get("level", 0.9)),
        key=task.seed,
    )
    samples = np.where(pred.valid[None, :], pred.samples, -np.inf)
    out = _from_scores(
        task,
        pred.mean,
        f"too few distinct finite {field} points",
        mean=pred.mean,
        lower=pred.lower,
        upper=pred.upper,
        samples=samples,
        level=pred.level,
    )
    # pred.reasons covers the invalid candidates only, whose mean is NaN
    return _with_reasons(task, out, {task.sweep.names[c]: why for c, why in pred.reasons.items()})


@register("beta_coupling")
def beta_coupling(task: Task) -> Forecast:
    """The paper's predictor with the ``coupling`` interaction: extrapolate to beta_eff = 0."""
    return _beta_forecast(task, "coupling")


@register("beta_hessian")
def beta_hessian(task: Task) -> Forecast:
    """The paper's predictor with the ``hessian`` interaction: extrapolate to beta_eff = 0."""
    return _beta_forecast(task, "hessian")
