"""A tiny sweep run in a subprocess by the kill-and-resume test (tests/training/test_sweep.py).

Usage: python tests/_sweep_worker.py DATA_NPZ OUT_DIR CACHE_DIR

The data comes as an .npz (written by the test) so that each subprocess skips importing
scikit-learn.
"""

import sys

import numpy as np

from capjax.data import load_dataset
from capjax.training import Candidate, run_sweep

EPOCHS = 4


def candidates() -> list[Candidate]:
    """Two groups, one pretrained candidate: kills can land in pretraining or either group."""
    small = dict(family="mlp", depth=1, width=16, probe_widths=(8, 8), batch_size=32)
    return [
        Candidate("a-scratch", **small),
        Candidate("b-half-pre2", source="half", pretrain_epochs=2, seed=1, **small),
        Candidate("c-deep", family="mlp", depth=2, width=16, probe_widths=(8, 8),
                  batch_size=32, lr=3e-3),
    ]


def head_norm(params, ctx) -> float:
    return float(np.linalg.norm(params["head"]["kernel"]))


if __name__ == "__main__":
    data, out_dir, cache_dir = sys.argv[1:4]
    run_sweep(
        candidates(), load_dataset(f"npz:{data}"), epochs=EPOCHS, out_dir=out_dir,
        cache_dir=cache_dir, probe_batch=64, record_fns={"head_norm": head_norm},
        snapshot_params=True, progress=False,
    )
