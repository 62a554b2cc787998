"""Selection under a compute budget (docs/method.md §6): what a policy may read, and the baselines.

``view`` holds a full sweep's records behind what a policy has paid for (reading an unpaid
epoch raises); ``policies`` are the baselines at equal compute: successive halving,
Hyperband, uniform early accuracy, top-k after one epoch, random; ``engine`` is capjax's
own policy (a prototype): rounds directed by a joint posterior and the expected
opportunity loss.
"""

from capjax.selection import engine, policies, view
from capjax.selection.engine import engine as capjax_engine
from capjax.selection.policies import POLICIES, Outcome, hyperband, successive_halving, top_k_one_epoch, uniform
from capjax.selection.view import PaidView, UnpaidEpochError, View, smallest_budget

__all__ = [
    "POLICIES",
    "capjax_engine",
    "engine",
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
    "View",
]
