"""The science: layered graphs, training as edge dynamics, the mean-field reduction, the probe.

docs/method.md §2. ``graph`` reads a dense stack as a layered digraph and builds its line
graph; ``dynamics`` gives the interaction strengths of gradient flow on it; ``reduction``
turns them into ``beta_eff``; ``probe`` is the frozen instrument beta_eff is measured on.
"""

from capjax.capacitance import dynamics, graph, probe, reduction
from capjax.capacitance.dynamics import (
    DENSE_INTERACTIONS,
    INTERACTIONS,
    Strengths,
    coupling_strengths,
    forward,
    hessian_strengths,
    stack_apply,
    velocity,
)
from capjax.capacitance.graph import (
    as_dense_stack,
    as_layer_stack,
    check_stack,
    line_graph_adjacency,
    neuron_adjacency,
)
from capjax.capacitance.probe import (
    DEFAULT_WIDTHS,
    NCProbe,
    NCProbeLinen,
    apply_probe,
    beta_eff_every,
    freeze_probe,
    init_probe,
)
from capjax.capacitance.reduction import Reduction, beta_eff, beta_eff_dense, network_reduction, reduce_strengths

__all__ = [
    "DEFAULT_WIDTHS",
    "DENSE_INTERACTIONS",
    "INTERACTIONS",
    "NCProbe",
    "NCProbeLinen",
    "Reduction",
    "Strengths",
    "apply_probe",
    "as_dense_stack",
    "as_layer_stack",
    "beta_eff",
    "beta_eff_dense",
    "beta_eff_every",
    "check_stack",
    "coupling_strengths",
    "dynamics",
    "forward",
    "freeze_probe",
    "graph",
    "hessian_strengths",
    "init_probe",
    "line_graph_adjacency",
    "network_reduction",
    "neuron_adjacency",
    "probe",
    "reduce_strengths",
    "reduction",
    "stack_apply",
    "velocity",
]
