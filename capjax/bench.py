"""``capjax bench``: every early predictor on the same zoo, budgets and split (SPEC 5).

Protocol:

1. One sweep trains every candidate of the zoo to ``full_epochs`` (resumable, cached
   under the output directory), recording beta_eff (both interactions), the learning
   curves and every signal of :mod:`capjax.signals`. The truth is each candidate's
   validation accuracy at the final epoch.
2. The candidates are split once, by seed, into a *development* half and a *test* half.
   Supervised predictors (``combined``, ``beta_cross_*``, ``vahedian``, ``la_malfa``) fit
   on the development candidates' truth only; unsupervised signals choose their direction
   there. A supervised predictor's development score is cross-fitted (5 folds: each
   fold predicted by a fit on the others), never in-sample. Any choice made on results
   (here: which beta_eff formulation is "the paper's method" at a budget, the
   ``beta_best`` row) is made on the development split. The ``single_best`` row is the
   single predictor (any but ``combined``) with the best development tau at each budget:
   the choice a user without the test split would make, and the fair opponent of
   ``combined``, which is fitted on the same development half.
3. Every figure reported is measured on the test split: Kendall tau and Spearman rho with
   bootstrap 90% intervals over test candidates, top-1 regret, precision@5, 90%-interval
   coverage for interval predictors, and compute relative to training every candidate
   fully (training passes up to the budget / passes of full training).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from capjax.validation import CapjaxInputError

BUDGETS_PERCENT = (1, 2, 5, 10, 20)
PLOTTED = (
    "beta_coupling",
    "beta_hessian",
    "beta_cross_hessian",
    "combined",
    "early_acc",
    "tse_e",
    "curve",
    "logme",
    "zc_synflow",
    "vahedian",
)
"""Predictors drawn in the score-vs-budget figure, fixed in advance: the paper's formulations,
capjax's combined predictor and one of each baseline family (the table holds all of them)."""
COMBINING = ("combined",)
"""Predictors that combine several signals; ``single_best`` chooses among the others."""
SUPERVISED = ("combined", "beta_cross_coupling", "beta_cross_hessian", "vahedian", "la_malfa")
"""Predictors fitted on the development candidates' truth: their development scores are
cross-fitted (:func:`_cross_fitted`), so that choices made on them compare like with like."""
CROSS_FIT_FOLDS = 5


def budget_epochs(percent: float, full_epochs: int) -> int:
    """Early epochs for a budget given in percent of full training (at least one epoch)."""
    return max(1, int(round(percent / 100 * full_epochs)))


def split_candidates(n: int, seed: int, dev_fraction: float = 0.5) -> np.ndarray:
    """``(n,)`` bool mask of development candidates, a seeded random ``dev_fraction``."""
    dev = np.zeros(n, bool)
    dev[np.random.default_rng(seed).permutation(n)[: int(round(dev_fraction * n))]] = True
    return dev


def _score(forecast, truth: np.ndarray, mask: np.ndarray, seed: int) -> dict:
    from capjax.scoring import score_predictor

    sel = mask & np.isfinite(truth)
    lower = None if forecast.lower is None else forecast.lower[sel]
    upper = None if forecast.upper is None else forecast.upper[sel]
    return score_predictor(
        forecast.score[sel], truth[sel], lower=lower, upper=upper, k=min(5, int(sel.sum())), seed=seed
    )


def _cross_fitted(predictor, task, truth: np.ndarray, dev: np.ndarray, seed: int, folds: int = CROSS_FIT_FOLDS):
    """The forecast of a supervised ``predictor`` for the development candidates, out of fold.

    The development candidates are split into ``folds`` seeded folds; each fold is
    predicted by a fit on the other folds' truth only. The test candidates keep NaN.
    """
    dev_idx = np.flatnonzero(dev)
    fold_of = np.random.default_rng(seed).permutation(len(dev_idx)) % folds
    score, lower, upper = (np.full(len(truth), np.nan) for _ in range(3))
    for f in range(folds):
        held = dev_idx[fold_of == f]
        reference = np.where(dev, truth, np.nan)
        reference[held] = np.nan
        forecast = predictor(dataclasses.replace(task, reference=reference))
        score[held] = forecast.score[held]
        if forecast.lower is not None:
            lower[held], upper[held] = forecast.lower[held], forecast.upper[held]
    interval = {} if forecast.lower is None else {"lower": lower, "upper": upper}
    return dataclasses.replace(forecast, score=score, **interval)


