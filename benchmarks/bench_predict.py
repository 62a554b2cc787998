"""Throughput of final-accuracy prediction (issue 3, docs/method.md §2.4), in candidates per second.

(a) the fast path (evidence-maximising precisions, exact conjugate posterior) on n = 10,
    100, 1000 candidates in one vmapped call, against the same candidates one at a time
    in a Python loop; the speedup is loop time / vmapped time;
(b) NUTS (default 1000 warm-up + 2000 draws, one chain) on n = 10 and 100 candidates.
    NUTS on 1000 candidates takes minutes on a 2-core CPU, so it runs only with
    ``--nuts-1000``; without it the JSON says so and gives no figure.

Each figure is the best wall time after one warm-up call (compilation), with 8 early
observations per candidate and the default 2000 predictive draws. NUTS re-traces its
model on every call (numpyro closes over the data), so its per-call time includes that.

    python benchmarks/bench_predict.py               # writes benchmarks/results/bench_predict.json
    python benchmarks/bench_predict.py --nuts-1000   # also NUTS on 1000 candidates
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._timing import best_time, write_json  # noqa: E402
from capjax.bayes import predict_final  # noqa: E402

T = 8  # early observations per candidate


def candidates(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, T) early signal falling towards 0 and accuracy rising towards its final value."""
    rng = np.random.default_rng(seed)
    signal = np.sort(rng.uniform(0.1, 1.0, size=(n, T)), axis=1)[:, ::-1]
    slope = rng.uniform(-0.4, -0.2, size=(n, 1))
    final = rng.uniform(0.7, 0.9, size=(n, 1))
    return signal, final + slope * signal + 0.01 * rng.normal(size=(n, T))


def fast_path(n: int) -> dict:
    signal, acc = candidates(n)

    def vmapped():
        return predict_final(signal, acc, method="fast").samples

    def loop():
        return [predict_final(s, a, method="fast").samples for s, a in zip(signal, acc)]

    t_vmap = best_time(vmapped)
    t_loop = best_time(loop, repeat=3 if n <= 100 else 1)
    return {
        "n": n,
        "vmapped_s": t_vmap,
        "loop_s": t_loop,
        "candidates_per_s": n / t_vmap,
        "loop_candidates_per_s": n / t_loop,
        "speedup_vmapped_over_loop": t_loop / t_vmap,
    }


def nuts(n: int) -> dict:
    signal, acc = candidates(n)
    t = best_time(lambda: predict_final(signal, acc, method="nuts").samples, repeat=1)
    return {"n": n, "call_s": t, "candidates_per_s": n / t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nuts-1000", action="store_true", help="also NUTS on 1000 candidates")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    fast = [fast_path(n) for n in (10, 100, 1000)]
    sampled = [nuts(n) for n in ((10, 100, 1000) if args.nuts_1000 else (10, 100))]

    by_n = {r["n"]: r for r in sampled}
    print(f"{'n':>6} {'fast cand/s':>12} {'loop cand/s':>12} {'speedup':>8} {'NUTS cand/s':>12}")
    for r in fast:
        nuts_rate = f"{by_n[r['n']]['candidates_per_s']:12.1f}" if r["n"] in by_n else "not run".rjust(12)
        print(
            f"{r['n']:>6} {r['candidates_per_s']:12.0f} {r['loop_candidates_per_s']:12.0f} "
            f"{r['speedup_vmapped_over_loop']:7.1f}x {nuts_rate}"
        )
    path = write_json(
        "bench_predict",
        {
            "early_observations": T,
            "predictive_draws": 2000,
            "nuts": {"num_warmup": 1000, "num_samples": 2000, "num_chains": 1},
            # other jobs share the CPU: the 1-minute load average before and after
            "load_average": [load_before, os.getloadavg()[0]],
            "cpu_count": os.cpu_count(),
            "fast": fast,
            "nuts_results": sampled,
            "nuts_1000": "measured" if args.nuts_1000 else "not run (minutes on 2 cores); pass --nuts-1000",
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
