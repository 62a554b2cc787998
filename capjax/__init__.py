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
    regression_draws,
)
from capjax.capacitance import (
    Reduction,
    beta_eff,
    beta_eff_dense,
    network_reduction,
    reduce_strengths,
)
from capjax.curves import (
    CurveFit,
    curve_extrapolation,
    early_val_accuracy,
    extrapolate_curve,
    sovl,
    tse,
    tse_e,
    tse_ema,
)
from capjax.data import Dataset, batch_indices, batches, load_dataset
from capjax.dynamics import (
    DENSE_INTERACTIONS,
    INTERACTIONS,
    Strengths,
    coupling_strengths,
    hessian_strengths,
    stack_apply,
    velocity,
)
from capjax.fractal import box_counting_dimension, fractal_dimension, fractal_features, roughness
from capjax.graph import as_dense_stack, as_layer_stack, check_stack, line_graph_adjacency, neuron_adjacency
from capjax.predict import Prediction, Ranking, plot_ranking, predict_final, rank
from capjax.predictors import PREDICTORS, Forecast, Task, register
from capjax.probe import (
    NCProbe,
    NCProbeLinen,
    apply_probe,
    beta_eff_every,
    freeze_probe,
    init_probe,
)
from capjax.rolled import (
    eigenvector_centrality,
    rolled_adjacency,
    snapshot_features,
    temporal_features,
    weighted_degree,
)
from capjax.scoring import (
    bootstrap_interval,
    interval_coverage,
    kendall_tau,
    precision_at_k,
    score_predictor,
    spearman_rho,
    top1_regret,
)
from capjax.sharding import candidate_mesh, map_candidates, shard_candidates
from capjax.spectral import layer_alphas, mean_alpha
from capjax.strength import layer_fluctuation, node_strengths, strength_features, symmetric_kl
from capjax.sweep import SweepContext, SweepResult, Trajectory, load_records, load_snapshots, load_sweep, run_sweep
from capjax.topology import minimum_spanning_tree, ph_dimension, weight_l2_norm
from capjax.transferability import h_score, logme, transrate
from capjax.validation import CapjaxInputError
from capjax.zerocost import grad_norm, jacov, nwot, snip, synflow
from capjax.zoo import Candidate, hyperparameter_zoo, transfer_zoo

__version__ = "0.1.0"

__all__ = [
    "Prediction",
    "Ranking",
    "plot_ranking",
    "predict_final",
    "rank",
    "shard_candidates",
    "BayesRidgeFit",
    "Candidate",
    "CapjaxInputError",
    "CurveFit",
    "DENSE_INTERACTIONS",
    "Dataset",
    "FinalAccuracyPrediction",
    "Forecast",
    "Hyperprior",
    "INTERACTIONS",
    "NCProbe",
    "NCProbeLinen",
    "PREDICTORS",
    "Reduction",
    "Strengths",
    "SweepContext",
    "SweepResult",
    "Task",
    "Trajectory",
    "__version__",
    "apply_probe",
    "as_dense_stack",
    "as_layer_stack",
    "batch_indices",
    "batches",
    "beta_eff",
    "beta_eff_dense",
    "beta_eff_every",
    "bootstrap_interval",
    "box_counting_dimension",
    "candidate_mesh",
    "check_stack",
    "coupling_strengths",
    "curve_extrapolation",
    "early_val_accuracy",
    "eigenvector_centrality",
    "expected_regret",
    "extrapolate_curve",
    "fit_bayes_ridge",
    "fractal_dimension",
    "fractal_features",
    "freeze_probe",
    "grad_norm",
    "h_score",
    "hessian_strengths",
    "hyperparameter_zoo",
    "init_probe",
    "interval_coverage",
    "jacov",
    "kendall_tau",
    "layer_alphas",
    "layer_fluctuation",
    "line_graph_adjacency",
    "load_dataset",
    "load_records",
    "load_snapshots",
    "load_sweep",
    "logme",
    "map_candidates",
    "mean_alpha",
    "minimum_spanning_tree",
    "network_reduction",
    "neuron_adjacency",
    "node_strengths",
    "nwot",
    "ph_dimension",
    "precision_at_k",
    "predict_final_accuracy",
    "predict_from_references",
    "prob_best",
    "reduce_strengths",
    "register",
    "regression_draws",
    "rolled_adjacency",
    "roughness",
    "run_sweep",
    "score_predictor",
    "snapshot_features",
    "snip",
    "sovl",
    "spearman_rho",
    "stack_apply",
    "strength_features",
    "symmetric_kl",
    "synflow",
    "temporal_features",
    "top1_regret",
    "transfer_zoo",
    "transrate",
    "tse",
    "tse_e",
    "tse_ema",
    "velocity",
    "weight_l2_norm",
    "weighted_degree",
]