def evaluate(
    sweep, predictors: list[str], budgets: list[int], full_epochs: int, dev: np.ndarray, seed: int, progress=None
) -> dict:
    """Score every predictor at every budget; returns ``{predictor: {budget: {"dev", "test", ...}}}``."""
    import capjax.combined  # noqa: F401  (registers the supervised predictors)
    import capjax.signals  # noqa: F401  (registers the signal predictors)
    from capjax.predictors import PREDICTORS, Task

    truth = sweep.array("val_acc", full_epochs)[:, -1]
    reference = np.where(dev, truth, np.nan)
    out: dict[str, dict] = {p: {} for p in predictors}
    for b in budgets:
        task = Task(sweep, b, full_epochs, reference=reference, seed=seed)
        for p in predictors:
            t0 = time.perf_counter()
            try:
                forecast = PREDICTORS[p](task)
            except Exception as err:  # a predictor that breaks on this zoo is a failed cell
                out[p][b] = {"failed": f"{type(err).__name__}: {err}"}
            else:
                # a fitted predictor's dev score is out of fold, else it would be read in-sample
                dev_forecast = _cross_fitted(PREDICTORS[p], task, truth, dev, seed) if p in SUPERVISED else forecast
                out[p][b] = {
                    "dev": _score(dev_forecast, truth, dev, seed),
                    "test": _score(forecast, truth, ~dev, seed),
                    "n_failed": int(np.sum(~np.isfinite(forecast.score))),
                    "reasons": sorted(set(forecast.reasons.values()))[:5],
                    "seconds": time.perf_counter() - t0,
                    "test_pred": forecast.score[~dev].tolist(),
                }
            if progress is not None:
                progress()
    _add_dev_selected(out, budgets, "beta_best", [p for p in predictors if p.startswith("beta_")])
    _add_dev_selected(out, budgets, "single_best", [p for p in predictors if p not in COMBINING])
    return out


def _add_dev_selected(out: dict, budgets: list[int], name: str, among: list[str]) -> None:
    """A row that, per budget, reports the test scores of the ``among`` predictor with the best dev tau."""
    if not among:
        return
    out[name] = {}
    for b in budgets:
        cells = {p: out[p][b] for p in among if "dev" in out[p][b] and np.isfinite(out[p][b]["dev"]["tau"])}
        if not cells:
            out[name][b] = {"failed": f"none of {among} scored on the development split"}
            continue
        chosen = max(cells, key=lambda p: cells[p]["dev"]["tau"])
        out[name][b] = {**cells[chosen], "chosen_on_dev": chosen}


def _fmt(cell: dict, key: str = "tau") -> str:
    if "failed" in cell:
        return "failed"
    s = cell["test"]
    if not np.isfinite(s[key]):
        return "n/a"
    return f"{s[key]:.2f} [{s[key + '_lo']:.2f}, {s[key + '_hi']:.2f}]" if key + "_lo" in s else f"{s[key]:.2f}"


