"""Workflows: the jobs the command line runs, as functions callable from Python.

``select`` ranks a zoo from a few early epochs (``capjax select``); ``bench`` scores every
predictor on one zoo (``capjax bench``).
"""

from capjax.workflows import bench, select
from capjax.workflows.bench import bench as run_bench
from capjax.workflows.select import select_predictors, select_zoo

__all__ = ["bench", "run_bench", "select", "select_predictors", "select_zoo"]
