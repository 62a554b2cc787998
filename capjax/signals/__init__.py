"""Pure per-candidate signals: the baselines and the other graph views (docs/method.md §3, §4).

Each module is one concept and a set of pure functions of a learning curve, a parameter
pytree or a batch of features: ``curves`` (early accuracy, training speed, learning-curve
extrapolation), ``transferability`` (LogME, H-score, TransRate), ``zerocost`` (proxies at
initialisation), ``spectral`` (power-law alpha), ``strength`` (La Malfa), ``rolled``
(Vahedian), ``fractal`` (box counting) and ``topology`` (PH dimension, l2 norm).
"""

from capjax.signals import (
    curves,
    fractal,
    rolled,
    spectral,
    strength,
    topology,
    transferability,
    zerocost,
)
from capjax.signals.curves import (
    CurveFit,
    curve_extrapolation,
    early_val_accuracy,
    extrapolate_curve,
    sovl,
    tse,
    tse_e,
    tse_ema,
)
from capjax.signals.fractal import box_counting_dimension, fractal_dimension, fractal_features, roughness
from capjax.signals.rolled import (
    eigenvector_centrality,
    rolled_adjacency,
    snapshot_features,
    temporal_features,
    weighted_degree,
)
from capjax.signals.spectral import layer_alphas, mean_alpha
from capjax.signals.strength import layer_fluctuation, node_strengths, strength_features, symmetric_kl
from capjax.signals.topology import minimum_spanning_tree, ph_dimension, weight_l2_norm
from capjax.signals.transferability import h_score, logme, transrate
from capjax.signals.zerocost import cross_entropy, grad_norm, jacov, nwot, snip, synflow

__all__ = [
    "CurveFit",
    "box_counting_dimension",
    "cross_entropy",
    "curve_extrapolation",
    "curves",
    "early_val_accuracy",
    "eigenvector_centrality",
    "extrapolate_curve",
    "fractal",
    "fractal_dimension",
    "fractal_features",
    "grad_norm",
    "h_score",
    "jacov",
    "layer_alphas",
    "layer_fluctuation",
    "logme",
    "mean_alpha",
    "minimum_spanning_tree",
    "node_strengths",
    "nwot",
    "ph_dimension",
    "rolled",
    "rolled_adjacency",
    "roughness",
    "snapshot_features",
    "snip",
    "sovl",
    "spectral",
    "strength",
    "strength_features",
    "symmetric_kl",
    "synflow",
    "temporal_features",
    "topology",
    "transferability",
    "transrate",
    "tse",
    "tse_e",
    "tse_ema",
    "weight_l2_norm",
    "weighted_degree",
    "zerocost",
]
