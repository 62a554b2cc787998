"""One table of test-split Kendall tau across every ``capjax bench`` run (zoos x seeds).

Reads ``benchmarks/results/<zoo>-<data>-n<N>-e<E>-s<seed>/scores.json`` and, at one budget
(10% by default), prints per zoo and seed: capjax's ``combined`` predictor, the single
predictor chosen on the development split (``single_best``), the best single predictor
*on the test split itself* (an optimistic opponent nobody could choose in advance, shown
for the record), early accuracy and the best beta_eff formulation chosen on development
(``beta_best``); then the mean over seeds per zoo, and how often ``combined`` wins.

    python benchmarks/summarise_bench.py              # writes benchmarks/results/bench_summary.{json,md}
    python benchmarks/summarise_bench.py --percent 5
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._timing import RESULTS, write_json  # noqa: E402
from capjax.scoring.protocol import COMBINING, PLOTTED  # noqa: E402

RUN = re.compile(r"(?P<zoo>\w+)-(?P<data>\w+)-n\d+-e\d+-s(?P<seed>\d+)$")
ROWS = ("combined", "single_best", "test_best", "early_acc", "beta_best")
NOT_SINGLE = (*COMBINING, "single_best", "beta_best")
TABLE = (*PLOTTED, "beta_best", "single_best")
"""Predictors in the across-seeds table: those of the bench's figure and the rows chosen on development."""


def _tau(cell: dict) -> float:
    return cell["test"]["tau"] if "test" in cell else float("nan")


def run_row(scores: dict, budget: int) -> dict:
    """The :data:`ROWS` test taus of one run at ``budget`` epochs, and which predictors they are."""
    cells = {p: v.get(str(budget), {}) for p, v in scores.items()}
    singles = {p: _tau(c) for p, c in cells.items() if p not in NOT_SINGLE and np.isfinite(_tau(c))}
    test_best = max(singles, key=singles.get)
    return {
        "combined": _tau(cells["combined"]),
        "single_best": _tau(cells["single_best"]),
        "single_best_is": cells["single_best"].get("chosen_on_dev"),
        "test_best": singles[test_best],
        "test_best_is": test_best,
        "early_acc": _tau(cells["early_acc"]),
        "beta_best": _tau(cells["beta_best"]),
        "beta_best_is": cells["beta_best"].get("chosen_on_dev"),
    }


def across_seeds(per_run: dict[str, dict[int, dict]], budget_of: dict[str, dict[int, int]]) -> list[str]:
    """Markdown rows: each :data:`TABLE` predictor's test tau, mean [min, max] over seeds, per zoo."""
    zoos = list(per_run)
    lines = ["| predictor | " + " | ".join(zoos) + " |", "|---|" + "---|" * len(zoos)]
    for p in TABLE:
        cells = []
        for zoo in zoos:
            taus = [_tau(per_run[zoo][s][p].get(str(budget_of[zoo][s]), {})) for s in sorted(per_run[zoo])]
            taus = [t for t in taus if np.isfinite(t)]
            cells.append(f"{np.mean(taus):.2f} [{min(taus):.2f}, {max(taus):.2f}]" if taus else "failed")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--percent", type=float, default=10.0, help="budget in percent of full training")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs: dict[str, dict[int, dict]] = {}
    scores: dict[str, dict[int, dict]] = {}
    budget_of: dict[str, dict[int, int]] = {}
    for path in sorted(args.results.glob("*/scores.json")):
        m = RUN.match(path.parent.name)
        payload = json.loads(path.read_text())
        complete = {"combined", "single_best"} <= set(payload["scores"])
        if m is None or not complete or args.percent not in payload["budgets_percent"]:
            continue
        budget = payload["budgets_epochs"][payload["budgets_percent"].index(args.percent)]
        zoo = f"{m['zoo']} / {m['data']}"
        runs.setdefault(zoo, {})[int(m["seed"])] = run_row(payload["scores"], budget)
        scores.setdefault(zoo, {})[int(m["seed"])] = payload["scores"]
        budget_of.setdefault(zoo, {})[int(m["seed"])] = budget
    lines = [
        f"Test-split Kendall tau at a {args.percent:g}% budget, per run (zoo, seed) and mean over seeds.",
        "",
        "| zoo | seed | combined | single best (chosen on dev) | best on test (hindsight) | early acc "
        "| beta_eff best (dev) |",
        "|---|---|---|---|---|---|---|",
    ]
    wins = {"single_best": 0, "test_best": 0}
    n = 0
    for zoo, seeds in runs.items():
        for seed, r in sorted(seeds.items()):
            n += 1
            wins["single_best"] += r["combined"] > r["single_best"]
            wins["test_best"] += r["combined"] > r["test_best"]
            lines.append(
                f"| {zoo} | {seed} | {r['combined']:.2f} | {r['single_best']:.2f} ({r['single_best_is']}) | "
                f"{r['test_best']:.2f} ({r['test_best_is']}) | {r['early_acc']:.2f} | "
                f"{r['beta_best']:.2f} ({r['beta_best_is']}) |"
            )
        mean = {k: float(np.mean([r[k] for r in seeds.values()])) for k in ROWS}
        lines.append(
            f"| **{zoo}** | mean of {len(seeds)} | **{mean['combined']:.2f}** | {mean['single_best']:.2f} | "
            f"{mean['test_best']:.2f} | {mean['early_acc']:.2f} | {mean['beta_best']:.2f} |"
        )
    lines += [
        "",
        f"combined beats the single predictor chosen on dev in {wins['single_best']} of {n} runs, "
        f"and the best single predictor in hindsight in {wins['test_best']} of {n}.",
        "",
        "Mean [min, max] over seeds of the test-split Kendall tau:",
        "",
        *across_seeds(scores, budget_of),
    ]
    text = "\n".join(lines)
    print(text)
    (args.results / "bench_summary.md").write_text(text + "\n")
    write_json("bench_summary", {"percent": args.percent, "runs": runs, "wins": wins, "n_runs": n})


if __name__ == "__main__":
    main()
