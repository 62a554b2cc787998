"""How the combined predictor's design was chosen: on development candidates only (issue 5).

For each bench sweep given (by default the four seed-0 zoos under ``benchmarks/results``),
the candidates are split exactly as ``capjax bench`` splits them, and only the
*development* half is used. Among those, 5-fold cross-validation (two shuffles) fits each
design on four folds and predicts the fifth; the score is Kendall tau between the
out-of-fold predictions and the truth. The designs:

* ``six/acc``: the first combined predictor: six features (early accuracy, its gain, the
  curve extrapolation, training loss, log beta_eff and its change; coupling) regressed
  on final accuracy;
* ``all/acc``: every feature of :func:`capjax.predictors.combined.combined_features`, on accuracy;
* ``all/logit``: every feature, on the logit of final accuracy (the chosen design);
* ``early_acc``: plain early accuracy, for reference (no fit).

Each fit is the same Bayesian linear model as the predictor, with the precisions at
their evidence maximum (``method="fast"``) instead of NUTS so that the 320 fits
take seconds. The test split is never read.

    python benchmarks/combined_design.py    # writes benchmarks/results/combined_design.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import kendalltau
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._timing import RESULTS, write_json  # noqa: E402
from capjax.bayes import regression_draws  # noqa: E402
from capjax.predictors import Task  # noqa: E402
from capjax.predictors.combined import combined_features, logit, standardise  # noqa: E402
from capjax.records import load_sweep  # noqa: E402
from capjax.scoring.protocol import budget_epochs, split_candidates  # noqa: E402

ZOOS = (
    "transfer-digits-n60-e50-s0",
    "hyper-digits-n60-e50-s0",
    "transfer-mnist1d-n60-e30-s0",
    "hyper-mnist1d-n60-e30-s0",
)
SIX = ("logit_acc", "acc_gain", "logit_curve", "train_loss", "log_beta_coupling", "log_beta_change_coupling")


def designs(X: np.ndarray, names: list[str]) -> dict[str, tuple[np.ndarray, bool]]:
    """Design name -> (feature matrix, whether the target is logit accuracy)."""
    six = X[:, [names.index(n) for n in SIX]].copy()
    for n in ("logit_acc", "logit_curve"):  # the first design read accuracies, not logits
        six[:, SIX.index(n)] = expit(six[:, SIX.index(n)])
    return {"six/acc": (six, False), "all/acc": (X, False), "all/logit": (X, True)}


def cv_tau(X: np.ndarray, y: np.ndarray, on_logit: bool, shuffles: int = 2, folds: int = 5) -> float:
    """Mean over shuffles of Kendall tau between out-of-fold predictions and ``y``."""
    taus = []
    for r in range(shuffles):
        oof = np.full(len(y), np.nan)
        for tr, te in KFold(folds, shuffle=True, random_state=r).split(X):
            fit = np.zeros(len(y), bool)
            fit[tr] = True
            Z = standardise(X, fit)
            target = logit(y[tr]) if on_logit else y[tr]
            _, _, mean, *_ = regression_draws(Z[tr], target, Z[te], method="fast")
            oof[te] = np.asarray(mean)
        taus.append(kendalltau(oof, y).statistic)
    return float(np.mean(taus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the bench sweeps are")
    parser.add_argument("--zoos", default=",".join(ZOOS), help="bench result directories (seed is the -sN suffix)")
    parser.add_argument("--budgets", default="5,10", help="budgets in percent of full training")
    args = parser.parse_args()
    out: dict[str, dict] = {}
    for zoo in args.zoos.split(","):
        full = int(zoo.split("-e")[-1].split("-")[0])
        seed = int(zoo.rsplit("-s", 1)[-1])
        sweep = load_sweep(args.results / zoo / "sweep")
        truth = sweep.array("val_acc", full)[:, -1]
        dev = split_candidates(len(sweep.names), seed) & np.isfinite(truth)
        for percent in map(float, args.budgets.split(",")):
            task = Task(sweep, budget_epochs(percent, full), full)
            X, names = combined_features(task)
            row = {"early_acc": float(kendalltau(X[dev, names.index("logit_acc")], truth[dev]).statistic)}
            for name, (F, on_logit) in designs(X, names).items():
                row[name] = cv_tau(F[dev], truth[dev], on_logit)
            out[f"{zoo}@{percent:g}%"] = row
            print(f"{zoo} {percent:g}%: " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    mean = {k: float(np.mean([r[k] for r in out.values()])) for k in next(iter(out.values()))}
    print("mean over zoos and budgets: " + "  ".join(f"{k} {v:.2f}" for k, v in mean.items()))
    write_json("combined_design", {"split": "development candidates only", "cells": out, "mean": mean})


if __name__ == "__main__":
    main()
