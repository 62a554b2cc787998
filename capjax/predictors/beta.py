"""The paper's predictors: final accuracy from early beta_eff (docs/method.md §2.4).

* ``beta_<interaction>``: per candidate, the Bayesian ridge regression of accuracy on
  beta_eff over epochs 0..budget, read at beta_eff = 0 (:func:`capjax.bayes.predict_final`).
* ``beta_cross_<interaction>``: the cross-candidate alternative, one regression of the
  references' final accuracy on their beta_eff and accuracy at the budget
  (:func:`capjax.bayes.predict_from_references`).
"""

from __future__ import annotations

import numpy as np

from capjax.bayes.predict import predict_final, scatter_valid
from capjax.bayes.regression import predict_from_references
from capjax.predictors.registry import Forecast, Needs, Task, from_scores, register, with_reasons
from capjax.records.fields import beta_field

MIN_REFERENCES = 5
"""References with a finite beta_eff and accuracy at the budget the cross-candidate fit needs."""


def _beta_forecast(task: Task, interaction: str) -> Forecast:
    """Per-candidate Bayesian ridge of accuracy on beta_eff, read at beta* = 0 (docs/method.md §2.4).

    The observations are the pairs (beta_eff(t), val_acc(t)) at epochs 0..budget; epoch 0
    is the pretrained backbone with its fresh head, before any fine-tuning step.
    """
    field = beta_field(interaction)
    pred = predict_final(
        task.early(field, initial=True),
        task.early("val_acc", initial=True),
        method=task.options.get("method", "fast"),
        level=float(task.options.get("level", 0.9)),
        key=task.seed,
    )
    samples = np.where(pred.valid[None, :], pred.samples, -np.inf)
    out = from_scores(
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
    return with_reasons(task, out, {task.sweep.names[c]: why for c, why in pred.reasons.items()})


@register("beta_coupling", Needs(interactions=("coupling",)))
def beta_coupling(task: Task) -> Forecast:
    """The paper's predictor with the ``coupling`` interaction: extrapolate to beta_eff = 0."""
    return _beta_forecast(task, "coupling")


@register("beta_hessian", Needs(interactions=("hessian",)))
def beta_hessian(task: Task) -> Forecast:
    """The paper's predictor with the ``hessian`` interaction: extrapolate to beta_eff = 0."""
    return _beta_forecast(task, "hessian")


def _beta_cross(task: Task, interaction: str) -> Forecast:
    """The paper's cross-candidate regression on (beta_eff, accuracy) at the budget."""
    ref = np.isfinite(task.reference)
    beta, acc = task.early(beta_field(interaction)), task.early("val_acc")
    ok = np.isfinite(beta[:, -1]) & np.isfinite(acc[:, -1])
    fit_ref = ref & ok
    if fit_ref.sum() < MIN_REFERENCES:
        return from_scores(task, np.full(len(task.sweep.names), np.nan),
                           "too few references with a finite beta_eff at the budget")
    pred = predict_from_references(
        beta[ok], acc[ok], beta[fit_ref], acc[fit_ref], task.reference[fit_ref], key=task.seed
    )
    mean, lower, upper = (scatter_valid(v, ok) for v in (pred.mean, pred.lower, pred.upper))
    samples = np.where(ok, scatter_valid(pred.samples, ok), -np.inf)  # no finite beta_eff: never best
    return from_scores(
        task, mean, "no finite beta_eff at the budget", mean=mean, lower=lower, upper=upper, samples=samples
    )


@register("beta_cross_coupling", Needs(interactions=("coupling",), references=MIN_REFERENCES))
def beta_cross_coupling(task: Task) -> Forecast:
    """Cross-candidate regression on beta_eff (coupling interaction) and accuracy."""
    return _beta_cross(task, "coupling")


@register("beta_cross_hessian", Needs(interactions=("hessian",), references=MIN_REFERENCES))
def beta_cross_hessian(task: Task) -> Forecast:
    """Cross-candidate regression on beta_eff (hessian interaction) and accuracy."""
    return _beta_cross(task, "hessian")
