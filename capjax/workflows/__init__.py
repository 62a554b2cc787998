"""Workflows: the jobs the command line runs, as functions callable from Python.

``select`` chooses the best of a zoo under a compute budget and trains it (``capjax
select``), on a ``live`` view that trains for real, and leaves a ``report``; ``bench``
scores every predictor on one zoo (``capjax bench``).
"""

from capjax.workflows import bench, live, report, select
from capjax.workflows.bench import bench as run_bench
from capjax.workflows.live import LiveView
from capjax.workflows.report import load_params
from capjax.workflows.select import select_predictors, select_zoo

__all__ = ["LiveView", "bench", "live", "load_params", "report", "run_bench", "select", "select_predictors",
           "select_zoo"]
