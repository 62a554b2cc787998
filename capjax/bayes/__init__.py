"""Bayesian prediction of final accuracy and the decision it supports (docs/method.md §2.4).

``ridge`` is the model (Gaussian algebra, evidence maximisation, NumPyro's NUTS over the
precisions); ``predict`` its one front door, :func:`predict_final`, and its one result
type, :class:`Prediction`; ``regression`` the cross-candidate fits; ``decision`` P(best),
expected regret and the one :class:`Ranking`.
"""

from capjax.bayes import decision, predict, regression, ridge
from capjax.bayes.decision import Ranking, expected_regret, plot_ranking, prob_best, rank, ranking
from capjax.bayes.predict import NUTS_MAX_CANDIDATES, Prediction, predict_final
from capjax.bayes.regression import BayesRidgeFit, fit_bayes_ridge, predict_from_references, regression_draws
from capjax.bayes.ridge import Hyperprior

__all__ = [
    "NUTS_MAX_CANDIDATES",
    "BayesRidgeFit",
    "Hyperprior",
    "Prediction",
    "Ranking",
    "decision",
    "expected_regret",
    "fit_bayes_ridge",
    "plot_ranking",
    "predict",
    "predict_final",
    "predict_from_references",
    "prob_best",
    "rank",
    "ranking",
    "regression",
    "regression_draws",
    "ridge",
]
