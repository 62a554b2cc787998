"""Scale in candidates: the hyperparameter zoo on digits, 2 epochs, at 10, 100 and 1,000 candidates.

Usage: ``python benchmarks/bench_scale.py [--sizes 10,100,1000] [--loop 24]``

Each size runs in its own process, so that its peak resident memory is its own. For each:

- wall seconds per candidate-epoch of the whole sweep (compilation included) and of its
  second epoch alone (the records' ``wall_s``: compiled, steady state);
- peak resident memory (``ru_maxrss``);
- the engine's decision step on that sweep (compiled; the first call, which compiles the
  regression once per run, is reported apart) (posterior and survivors' knowledge gradient,
  with every candidate at epoch 1 and a third at epoch 2, so the gain model is fitted)
  against the wall time of the training round it follows (one epoch of every candidate),
  the issue's 10% target.

And, side by side in one process, the vmapped sweep against a Python loop: the first
``--loop`` candidates of the zoo as one sweep, and as one sweep per candidate (the same
compiled per-candidate steps, which are cached by group).

Writes ``benchmarks/results/bench_scale.json`` and ``scale.png`` (seconds per
candidate-epoch against candidates). On the 2-core CPU these are ratios and trends; the
absolute times mean something only on an accelerator (``benchmarks/bench_gpu.sh``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._timing import RESULTS, write_json  # noqa: E402

EPOCHS = 2


def _sweep(candidates, dataset, out: Path):
    from capjax.training import run_sweep

    return run_sweep(candidates, dataset, epochs=EPOCHS, out_dir=out, interactions=(), progress=False)


def one_size(n: int) -> dict:
    """Sweep ``n`` hyperparameter candidates for :data:`EPOCHS` epochs and time a decision on it."""
    from capjax.data import load_dataset
    from capjax.selection import PaidView
    from capjax.selection.engine import GAMMAS, exponent_weights, posterior, survivors
    from capjax.training import make_zoo

    dataset = load_dataset("digits", seed=0)
    zoo = make_zoo("hyper", "digits", n, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sweep = _sweep(zoo, dataset, Path(tmp) / "sweep")
        wall = time.perf_counter() - t0
    view = PaidView(sweep, EPOCHS)
    epoch_wall = float(np.nansum(view._table("wall_s")[:, EPOCHS]))
    everyone = np.arange(n)
    view.train(everyone, 1)
    view.train(everyone[: max(8, n // 3)], 2)

    def decide() -> float:
        t0 = time.perf_counter()
        weights = exponent_weights(view)
        draws = posterior(view, 0, ("curve",), weights)
        survivors(view, draws, everyone, max(1, n // 3), 2, float(weights @ np.asarray(GAMMAS)))
        return time.perf_counter() - t0

    first = decide()  # compiles the regression: a run pays this once
    decision = min(decide() for _ in range(3))
    return {
        "candidates": n,
        "groups": len({c.group_key for c in zoo}),
        "sweep_s": wall,
        "s_per_candidate_epoch": wall / (n * EPOCHS),
        "steady_s_per_candidate_epoch": epoch_wall / n,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_decision_s": first,
        "decision_s": decision,
        "decision_over_round": decision / epoch_wall,
    }


def vmap_vs_loop(n: int) -> dict:
    """The first ``n`` candidates as one vmapped sweep and as ``n`` sweeps of one, in one process."""
    from capjax.data import load_dataset
    from capjax.training import make_zoo

    dataset = load_dataset("digits", seed=0)
    zoo = make_zoo("hyper", "digits", n, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        _sweep(zoo, dataset, Path(tmp) / "warm")  # compile every group once, for both
        t0 = time.perf_counter()
        _sweep(zoo, dataset, Path(tmp) / "vmapped")
        vmapped = time.perf_counter() - t0
        t0 = time.perf_counter()
        for c in zoo:
            _sweep([c], dataset, Path(tmp) / f"loop-{c.name}")
        loop = time.perf_counter() - t0
    return {"candidates": n, "groups": len({c.group_key for c in zoo}), "vmapped_s": vmapped, "loop_s": loop,
            "speedup_vmapped_over_loop": loop / vmapped}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--loop", type=int, default=24, help="candidates in the vmapped-vs-loop comparison")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child process's size
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{n:5d} candidates ({r['groups']} groups): {r['s_per_candidate_epoch'] * 1e3:.1f} ms per "
              f"candidate-epoch ({r['steady_s_per_candidate_epoch'] * 1e3:.1f} ms compiled), peak "
              f"{r['peak_rss_mb']:.0f} MB; decision {r['decision_s']:.2f} s = "
              f"{r['decision_over_round']:.1%} of a round", flush=True)
    loop = vmap_vs_loop(args.loop)
    print(f"vmapped sweep vs Python loop, {loop['candidates']} candidates: {loop['speedup_vmapped_over_loop']:.1f}x")
    path = write_json("bench_scale", {"epochs": EPOCHS, "zoo": "hyper", "data": "digits", "sizes": rows,
                                      "vmap_vs_loop": loop})
    from capjax import plots

    x = np.array([r["candidates"] for r in rows], dtype=float)
    curves = {name: (x, y, y, y) for name, y in (
        ("whole sweep (compile included)", np.array([r["s_per_candidate_epoch"] for r in rows]) * 1e3),
        ("compiled epoch", np.array([r["steady_s_per_candidate_epoch"] for r in rows]) * 1e3))}
    plots.plot_score_vs_budget(curves, RESULTS / "scale.png", ylabel="ms per candidate-epoch",
                               title="hyperparameter zoo on digits, 2 epochs", xlabel="candidates",
                               legend="upper right")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
