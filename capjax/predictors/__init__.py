"""Predictors: ``Task -> Forecast``, every one registered with what it needs.

Importing this room registers every predictor: :data:`PREDICTORS` is whole on import.
"""

from capjax.predictors import beta, combined, curve, registry, signal, supervised
from capjax.predictors.registry import PREDICTORS, Forecast, Needs, PredictorSpec, Task, needs_of, register

__all__ = [
    "PREDICTORS",
    "Forecast",
    "Needs",
    "PredictorSpec",
    "Task",
    "beta",
    "combined",
    "curve",
    "needs_of",
    "register",
    "registry",
    "signal",
    "supervised",
]
