"""Supervised predictors on per-epoch graph features (docs/method.md §3): Vahedian, La Malfa.

A random-forest regressor of final accuracy on a candidate's per-epoch records over epochs
1..budget, fitted on the reference candidates (:func:`supervised_forecast`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capjax.predictors.registry import Forecast, Needs, Task, from_scores, register
from capjax.predictors.signal import reference_truth
from capjax.records.fields import ROLLED_FIELDS, STRENGTH_FIELDS

MIN_SUPERVISED_REFERENCES = 5
"""Reference candidates with finite truth and features needed to fit a regressor."""

N_TREES = 200


def supervised_forecast(task: Task, fields: Sequence[str], what: str) -> Forecast:
    """Regress final accuracy on per-epoch records over epochs 1..budget (docs/method.md §3).

    Each candidate's feature vector is ``[field_1(1..T), field_2(1..T), ...]`` with
    ``T = task.budget``, read from the sweep's records (no snapshots needed). A
    ``RandomForestRegressor`` (:data:`N_TREES` trees, ``random_state=task.seed``; chosen
    because it needs no feature scaling and copes with few, heterogeneous candidates) is
    fitted on the reference candidates and predicts every candidate with finite
    features; score and ``mean`` are the prediction.

    Args:
      task: the task; its ``reference`` needs :data:`MIN_SUPERVISED_REFERENCES`
        candidates with finite truth and features, else every candidate is NaN.
      fields: the record fields.
      what: the predictor's name, for the reasons.
    """
    truth = reference_truth(task)
    x = np.concatenate([task.early(f) for f in fields], axis=1)
    usable = np.isfinite(x).all(axis=1)
    train = usable & np.isfinite(truth)
    pred = np.full(len(truth), np.nan)
    if train.sum() < MIN_SUPERVISED_REFERENCES:
        why = (
            f"{what} is fitted on reference candidates and needs >= "
            f"{MIN_SUPERVISED_REFERENCES} with final accuracy and complete features; "
            f"{train.sum()} given (pass Task.reference)"
        )
        return from_scores(task, pred, why)
    from sklearn.ensemble import RandomForestRegressor  # here: scikit-learn is heavy to import

    model = RandomForestRegressor(n_estimators=N_TREES, random_state=task.seed, n_jobs=1)
    model.fit(x[train], truth[train])
    pred[usable] = model.predict(x[usable])
    why = f"missing {', '.join(fields)} in epochs 1..{task.budget}"
    return from_scores(task, pred, why, mean=pred)


@register("vahedian", Needs(fields=ROLLED_FIELDS, references=MIN_SUPERVISED_REFERENCES))
def vahedian(task: Task) -> Forecast:
    """Vahedian et al.: rolled-graph degree and centrality summaries over epochs 1..T.

    Their per-node features are summarised here per graph (mean and std over nodes) so
    that candidates of any width and depth share one regressor.
    """
    return supervised_forecast(task, ROLLED_FIELDS, "vahedian")


@register("la_malfa", Needs(fields=STRENGTH_FIELDS, references=MIN_SUPERVISED_REFERENCES))
def la_malfa(task: Task) -> Forecast:
    """La Malfa et al.'s strength and fluctuation over epochs 1..T into a regressor.

    They compare populations of networks (KDE, symmetrised KL) rather than predict one
    network's accuracy; capjax feeds the same features to the regressor of
    :func:`supervised_forecast`.
    """
    return supervised_forecast(task, STRENGTH_FIELDS, "la_malfa")
