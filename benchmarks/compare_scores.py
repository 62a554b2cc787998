"""Compare two ``scores.json`` of ``capjax bench``: every number equal to within a tolerance.

Usage: ``python benchmarks/compare_scores.py A/scores.json B/scores.json [--tol 1e-6]``

Timing fields (``seconds``, ``sweep_seconds``) are skipped; strings, lists and keys must
match exactly; NaN equals NaN. Prints the differing paths and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

TIMING = {"seconds", "sweep_seconds"}


def differences(a, b, tol: float, path: str = "") -> list[str]:
    """Paths where ``a`` and ``b`` differ (numbers by more than ``tol``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            if k not in TIMING:
                out += differences(a[k], b[k], tol, f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, tol, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        both_nan = math.isnan(a) and math.isnan(b)
        return [] if both_nan or abs(a - b) <= tol else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-6)
    args = p.parse_args()
    with open(args.a) as fa, open(args.b) as fb:
        diffs = differences(json.load(fa), json.load(fb), args.tol)
    for d in diffs[:50]:
        print(d)
    print(f"{len(diffs)} difference(s) beyond {args.tol:g} (timing fields skipped)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
