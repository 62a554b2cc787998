"""Figures: matplotlib's object API on demand, never a global backend."""

from capjax.plots.figures import (
    plot_learning_curves,
    plot_p_best,
    plot_predicted_vs_true,
    plot_predictions,
    plot_score_vs_budget,
    plot_trajectories,
)

__all__ = [
    "plot_learning_curves",
    "plot_p_best",
    "plot_predicted_vs_true",
    "plot_predictions",
    "plot_score_vs_budget",
    "plot_trajectories",
]
