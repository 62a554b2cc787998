"""Predictors from the learning curve alone (docs/method.md §4): every sweep records it."""

from __future__ import annotations

import numpy as np

from capjax.predictors.registry import Forecast, Needs, Task, from_scores, register, with_reasons
from capjax.signals import curves


@register("early_acc")
def early_acc(task: Task) -> Forecast:
    """VAccES: validation accuracy at the budget (docs/method.md §4)."""
    return from_scores(
        task, curves.early_val_accuracy(task.early("val_acc"), task.budget), "no accuracy at the budget"
    )


@register("sovl")
def sovl(task: Task) -> Forecast:
    """Minus the sum of validation losses over the budget (docs/method.md §4)."""
    return from_scores(task, curves.sovl(task.early("val_loss"), task.budget), "missing validation loss")


@register("tse")
def tse(task: Task) -> Forecast:
    """Training speed: minus the sum of epoch-mean training losses (Ru et al.; docs/method.md §4)."""
    return from_scores(task, curves.tse(task.early("train_loss"), task.budget), "missing training loss")


@register("tse_e")
def tse_e(task: Task) -> Forecast:
    """TSE over the last ``E`` epochs of the budget (default ``E = ceil(budget / 2)``)."""
    e = int(task.options.get("E", -(-task.budget // 2)))
    return from_scores(task, curves.tse_e(task.early("train_loss"), task.budget, e), "missing training loss")


@register("tse_ema")
def tse_ema(task: Task) -> Forecast:
    """Exponentially weighted TSE, recent epochs heaviest (``gamma`` option, default 0.9)."""
    gamma = float(task.options.get("gamma", 0.9))
    return from_scores(task, curves.tse_ema(task.early("train_loss"), task.budget, gamma), "missing training loss")


@register("curve", Needs(min_budget=2))
def curve(task: Task) -> Forecast:
    """Learning-curve extrapolation to the final epoch, families combined (Domhan et al.)."""
    if task.budget < 2:
        return from_scores(task, np.full(len(task.sweep.names), np.nan), "curve fitting needs >= 2 epochs")
    fits = curves.extrapolate_curve(task.early("val_acc"), task.full_epochs)
    value = np.array([f.value for f in fits])
    out = from_scores(task, value, "every curve family failed", mean=value)
    # a diverged candidate reports its divergence, not what it left the fit (e.g. "only 1 finite epoch(s)")
    reasons = {name: fit.reason for name, fit in zip(task.sweep.names, fits, strict=True) if fit.reason}
    return with_reasons(task, out, reasons)
