"""capjax: which candidate model ends up best, from a few early epochs, with honest uncertainty.

The public API is re-exported here; each name lives in the module named after its concept.
"""

from capjax.bayes_ridge import (
    BayesRidgeFit,
    FinalAccuracyPrediction,
    Hyperprior,
    expected_regret,
    fit_bayes_ridge,
    predict_final_accuracy,
    predict_from_references,
    prob_best,
)
from capjax.capacitance import (
    Reduction,
    beta_eff,
    beta_eff_dense,
    network_reduction,
    reduce_strengths,
)
from capjax.dynamics import (
    DENSE_INTERACTIONS,
    INTERACTIONS,
    Strengths,
    coupling_strengths,
    hessian_strengths,
    stack_apply,
    velocity,
)
from capjax.graph import as_dense_stack, check_stack, line_graph_adjacency, neuron_adjacency
from capjax.probe import (
    NCProbe,
    NCProbeLinen,
    apply_probe,
    beta_eff_every,
    freeze_probe,
    init_probe,
)
from capjax.sharding import candidate_mesh, map_candidates
from capjax.validation import CapjaxInputError

__version__ = "0.1.0"

__all__ = [
    "DENSE_INTERACTIONS",
    "INTERACTIONS",
    "BayesRidgeFit",
    "CapjaxInputError",
    "FinalAccuracyPrediction",
    "Hyperprior",
    "NCProbe",
    "NCProbeLinen",
    "Reduction",
    "Strengths",
    "__version__",
    "apply_probe",
    "as_dense_stack",
    "beta_eff",
    "beta_eff_dense",
    "beta_eff_every",
    "candidate_mesh",
    "check_stack",
    "coupling_strengths",
    "expected_regret",
    "fit_bayes_ridge",
    "freeze_probe",
    "hessian_strengths",
    "init_probe",
    "line_graph_adjacency",
    "map_candidates",
    "network_reduction",
    "neuron_adjacency",
    "predict_final_accuracy",
    "predict_from_references",
    "prob_best",
    "reduce_strengths",
    "stack_apply",
    "velocity",
]
