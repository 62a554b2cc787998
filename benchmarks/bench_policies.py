"""Selection policies at equal compute, simulated on recorded full sweeps (docs/method.md §6).

Usage: ``python benchmarks/bench_policies.py [--records A/records.jsonl.gz ...]``

By default every ``benchmarks/results/<run>/records.jsonl.gz`` (written by
``benchmarks/record_sweeps.py``) is read. Each policy runs on a fresh
:class:`capjax.selection.PaidView` of the run (it reads only the epochs it paid for) at
budgets of 5, 10, 20 and 30% of training every candidate fully, and is scored by its
regret on the final *test* accuracy, which no policy reads. capjax's engine runs on the
learning curve alone and, as ablations, with beta_eff (``capjax_beta``), with the weight
signals (``capjax_weights``) and with both (``capjax_beta_weights``); the paired regret
differences over the runs, with 95% t-intervals, say whether each earns its place.

A randomized policy (Hyperband's partition, random's pick, and the engine's pool where
halving cannot cover every candidate) is scored by its mean over :data:`DRAWS` seeded
draws, each row saying how many (``draws``) and its ``p_zero``, P(regret = 0). The engine
and Hyperband draw from one stream, so below halving's budget the engine's pool is
Hyperband's first bracket.

Also measured: the coverage of the engine's 90% intervals for the candidates it did not
train to the end (against their final test accuracy), and the cost of its decision step
(posterior and the survivors' knowledge gradient) against the training wall time of the rung
it precedes, both timed in this process (``wall_s`` of the records was measured on the
same 2-core machine when they were recorded).

Writes ``benchmarks/results/policies.json`` (``{"rows": [{run, budget, policy, chosen,
regret, compute}], "ablations": ..., "coverage": ..., "decision_cost": ...}``; an
infeasible cell has ``chosen`` null and its ``reason``), ``policies.md`` and
``regret_vs_compute.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import zlib
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capjax import plots  # noqa: E402
from capjax.records import load_recorded  # noqa: E402
from capjax.selection import POLICIES, PaidView, capjax_engine  # noqa: E402
from capjax.selection.engine import test_draws  # noqa: E402
from capjax.selection.policies import fitted_pool  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS = (0.05, 0.1, 0.2, 0.3)
ENGINES = {
    "capjax": capjax_engine,
    "capjax_beta": functools.partial(capjax_engine, features=("curve", "beta")),
    "capjax_weights": functools.partial(capjax_engine, features=("curve", "weights")),
    "capjax_beta_weights": functools.partial(capjax_engine, features=("curve", "beta", "weights")),
}
"""capjax's engine on the learning curve, and its ablations with beta_eff and the weight signals."""
ABLATIONS = {"+ beta_eff": ("capjax_beta", "capjax"), "+ weight signals": ("capjax_weights", "capjax"),
             "+ both": ("capjax_beta_weights", "capjax")}


def _round_walls(view: PaidView, plans: list[dict[int, int]]) -> list[float]:
    """Recorded training wall seconds (``wall_s``) of each plan's epochs, replayed in order."""
    wall, paid, out = view._table("wall_s"), np.zeros(len(view), int), []
    for plan in plans:
        out.append(float(sum(np.nansum(wall[c, paid[c] + 1: e + 1]) for c, e in plan.items() if e > paid[c])))
        for c, e in plan.items():
            paid[c] = max(paid[c], e)
    return out


class PlanLog(PaidView):
    """A :class:`PaidView` that keeps every plan it was paid, to price them at the recorded wall time."""

    def __init__(self, sweep, full_epochs: int):
        super().__init__(sweep, full_epochs)
        self.plans: list[dict[int, int]] = []

    def _pay(self, plan: dict[int, int]) -> None:
        self.plans.append(dict(plan))
        super()._pay(plan)


DEV_SEEDS = (0, 1, 2)
"""Seeds the engine was designed and tuned on; seeds 3 to 5 were recorded after it was frozen."""


def _seed(run: str) -> int:
    return int(run.rsplit("-s", 1)[1])


def _full_epochs(run: str) -> int:
    return int(run.split("-e")[1].split("-")[0])


