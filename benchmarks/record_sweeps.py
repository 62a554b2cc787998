"""Full-recording sweeps for the policy benchmark: every candidate to the end, every signal every epoch.

Usage: ``python benchmarks/record_sweeps.py [--runs hyper-digits-s0,...]``

Each run is one of the 28 recorded zoos (``{hyper,transfer} x {digits,mnist1d} x seeds 0-6``;
50 full epochs on digits, 30 on MNIST-1D, 60 candidates). Unlike ``capjax bench``, which
records the signals only up to its largest budget, the sweep records beta_eff of both
interactions and every signal of :data:`capjax.records.SIGNAL_FIELDS` at every epoch, so
that a selection policy can be simulated on the records, reading only the epochs it paid
for. The records (no weights) are written compressed to
``benchmarks/results/<zoo>-<data>-n60-e<E>-s<seed>/records.jsonl.gz``; the sweep itself
goes under ``--work`` and resumes if interrupted.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capjax.data import load_dataset  # noqa: E402
from capjax.records import RECORDS_FILE  # noqa: E402
from capjax.training import make_zoo, record_fns, run_sweep  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FULL_EPOCHS = {"digits": 50, "mnist1d": 30}
RUNS = [f"{z}-{d}-s{s}" for s in range(7) for d in ("digits", "mnist1d") for z in ("hyper", "transfer")]


def record(run: str, work: Path) -> Path:
    """Sweep one run to the end with every signal at every epoch; return its records.jsonl.gz."""
    zoo, data, seed = run.split("-")
    seed = int(seed[1:])
    full = FULL_EPOCHS[data]
    tag = f"{zoo}-{data}-n60-e{full}-s{seed}"
    out = work / tag
    run_sweep(
        make_zoo(zoo, data, 60, seed=seed),
        load_dataset(data, seed=seed),
        epochs=full,
        out_dir=out,
        interactions=("coupling", "hessian"),
        record_fns=record_fns(),
        progress=False,
    )
    target = RESULTS / tag / "records.jsonl.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(out / RECORDS_FILE, "rb") as src, gzip.GzipFile(target, "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated runs (default: all 28)")
    p.add_argument("--work", type=Path, default=Path("/tmp/capjax-record-sweeps"))
    args = p.parse_args()
    runs = args.runs.split(",")
    if len(runs) > 1:
        # one process per run: the programs XLA compiles for every zoo's shapes pile up in one
        # process until compilation runs out of memory (seen after four runs on 24 GiB)
        for run in runs:
            subprocess.run([sys.executable, __file__, "--runs", run, "--work", str(args.work)], check=True)
        return 0
    t0 = time.perf_counter()
    target = record(runs[0], args.work)
    print(f"{runs[0]}: {time.perf_counter() - t0:.0f} s -> {target} ({target.stat().st_size / 1e6:.2f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
