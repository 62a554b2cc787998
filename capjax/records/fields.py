"""The vocabulary of a sweep's records: every field a record line may hold.

The training room writes these fields and the predictors read them; both import the names
from here, so neither depends on the other. One line per live candidate and epoch (epoch 0
is the model before fine-tuning; docs/method.md §2.3):

* ``train_loss`` (null at epoch 0), ``val_loss``, ``val_acc``, ``test_loss``,
  ``test_acc``: losses are mean cross-entropy in nats, accuracies fractions.
* ``beta_<interaction>``: beta_eff of the probe for each interaction recorded, with
  ``lr = 1`` (beta_eff is linear in the learning rate).
* ``passes_train``, ``passes_eval``, ``passes_beta``: cumulative example passes.
* ``wall_s``, ``wall_beta_s``: seconds of training and evaluation, and of beta_eff.
* the signal fields of :data:`SIGNAL_FIELDS`, when the sweep records them.

A candidate that diverges gets one line ``{"name", "epoch", "failed": true, "reason"}``
and no lines after it.
"""

from __future__ import annotations

CURVE_FIELDS = ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc")
"""The learning curve, recorded for every candidate and epoch."""
PASS_FIELDS = ("passes_train", "passes_eval", "passes_beta")
WALL_FIELDS = ("wall_s", "wall_beta_s")
"""Record fields that differ between otherwise identical runs."""
BUILTIN_FIELDS = frozenset({"name", "epoch", "failed", "reason", *CURVE_FIELDS, *PASS_FIELDS, *WALL_FIELDS})
"""Fields every sweep writes; ``beta_*`` fields are reserved for beta_eff too."""

L2_FIELDS = ("l2_norm",)
SPECTRAL_FIELDS = ("spectral_alpha",)
STRENGTH_FIELDS = ("strength", "fluctuation")
ROLLED_FIELDS = (
    "rolled_degree_mean",
    "rolled_degree_std",
    "rolled_centrality_mean",
    "rolled_centrality_std",
)
FRACTAL_FIELDS = ("fractal",)
TRANSFERABILITY_FIELDS = ("logme", "hscore", "transrate")
ZERO_COST_FIELDS = ("zc_grad_norm", "zc_snip", "zc_synflow", "zc_jacov", "zc_nwot")
"""Zero-cost proxies: defined at initialisation, so recorded at epoch 0 only."""

SIGNAL_FIELDS: tuple[str, ...] = (
    *L2_FIELDS,
    *SPECTRAL_FIELDS,
    *STRENGTH_FIELDS,
    *ROLLED_FIELDS,
    *FRACTAL_FIELDS,
    *TRANSFERABILITY_FIELDS,
    *ZERO_COST_FIELDS,
)
"""Every per-epoch signal a sweep can record (:mod:`capjax.training.recorders`), in order."""


def beta_field(interaction: str) -> str:
    """The record field of beta_eff with ``interaction``: ``"beta_" + interaction``."""
    return f"beta_{interaction}"
