"""Scoring: how good a predictor is, measured on candidates it was not tuned on (docs/method.md §5).

``metrics`` holds the measures (Kendall tau, Spearman, top-1 regret, precision@k, interval
coverage, bootstrap intervals); ``protocol`` the benchmark's development/test protocol.
"""

from capjax.scoring import metrics, protocol
from capjax.scoring.metrics import (
    bootstrap_interval,
    interval_coverage,
    kendall_tau,
    precision_at_k,
    score_predictor,
    spearman_rho,
    top1_regret,
)
from capjax.scoring.protocol import budget_epochs, evaluate, markdown_table, split_candidates

__all__ = [
    "bootstrap_interval",
    "budget_epochs",
    "evaluate",
    "interval_coverage",
    "kendall_tau",
    "markdown_table",
    "metrics",
    "precision_at_k",
    "protocol",
    "score_predictor",
    "spearman_rho",
    "split_candidates",
    "top1_regret",
]