DRAWS = 20
"""Seeded draws of a randomized policy per run and budget: Hyperband's partition, random's
pick, and the engine's pool where halving cannot cover every candidate. Its regret is
their mean, an estimate of the policy's expected regret rather than of one lucky draw."""


def _randomized(name: str, view: PaidView, budget: float) -> bool:
    if name in ENGINES:
        fitted = fitted_pool(len(view), view.full_epochs, view.epoch_budget(budget))
        return fitted is not None and fitted[0] < len(view)
    return name in ("hyperband", "random")


def _one_draw(policy, view: PlanLog, budget: float, rng: np.random.Generator) -> dict:
    """The policy's regret, choice and cost on ``view``; the engine's coverage and decision times."""
    out = policy(view, budget, rng)
    truth = view.final_truth()
    got = {"chosen": None if out.chosen is None else view.names[out.chosen],
           "regret": None if out.chosen is None else out.regret(truth), "compute": out.fraction,
           **({"reason": out.reason} if out.reason else {})}
    if out.draws is not None:
        full = view.full_epochs
        lo, hi = np.quantile(test_draws(view, out.draws), [0.05, 0.95], axis=0)
        inside = (lo <= truth) & (truth <= hi)
        open_ = (out.epochs < full) & np.isfinite(truth)
        untried = (out.epochs == 0) & np.isfinite(truth)
        got.update(covered=int(inside[open_].sum()), n_not_finished=int(open_.sum()),
                   covered_untried=int(inside[untried].sum()), n_untried=int(untried.sum()),
                   # each decision against the recorded training wall time of the round it chose
                   decisions=[(d, w) for (d, _), w in zip(view.timings, _round_walls(view, view.plans)[1:],
                                                          strict=True)])
    return got


def simulate(path: Path, budgets=BUDGETS) -> list[dict]:
    """One row per policy and budget on the records at ``path``; a randomized policy's
    (:func:`_randomized`) row pools :data:`DRAWS` seeded draws."""
    run = path.parent.name
    sweep = load_recorded(path)
    full = _full_epochs(run)
    rows = []
    for budget in budgets:
        for name, policy in {**ENGINES, **POLICIES}.items():
            # one seeded stream per run, policy and draw; the engines and Hyperband share
            # theirs, so that the ablations are paired on the same pools and the engine's
            # pool below halving's budget is Hyperband's first bracket
            stream = "pool" if name in ENGINES or name == "hyperband" else name
            view = PlanLog(sweep, full)
            views = [view] + [PlanLog(sweep, full) for _ in range(DRAWS - 1 if _randomized(name, view, budget) else 0)]
            draws = [_one_draw(policy, v, budget,
                               np.random.default_rng(zlib.crc32(f"{run}/{stream}/{budget}/{d}".encode())))
                     for d, v in enumerate(views)]
            first = draws[0]
            row = {"run": run, "budget": budget, "policy": name, "chosen": first["chosen"],
                   "regret": None if first["regret"] is None else float(np.mean([d["regret"] for d in draws])),
                   "compute": float(np.mean([d["compute"] for d in draws])),
                   **({"reason": first["reason"]} if "reason" in first else {})}
            if len(draws) > 1 and first["regret"] is not None:
                row.update(draws=len(draws), p_zero=float(np.mean([d["regret"] == 0 for d in draws])))
            for key in ("covered", "n_not_finished", "covered_untried", "n_untried"):
                if key in first:  # per draw, so that a randomized cell weighs as one run in the pool
                    row[key] = float(np.mean([d[key] for d in draws]))
            if "decisions" in first:
                row["decisions"] = [t for d in draws for t in d["decisions"]]
            rows.append(row)
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
            zero = [r.get("p_zero", r["regret"] == 0) for r in cell if r["regret"] is not None]
            cells.append(
                f"{100 * np.mean(ok):.2f} [{np.mean(zero):.2f}] ({len(ok)}/{len(cell)})" if ok
                else f"does not fit (0/{len(cell)})"
            )
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _t_interval(d: np.ndarray) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% t-interval."""
    m = float(d.mean())
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return m, m - half, m + half


def ablations(rows: list[dict]) -> dict:
    """Paired regret differences (pp) of each ablation against the curve-only engine, per budget."""
    out = {}
    for label, (a, b) in ABLATIONS.items():
        for budget in sorted({r["budget"] for r in rows}):
            got = {(r["run"], r["policy"]): r["regret"] for r in rows if r["budget"] == budget}
            runs = sorted({run for run, p in got if p == a and got[(run, a)] is not None
                           and got.get((run, b)) is not None})
            if runs:
                d = 100 * np.array([got[(run, a)] - got[(run, b)] for run in runs])
                m, lo, hi = _t_interval(d)
                out.setdefault(label, {})[budget] = {"mean": m, "lo": lo, "hi": hi, "n_runs": len(runs)}
    return out


def coverage(rows: list[dict], policy: str = "capjax") -> dict:
    """Pooled coverage of the engine's 90% intervals for the candidates it did not finish."""
    cells = [r for r in rows if r["policy"] == policy and "covered" in r]
    out = {}
    for budget in sorted({r["budget"] for r in cells}):
        part = [r for r in cells if r["budget"] == budget]
        n = sum(r["n_not_finished"] for r in part)
        out[budget] = {"coverage": sum(r["covered"] for r in part) / n if n else None, "n": n}
    n = sum(r["n_not_finished"] for r in cells)
    out["pooled"] = {"coverage": sum(r["covered"] for r in cells) / n if n else None, "n": n}
    n = sum(r["n_untried"] for r in cells)
    out["untried"] = {"coverage": sum(r["covered_untried"] for r in cells) / n if n else None, "n": n}
    return out


