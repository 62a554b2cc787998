"""Selection policies at equal compute, simulated on recorded full sweeps (docs/method.md §6).

Usage: ``python benchmarks/bench_policies.py [--records A/records.jsonl.gz ...]``

By default every ``benchmarks/results/<run>/records.jsonl.gz`` (written by
``benchmarks/record_sweeps.py``) is read. Each policy runs on a fresh
:class:`capjax.selection.PaidView` of the run (it reads only the epochs it paid for) at
budgets of 5, 10, 20 and 30% of training every candidate fully, and is scored by its
regret on the final *test* accuracy, which no policy reads. capjax's engine runs on the
learning curve alone and, as ablations, with beta_eff (``capjax_beta``) and with beta_eff
and the weight signals (``capjax_beta_weights``). Writes
``benchmarks/results/policies.json`` (``{"rows": [{run, budget, policy, chosen, regret,
compute}]}``; an infeasible cell has ``chosen`` null and its ``reason``), ``policies.md``
and ``regret_vs_compute.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capjax import plots  # noqa: E402
from capjax.records import load_recorded  # noqa: E402
from capjax.selection import POLICIES, PaidView, capjax_engine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS = (0.05, 0.1, 0.2, 0.3)
ENGINES = {
    "capjax": capjax_engine,
    "capjax_beta": functools.partial(capjax_engine, features=("curve", "beta")),
    "capjax_beta_weights": functools.partial(capjax_engine, features=("curve", "beta", "weights")),
}
"""capjax's engine on the learning curve, and its ablations with beta_eff and the weight signals."""


def _full_epochs(run: str) -> int:
    return int(run.split("-e")[1].split("-")[0])


def simulate(path: Path, budgets=BUDGETS) -> list[dict]:
    """One row per policy and budget on the records at ``path``."""
    run = path.parent.name
    sweep = load_recorded(path)
    full = _full_epochs(run)
    rows = []
    for budget in budgets:
        for name, policy in {**ENGINES, **POLICIES}.items():
            view = PaidView(sweep, full)
            # one seeded stream per run, policy and budget: random draws are repeatable
            rng = np.random.default_rng(zlib.crc32(f"{run}/{name}/{budget}".encode()))
            out = policy(view, budget, rng)
            rows.append({
                "run": run,
                "budget": budget,
                "policy": name,
                "chosen": None if out.chosen is None else view.names[out.chosen],
                "regret": None if out.chosen is None else out.regret(view.final_truth()),
                "compute": out.fraction,
                **({"reason": out.reason} if out.reason else {}),
            })
    return rows


def table(rows: list[dict]) -> str:
    """Mean regret (pp) per policy and budget, with P(regret = 0) and the runs that fit."""
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    lines = [
        "Mean regret in accuracy points on the final test accuracy [P(regret = 0)] (runs where the "
        "policy fits the budget / all runs):",
        "",
        "| policy | " + " | ".join(f"{b:.0%}" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for p in policies:
        cells = []
        for b in budgets:
            cell = [r for r in rows if r["policy"] == p and r["budget"] == b]
            ok = [r["regret"] for r in cell if r["regret"] is not None]
            cells.append(
                f"{100 * np.mean(ok):.2f} [{np.mean(np.array(ok) == 0):.2f}] ({len(ok)}/{len(cell)})" if ok
                else f"does not fit (0/{len(cell)})"
            )
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", nargs="*", type=Path, default=None)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    paths = args.records or sorted(RESULTS.glob("*/records.jsonl.gz"))
    if not paths:
        print("no records: run benchmarks/record_sweeps.py first", file=sys.stderr)
        return 2
    rows = [row for path in paths for row in simulate(path)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "policies.json").write_text(json.dumps({"rows": rows}, indent=1))
    dev = [r for r in rows if r["run"].endswith("-s0")]
    fresh = [r for r in rows if not r["run"].endswith("-s0")]
    parts = [(f"Development seed 0 ({len({r['run'] for r in dev})} runs; the engine may be tuned here)", dev),
             (f"Fresh seeds 1-2 ({len({r['run'] for r in fresh})} runs, never tuned on)", fresh)]
    text = "\n\n".join(f"### {title}\n\n{table(part)}" for title, part in parts if part)
    (args.out / "policies.md").write_text(text + "\n")
    print(text)
    curves = {}
    for name in dict.fromkeys(r["policy"] for r in rows):
        points = []
        for b in BUDGETS:
            ran = [r for r in rows if r["policy"] == name and r["budget"] == b and r["regret"] is not None]
            if ran:
                regret = 100 * np.array([r["regret"] for r in ran])
                sem = regret.std() / np.sqrt(regret.size)
                points.append((100 * np.mean([r["compute"] for r in ran]), regret.mean(), sem))
        if points:
            x, mean, sem = (np.array(v) for v in zip(*points))
            curves[name] = (x, mean, mean - sem, mean + sem)
    # random spends 1/N and its regret dwarfs the others': it stays in the table, off the figure
    random_mean = curves.pop("random")[1].mean() if "random" in curves else float("nan")
    plots.plot_score_vs_budget(
        curves, args.out / "regret_vs_compute.png", ylabel="mean regret (accuracy points, test) ± s.e.",
        title=f"selection policies on {len(paths)} recorded sweeps (random: {random_mean:.1f} pp, not drawn)",
        xlabel="compute (% of training all fully)", logx=False, legend="upper right",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
