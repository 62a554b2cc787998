"""Wall-clock timing shared by the benchmark scripts: compile once, then best of N."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

RESULTS = Path(os.environ.get("CAPJAX_BENCH_RESULTS", Path(__file__).parent / "results"))
"""Where the timing benchmarks write (``$CAPJAX_BENCH_RESULTS``: e.g. an accelerator's own folder)."""


def best_time(fn: Callable[..., Any], *args: Any, repeat: int = 5, number: int = 1) -> float:
    """Seconds per call of ``fn(*args)``: one warm-up (compile) call, then the best of ``repeat``."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def machine() -> dict:
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "processor": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        # Ratios are measured side by side in one run; the load says how noisy they are.
        "load_average_1m": os.getloadavg()[0],
    }


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path
