"""Workflows: the jobs the command line runs, as functions callable from Python.

``select`` chooses the best of your own models or of a zoo under a compute budget and
trains it (``capjax.select``, ``capjax select``), on a ``live`` view that trains for real;
its ``result`` is a :class:`Selection`, saved by ``report``; ``bench`` scores every
predictor on one zoo (``capjax bench``).
"""

from capjax.workflows import bench, live, report, result, select
from capjax.workflows.bench import bench as run_bench
from capjax.workflows.live import LiveView
from capjax.workflows.report import load_params
from capjax.workflows.result import Selection, load_selection
from capjax.workflows.select import select_predictors, select_zoo

__all__ = ["LiveView", "Selection", "bench", "live", "load_params", "load_selection", "report", "result", "run_bench",
           "select", "select_predictors", "select_zoo"]
