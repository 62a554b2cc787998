"""Selection under a compute budget (docs/method.md §6): what a policy may read, the baselines, and capjax's engine.

``view`` shows a policy a sweep's records only up to what it has paid for (``PaidView``
replays a full sweep; reading an unpaid epoch raises); ``policies`` are the baselines at
equal compute: successive halving, Hyperband, uniform early accuracy, top-k after one
epoch, random; ``engine`` is capjax's own policy, what ``capjax select`` runs: rounds
directed by a joint posterior and the value of the next epochs.
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
