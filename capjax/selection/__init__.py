"""Selection under a compute budget (docs/method.md §6): what a policy may read, and the baselines.

``view`` holds a full sweep's records behind what a policy has paid for (reading an unpaid
epoch raises); ``policies`` are the baselines at equal compute: successive halving,
Hyperband, uniform early accuracy, top-k after one epoch, random.
"""

from capjax.selection import policies, view
from capjax.selection.policies import POLICIES, Outcome, hyperband, successive_halving, top_k_one_epoch, uniform
from capjax.selection.view import PaidView, UnpaidEpochError, smallest_budget

__all__ = [
    "POLICIES",
    "Outcome",
    "PaidView",
    "UnpaidEpochError",
    "hyperband",
    "policies",
    "smallest_budget",
    "successive_halving",
    "top_k_one_epoch",
    "uniform",
    "view",
]
