"""Rescore the 12 bench runs from their recorded full sweeps, on the final *test* accuracy.

Usage: ``python benchmarks/rescore_bench.py [--records A/records.jsonl.gz ...]``

``capjax bench`` sweeps a zoo and scores every predictor; the sweeps of
``benchmarks/record_sweeps.py`` are the same zoos, seeds and data, recorded with every
signal at every epoch, so the scoring (:func:`capjax.workflows.bench.score_sweep`) can run
on them without training again. It rewrites each run's ``scores.json``, ``table.md`` and
figures. The recorded sweeps keep no weight snapshots: ``ph_dim``, the one predictor that
reads them, fails every candidate here with that reason.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capjax.predictors import PREDICTORS  # noqa: E402
from capjax.records import load_recorded  # noqa: E402
from capjax.scoring.protocol import BUDGETS_PERCENT  # noqa: E402
from capjax.workflows.bench import score_sweep  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def rescore(path: Path) -> None:
    """Score every predictor on the recorded run at ``path``; writes beside it."""
    zoo, data, _, full, seed = path.parent.name.split("-")
    score_sweep(load_recorded(path), path.parent, zoo=zoo, data=data, full_epochs=int(full[1:]),
                percents=[float(p) for p in BUDGETS_PERCENT], predictors=sorted(PREDICTORS),
                seed=int(seed[1:]), progress=False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", nargs="*", type=Path, default=None)
    args = p.parse_args()
    paths = args.records or sorted(RESULTS.glob("*/records.jsonl.gz"))
    if len(paths) > 1:  # one process per run, as record_sweeps.py does, to bound compiled programs
        for path in paths:
            subprocess.run([sys.executable, __file__, "--records", str(path)], check=True)
        return 0
    rescore(paths[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
