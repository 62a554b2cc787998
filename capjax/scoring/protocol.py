"""The benchmark protocol: every predictor on one zoo, scored on candidates it was not tuned on.

docs/method.md §5. The candidates are split once, by seed, into a *development* half and
a *test* half (:func:`split_candidates`). The truth a prediction is scored on is each
candidate's final *test* accuracy. Supervised predictors fit on the development
candidates' final *validation* accuracy only (what a user knows of a finished reference;
the test split stays unseen); unsupervised signals choose their direction there. A supervised
predictor's development score is cross-fitted (:func:`cross_fitted`), never in-sample.
Any choice made on results (which beta_eff formulation is "the paper's method" at a
budget, the ``beta_best`` row; the single best predictor, the ``single_best`` row) is made
on the development split and reported on the test split.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from capjax.predictors.registry import PREDICTORS, Task
from capjax.scoring.metrics import score_predictor

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
CROSS_FIT_FOLDS = 5


def budget_epochs(percent: float, full_epochs: int) -> int:
    """Early epochs for a budget given in percent of full training (at least one epoch)."""
    return max(1, int(round(percent / 100 * full_epochs)))


def final_truth(sweep, full_epochs: int) -> np.ndarray:
    """``(C,)`` the truth of every score: final *test* accuracy (NaN where a candidate failed)."""
    return sweep.array("test_acc", full_epochs)[:, -1]


def split_candidates(n: int, seed: int, dev_fraction: float = 0.5) -> np.ndarray:
    """``(n,)`` bool mask of development candidates, a seeded random ``dev_fraction``."""
    dev = np.zeros(n, bool)
    dev[np.random.default_rng(seed).permutation(n)[: int(round(dev_fraction * n))]] = True
    return dev


def _score(forecast, truth: np.ndarray, mask: np.ndarray, seed: int) -> dict:
    sel = mask & np.isfinite(truth)
    lower = None if forecast.lower is None else forecast.lower[sel]
    upper = None if forecast.upper is None else forecast.upper[sel]
    return score_predictor(
        forecast.score[sel], truth[sel], lower=lower, upper=upper, k=min(5, int(sel.sum())), seed=seed
    )


def cross_fitted(predictor, task, known: np.ndarray, dev: np.ndarray, seed: int, folds: int = CROSS_FIT_FOLDS):
    """The forecast of a supervised ``predictor`` for the development candidates, out of fold.

    The development candidates are split into ``folds`` seeded folds; each fold is
    predicted by a fit on the other folds' ``known`` final accuracy only. The test
    candidates keep NaN.
    """
    dev_idx = np.flatnonzero(dev)
    fold_of = np.random.default_rng(seed).permutation(len(dev_idx)) % folds
    score, lower, upper = (np.full(len(known), np.nan) for _ in range(3))
    for f in range(folds):
        held = dev_idx[fold_of == f]
        reference = np.where(dev, known, np.nan)
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
    """Score every predictor at every budget; returns ``{predictor: {budget: {"dev", "test", ...}}}``.

    Scored on the final test accuracy; supervised predictors see the development
    candidates' final validation accuracy only.
    """
    truth = final_truth(sweep, full_epochs)
    known = sweep.array("val_acc", full_epochs)[:, -1]
    reference = np.where(dev, known, np.nan)
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
                supervised = PREDICTORS[p].needs.references > 0
                dev_forecast = cross_fitted(PREDICTORS[p], task, known, dev, seed) if supervised else forecast
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
