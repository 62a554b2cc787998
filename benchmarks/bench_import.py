"""What ``import capjax`` costs next to ``import jax``: best of N fresh processes each, side by side.

Usage: ``python benchmarks/bench_import.py [--repeats 3]`` -> ``benchmarks/results/bench_import.json``

Target (the redesign issue): at most 2x ``import jax``, with none of orbax, matplotlib,
tensorflow-datasets or scikit-learn loaded and the predictor registry whole.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "bench_import.json"
HEAVY = ("orbax", "matplotlib", "tensorflow_datasets", "sklearn")
JAX = "import jax"
CAPJAX = (
    "import sys, capjax; capjax.PREDICTORS['combined']; capjax.beta_eff; "
    f"print(len(capjax.PREDICTORS), ','.join(m for m in {HEAVY!r} if m in sys.modules) or '-')"
)


def _seconds(code: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, out.stdout.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    jax_s, capjax_s = [], []
    for _ in range(args.repeats):  # interleaved, so load changes hit both alike
        jax_s.append(_seconds(JAX)[0])
        t, printed = _seconds(CAPJAX)
        capjax_s.append(t)
    n, heavy = printed.split()
    result = {
        "import_jax_s": min(jax_s),
        "import_capjax_s": min(capjax_s),
        "ratio": min(capjax_s) / min(jax_s),
        "target_ratio": 2.0,
        "n_predictors": int(n),
        "heavy_modules_loaded": [] if heavy == "-" else heavy.split(","),
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