def markdown_table(scores: dict, budgets: list[int], percents: list[float], title: str) -> str:
    """Test-split Kendall tau [90% bootstrap interval] per predictor and budget, plus the 10% details."""
    head = "| predictor | " + " | ".join(f"{p:g}% ({b} ep)" for p, b in zip(percents, budgets)) + " |"
    lines = [
        f"### {title}",
        "",
        "Kendall tau on the test split [bootstrap 90% interval]:",
        "",
        head,
        "|" + "---|" * (len(budgets) + 1),
    ]
    ranked = sorted(
        scores,
        key=lambda p: (
            -np.nan_to_num(
                scores[p].get(budgets[-2] if len(budgets) > 1 else budgets[0], {}).get("test", {}).get("tau", np.nan),
                nan=-9,
            )
        ),
    )
    for p in ranked:
        lines.append(f"| {p} | " + " | ".join(_fmt(scores[p][b]) for b in budgets) + " |")
    ref_b = budgets[min(3, len(budgets) - 1)]
    lines += [
        "",
        f"At {percents[min(3, len(budgets) - 1)]:g}% ({ref_b} epochs), test split:",
        "",
        "| predictor | Spearman | top-1 regret | precision@5 | 90% coverage |",
        "|---|---|---|---|---|",
    ]
    for p in ranked:
        c = scores[p][ref_b]
        if "failed" in c:
            lines.append(f"| {p} | failed | | | |")
            continue
        s = c["test"]
        cov = "" if s.get("coverage") is None else f"{s['coverage']:.2f}"
        lines.append(f"| {p} | {_fmt(c, 'rho')} | {s['regret']:.3f} | {s['precision_at_k']:.2f} | {cov} |")
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> dict:
    """Run the benchmark for one zoo and dataset; writes JSON, markdown and PNGs."""
    from rich.console import Console
    from rich.progress import Progress

    import capjax.combined  # noqa: F401
    import capjax.signals as signals
    from capjax import plots
    from capjax.cli import build_zoo
    from capjax.data import load_dataset
    from capjax.predictors import PREDICTORS
    from capjax.sweep import load_sweep, run_sweep

    console = Console(width=160)
    percents = [float(p) for p in args.budgets.split(",")]
    budgets = [budget_epochs(p, args.full_epochs) for p in percents]
    if max(budgets) > args.full_epochs:
        raise CapjaxInputError("a budget exceeds --full-epochs; pass budgets below 100%")
    predictors = sorted(PREDICTORS) if args.predictors == "all" else args.predictors.split(",")
    unknown = set(predictors) - set(PREDICTORS)
    if unknown:
        raise CapjaxInputError(f"unknown predictor(s) {sorted(unknown)}; choose from {sorted(PREDICTORS)}")
    dataset = load_dataset(args.data, data_dir=args.data_dir, seed=args.seed)
    candidates = build_zoo(args, args.data)
    tag = f"{args.zoo}-{dataset.name}-n{len(candidates)}-e{args.full_epochs}-s{args.seed}"
    out_dir = args.out / tag
    t0 = time.perf_counter()
    run_sweep(
        candidates,
        dataset,
        epochs=args.full_epochs,
        out_dir=out_dir / "sweep",
        interactions=("coupling", "hessian"),
        record_fns=signals.record_fns(last_epoch=max(budgets)),
        snapshot_params=True,
        progress=not args.no_progress,
        cache_dir=args.cache_dir,
    )
    sweep_s = time.perf_counter() - t0
    sweep = load_sweep(out_dir / "sweep")
    dev = split_candidates(len(candidates), args.seed)
    with Progress(console=console, disable=args.no_progress) as bar:
        job = bar.add_task("scoring predictors", total=len(predictors) * len(budgets))
        scores = evaluate(
            sweep, predictors, budgets, args.full_epochs, dev, args.seed, progress=lambda: bar.advance(job)
        )
    passes = sweep.array("passes_train", args.full_epochs)
    compute = {b: float(np.nansum(passes[:, b - 1]) / np.nansum(passes[:, -1])) for b in budgets}
    truth = sweep.array("val_acc", args.full_epochs)[:, -1]
    payload = {
        "zoo": args.zoo,
        "data": dataset.name,
        "n_candidates": len(candidates),
        "n_failed_training": int(sweep.failed.sum()),
        "full_epochs": args.full_epochs,
        "budgets_percent": percents,
        "budgets_epochs": budgets,
        "seed": args.seed,
        "split": {
            "dev": [n for n, d in zip(sweep.names, dev) if d],
            "test": [n for n, d in zip(sweep.names, dev) if not d],
        },
        "truth": "validation accuracy at the final epoch",
        "truth_range": [float(np.nanmin(truth)), float(np.nanmax(truth))],
        "compute_fraction": compute,
        "sweep_seconds": sweep_s,
        "scores": scores,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scores.json").write_text(json.dumps(payload, indent=1, default=float))
    table = markdown_table(
        scores,
        budgets,
        percents,
        f"{args.zoo} zoo on {dataset.name}: {len(candidates)} candidates, "
        f"{args.full_epochs} full epochs, seed {args.seed} (test split: {int((~dev).sum())} candidates)",
    )
    table += "\n\nCompute used (training passes up to the budget / training every candidate fully): " + ", ".join(
        f"{p:g}% → {compute[b]:.1%}" for p, b in zip(percents, budgets)
    )
    (out_dir / "table.md").write_text(table + "\n")
    console.print(table)
    curves = {}
    for p in (p for p in PLOTTED if p in scores):
        cells = scores[p]
        ok = [
            (pc, c["test"])
            for pc, c in zip(percents, (cells[b] for b in budgets))
            if "test" in c and np.isfinite(c["test"]["tau"])
        ]
        if ok:
            curves[p] = tuple(np.array(v) for v in zip(*[(pc, s["tau"], s["tau_lo"], s["tau_hi"]) for pc, s in ok]))
    plots.plot_score_vs_budget(
        curves, out_dir / "tau_vs_budget.png", title=f"{args.zoo} zoo on {dataset.name}: test-split Kendall tau"
    )
    ref_b = budgets[min(3, len(budgets) - 1)]
    for p in ("combined", "beta_best", "single_best", "early_acc"):
        cell = scores.get(p, {}).get(ref_b, {})
        if "test_pred" in cell:
            plots.plot_predicted_vs_true(
                cell["test_pred"],
                truth[~dev],
                out_dir / f"pred_vs_true_{p}.png",
                title=f"{p} at {ref_b} epochs (test split)",
            )
    console.print(f"wrote {out_dir}/scores.json, table.md and PNGs")
    return payload


def add_parser(sub) -> None:
    """Register ``capjax bench`` on the CLI's subparsers."""
    from capjax.cli import _add_common

    p = sub.add_parser(
        "bench",
        help="every early predictor side by side on one zoo (SPEC 5)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p, interaction=False)
    p.set_defaults(n=60, full_epochs=50, out=Path("benchmarks/results"))
    p.add_argument(
        "--budgets",
        default=",".join(map(str, BUDGETS_PERCENT)),
        help="budgets in percent of --full-epochs (default: 1,2,5,10,20; each at least one epoch)",
    )
    p.add_argument("--predictors", default="all", help="comma-separated predictor names, or all (default)")
