"""``capjax bench``: every early predictor on the same zoo, budgets and split (docs/method.md §5).

One sweep trains every candidate of the zoo to ``full_epochs`` (resumable, cached under the
output directory), recording beta_eff (both interactions), the learning curves and every
signal of :mod:`capjax.training.recorders`; the truth is each candidate's *test*
accuracy at the final epoch (supervised predictors fit on the development candidates'
final validation accuracy). :mod:`capjax.scoring.protocol` then scores every predictor at
every budget on the development/test split; every figure reported is measured on the test
split: Kendall tau and Spearman rho with bootstrap 90% intervals over test candidates,
top-1 regret, precision@5, 90%-interval coverage for interval predictors, and compute
relative to training every candidate fully (training passes up to the budget / passes of
full training).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from capjax import plots
from capjax.base.distributed import is_primary, shared
from capjax.base.validation import CapjaxInputError
from capjax.data.sources import load_dataset
from capjax.predictors.registry import PREDICTORS, needs_of
from capjax.records.sweep import SweepResult
from capjax.scoring.protocol import (
    BUDGETS_PERCENT,
    PLOTTED,
    budget_epochs,
    evaluate,
    final_truth,
    markdown_table,
    split_candidates,
)
from capjax.training.recorders import record_fns
from capjax.training.sweep import run_sweep
from capjax.training.zoos import make_zoo


def bench(
    *,
    zoo: str = "transfer",
    data: str = "digits",
    data_dir: str | os.PathLike[str] | None = None,
    n: int = 60,
    full_epochs: int = 50,
    probe_widths: tuple[int, ...] | None = None,
    budgets: str = ",".join(map(str, BUDGETS_PERCENT)),
    predictors: str = "all",
    seed: int = 0,
    out: str | os.PathLike[str] = "benchmarks/results",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict:
    """Run the benchmark for one zoo and dataset; writes ``scores.json``, ``table.md`` and PNGs.

    Args:
      zoo, data, data_dir, n, full_epochs, probe_widths, seed, cache_dir: as in
        :func:`capjax.workflows.select.select_zoo`.
      budgets: comma-separated budgets in percent of ``full_epochs`` (each at least one epoch).
      predictors: comma-separated predictor names, or ``"all"``.
      out: the run goes to ``out/<zoo>-<data>-n<n>-e<full_epochs>-s<seed>``.
      progress: show progress bars.

    Returns:
      The payload of ``scores.json``.
    """
    percents = [float(p) for p in budgets.split(",")]
    budgets = [budget_epochs(p, full_epochs) for p in percents]
    if max(budgets) > full_epochs:
        raise CapjaxInputError("a budget exceeds --full-epochs; pass budgets below 100%")
    predictors = sorted(PREDICTORS) if predictors == "all" else predictors.split(",")
    unknown = set(predictors) - set(PREDICTORS)
    if unknown:
        raise CapjaxInputError(f"unknown predictor(s) {sorted(unknown)}; choose from {sorted(PREDICTORS)}")
    dataset = load_dataset(data, data_dir=data_dir, seed=seed)
    candidates = make_zoo(zoo, data, n, seed=seed, probe_widths=probe_widths)
    tag = f"{zoo}-{dataset.name}-n{len(candidates)}-e{full_epochs}-s{seed}"
    out_dir = Path(out) / tag
    needs = needs_of(predictors)  # record what the predictors read, and nothing else
    t0 = time.perf_counter()
    progress = progress and is_primary()  # one process speaks for a multi-process run (docs/method.md §9)
    sweep = run_sweep(
        candidates,
        dataset,
        epochs=full_epochs,
        out_dir=out_dir / "sweep",
        interactions=needs.interactions,
        record_fns=record_fns(needs.fields, last_epoch=max(budgets)) if needs.fields else None,
        snapshot_params=needs.snapshots,
        progress=progress,
        cache_dir=cache_dir,
    )
    sweep_s = time.perf_counter() - t0
    # process 0 scores and writes; the others train with it and get its payload
    return shared(lambda: score_sweep(sweep, out_dir, zoo=zoo, data=dataset.name, full_epochs=full_epochs,
                                      percents=percents, predictors=predictors, seed=seed, progress=progress,
                                      sweep_seconds=sweep_s))


def score_sweep(sweep: SweepResult, out_dir: Path, *, zoo: str, data: str, full_epochs: int,
                percents: list[float], predictors: list[str], seed: int, progress: bool = True,
                sweep_seconds: float | None = None) -> dict:
    """Score ``predictors`` on a full sweep at budgets of ``percents``; writes ``out_dir``'s tables.

    What :func:`bench` does after its sweep, callable on recorded sweeps too (those of
    ``benchmarks/record_sweeps.py``); a predictor whose needs the records do not meet
    (e.g. weight snapshots) fails every candidate with that reason.
    """
    from rich.console import Console
    from rich.progress import Progress

    console = Console(width=160)
    budgets = [budget_epochs(p, full_epochs) for p in percents]
    dev = split_candidates(len(sweep.names), seed)
    with Progress(console=console, disable=not progress) as bar:
        job = bar.add_task("scoring predictors", total=len(predictors) * len(budgets))
        scores = evaluate(
            sweep, predictors, budgets, full_epochs, dev, seed, progress=lambda: bar.advance(job)
        )
    passes = sweep.array("passes_train", full_epochs)
    compute = {b: float(np.nansum(passes[:, b - 1]) / np.nansum(passes[:, -1])) for b in budgets}
    truth = final_truth(sweep, full_epochs)
    payload = {
        "zoo": zoo,
        "data": data,
        "n_candidates": len(sweep.names),
        "n_failed_training": int(sweep.failed.sum()),
        "full_epochs": full_epochs,
        "budgets_percent": percents,
        "budgets_epochs": budgets,
        "seed": seed,
        "split": {
            "dev": [n for n, d in zip(sweep.names, dev) if d],
            "test": [n for n, d in zip(sweep.names, dev) if not d],
        },
        "truth": "test accuracy at the final epoch",
        "truth_range": [float(np.nanmin(truth)), float(np.nanmax(truth))],
        "compute_fraction": compute,
        "sweep_seconds": sweep_seconds,
        "scores": scores,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scores.json").write_text(json.dumps(payload, indent=1, default=float))
    table = markdown_table(
        scores,
        budgets,
        percents,
        f"{zoo} zoo on {data}: {len(sweep.names)} candidates, {full_epochs} full epochs, seed {seed} "
        f"(test split: {int((~dev).sum())} candidates; truth: final test accuracy)",
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
        curves, out_dir / "tau_vs_budget.png", title=f"{zoo} zoo on {data}: test-split Kendall tau"
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
