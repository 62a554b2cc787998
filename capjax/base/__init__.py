"""The floor every room stands on: input checks and errors, candidate sharding, a slope fit."""

from capjax.base.fit import slope
from capjax.base.sharding import CANDIDATE_AXIS, candidate_mesh, map_candidates, shard_candidates
from capjax.base.validation import CapjaxInputError, CapjaxWarning, check_accuracy, check_finite, is_concrete

__all__ = [
    "CANDIDATE_AXIS",
    "CapjaxInputError",
    "CapjaxWarning",
    "candidate_mesh",
    "check_accuracy",
    "check_finite",
    "is_concrete",
    "map_candidates",
    "shard_candidates",
    "slope",
]