def decision_cost(rows: list[dict], policy: str = "capjax") -> dict:
    """The decision step's seconds over the training round it precedes: over all rounds and per budget."""
    def summary(part: list[dict]) -> dict:
        pairs = [(d, t) for r in part for d, t in r.get("decisions", [])]
        ratios = [d / t for d, t in pairs if t > 0]
        return {"total_ratio": float(sum(d for d, _ in pairs) / sum(t for _, t in pairs)),
                "median_ratio": float(np.median(ratios)), "p90_ratio": float(np.quantile(ratios, 0.9)),
                "n_rounds": len(ratios), "median_seconds": float(np.median([d for d, _ in pairs]))}
    mine = [r for r in rows if r["policy"] == policy]
    return {**summary(mine), "by_budget": {b: summary([r for r in mine if r["budget"] == b])
                                           for b in sorted({r["budget"] for r in mine})}}


def head_to_head(rows: list[dict], opponents=("successive_halving", "hyperband")) -> str:
    """capjax against each opponent on the runs where the opponent fits the budget."""
    lines = ["| budget | " + " | ".join(f"capjax vs {o} (runs)" for o in opponents) + " |",
             "|---|" + "---|" * len(opponents)]
    for budget in sorted({r["budget"] for r in rows}):
        got = {(r["run"], r["policy"]): r["regret"] for r in rows if r["budget"] == budget}
        cells = []
        for o in opponents:
            runs = [run for run, p in got if p == o and got[(run, o)] is not None]
            if runs:
                mine = 100 * np.mean([got[(run, "capjax")] for run in runs])
                theirs = 100 * np.mean([got[(run, o)] for run in runs])
                cells.append(f"{mine:.2f} vs {theirs:.2f} ({len(runs)})")
            else:
                cells.append("opponent does not fit")
        lines.append(f"| {budget:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


BASELINES = ("capjax", "successive_halving", "hyperband", "top_k_one_epoch", "uniform")


def per_zoo(rows: list[dict], policies=BASELINES) -> str:
    """Mean regret (pp) per zoo kind and policy, over the budgets up to 20% where it fits."""
    zoos = sorted({r["run"].split("-")[0] + "-" + r["run"].split("-")[1] for r in rows})
    lines = ["| policy | " + " | ".join(zoos) + " |", "|---|" + "---|" * len(zoos)]
    for p in policies:
        cells = []
        for z in zoos:
            ok = [r["regret"] for r in rows if r["policy"] == p and r["run"].startswith(z) and r["budget"] <= 0.2
                  and r["regret"] is not None]
            cells.append(f"{100 * np.mean(ok):.2f} ({len(ok)})" if ok else "—")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SPLITS = (
    ("Development seeds 0-2 ({} runs; the engine was designed on these)", DEV_SEEDS),
    ("Fresh seeds 3-5 ({} runs, recorded after the engine was frozen; the pool rule below halving's budget "
     "was chosen on seeds 0-5)", (3, 4, 5)),
    ("Fresh seed 6 ({} runs, recorded after the pool rule was frozen)", (6,)),
)
"""The seeds' splits, by what had been seen of them when each part of the engine was fixed."""


def report(rows: list[dict], out: Path) -> None:
    """``policies.json``, ``policies.md`` and ``regret_vs_compute.png`` under ``out`` from the rows."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {"ablations": ablations(rows), "coverage": coverage(rows), "decision_cost": decision_cost(rows)}
    (out / "policies.json").write_text(json.dumps({"rows": rows, **summary}, indent=1, default=str))
    n_all = len({r["run"] for r in rows})
    parts = [(title.format(len({r["run"] for r in part})), part) for title, seeds in SPLITS
             if (part := [r for r in rows if _seed(r["run"]) in seeds])]
    parts.append((f"All {n_all} runs", rows))
    text = "\n\n".join(f"### {title}\n\n{table(part)}" for title, part in parts)
    text += (f"\n\n### capjax against halving and Hyperband where they fit (all {n_all} runs; mean regret, pp)"
             f"\n\n{head_to_head(rows)}")
    text += f"\n\n### Mean regret per zoo kind, budgets up to 20% (pp; cells)\n\n{per_zoo(rows)}"
    abl = ["| ablation (minus curve-only) | " + " | ".join(f"{b:.0%}" for b in BUDGETS) + " |",
           "|---|" + "---|" * len(BUDGETS)]
    for label, cells in summary["ablations"].items():
        abl.append(f"| {label} | " + " | ".join(
            f"{c['mean']:+.2f} [{c['lo']:+.2f}, {c['hi']:+.2f}]" for c in (cells[b] for b in BUDGETS)) + " |")
    text += ("\n\n### Does beta_eff earn its place? Paired regret difference, pp, 95% t-interval over "
             f"{n_all} runs (negative: the addition helps)\n\n" + "\n".join(abl))
    cov = summary["coverage"]
    text += ("\n\n### Coverage of the engine's 90% intervals, candidates not trained to the end\n\n"
             + ", ".join(f"{b:.0%}: {cov[b]['coverage']:.3f} (n={cov[b]['n']:.0f})" for b in BUDGETS)
             + f"; pooled {cov['pooled']['coverage']:.3f} (n={cov['pooled']['n']:.0f})"
             + (f"; of these, those left out of a small budget's pool (never trained) "
                f"{cov['untried']['coverage']:.3f} (n={cov['untried']['n']:.0f})" if cov["untried"]["n"] else ""))
    dc = summary["decision_cost"]
    text += ("\n\n### Decision step against the training round it precedes (60 candidates)\n\n"
             f"all decisions took {dc['total_ratio']:.1%} of the training wall time of the rounds they chose; "
             f"per round, median {dc['median_ratio']:.1%}, 90th percentile {dc['p90_ratio']:.0%} over "
             f"{dc['n_rounds']} rounds (median {dc['median_seconds']:.3f} s per decision; the rounds are priced at "
             "the recorded wall time of a candidate-epoch in a vmapped group of 60, so a round of a few "
             "candidate-epochs is priced at a few milliseconds). By budget, all decisions over all rounds: "
             + ", ".join(f"{b:.0%}: {c['total_ratio']:.1%}" for b, c in dc["by_budget"].items()))
    (out / "policies.md").write_text(text + "\n")
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
        curves, out / "regret_vs_compute.png", ylabel="mean regret (accuracy points, test) ± s.e.",
        title=f"selection policies on {n_all} recorded sweeps (random: {random_mean:.1f} pp, not drawn)",
        xlabel="compute (% of training all fully)", logx=False, legend="upper right",
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", nargs="*", type=Path, default=None)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    paths = args.records or sorted(RESULTS.glob("*/records.jsonl.gz"))
    if not paths:
        print("no records: run benchmarks/record_sweeps.py first", file=sys.stderr)
        return 2
    report([row for path in paths for row in simulate(path)], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
