"""The main job: choose the best of a zoo under a compute budget, and train it (``capjax select``).

:func:`select_zoo` builds a zoo and hands it, through a :class:`~capjax.workflows.live.LiveView`
that trains for real, to a selection policy (docs/method.md §6):

* by default capjax's engine (:func:`capjax.selection.capjax_engine`): rounds of training
  directed by one joint posterior over every candidate's final accuracy;
* with ``predictor``, a per-candidate predictor of the registry (the paper's reading among
  them): every candidate trained for the same early epochs that the budget allows, then
  the predicted best trained to the end.

Either way the chosen candidate is trained to the end and its parameters saved, and
``results.json``, ``results.csv`` and the figures are written (:mod:`capjax.workflows.report`).
With ``verify=True`` every candidate is then trained to the end, and the choice, the
ranking and the intervals are scored against the final *test* accuracy.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.bayes.decision import ranking
from capjax.data.sources import load_dataset
from capjax.predictors.registry import PREDICTORS, Needs, Task
from capjax.records.fields import beta_field
from capjax.scoring.metrics import score_predictor
from capjax.selection import POLICIES, PaidView, capjax_engine
from capjax.selection.engine import FEATURES, NUM_DRAWS, test_draws
from capjax.selection.view import View
from capjax.training.checkpoints import trained_params
from capjax.training.recorders import record_fns
from capjax.training.zoos import make_zoo
from capjax.workflows import report
from capjax.workflows.live import LiveView

DEFAULT_FULL_EPOCHS = 30
DEFAULT_BUDGET = "20%"
ENGINE = "engine"
"""The name ``results.json`` gives capjax's engine as the method (``predictor=None``)."""
LEVEL = 0.9


def select_predictors() -> list[str]:
    """The predictors ``select`` offers: those that need no fully trained references."""
    return sorted(name for name, spec in PREDICTORS.items() if spec.needs.references == 0)


def parse_budget(text: str | float) -> float:
    """A compute fraction from ``"20%"``, ``"0.2"`` or ``0.2``: of training every candidate fully."""
    raw = str(text).strip()
    try:
        fraction = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise CapjaxInputError(
            f"--budget {raw!r} is not a number; pass a fraction of training every candidate fully, e.g. 20% or 0.2"
        ) from None
    if not 0 < fraction <= 1:
        raise CapjaxInputError(f"--budget {raw!r} is {fraction:.3g} of full training; pass a value in (0, 100%]")
    return fraction


def run_name(zoo: str, data: str, n: int | None, full_epochs: int, seed: int, budget: float, method: str) -> str:
    """The default name of a run's folder, from what changes its results."""
    data = data.replace(":", "-").replace("/", "_")
    return f"{zoo}-{data}-n{n or 'default'}-e{full_epochs}-s{seed}-b{100 * budget:g}-{method}"


def check_predictor(name: str) -> Needs:
    """The needs of ``--predictor name``, or a one-line error when ``select`` cannot meet them."""
    if name not in PREDICTORS:
        raise CapjaxInputError(f"unknown --predictor {name!r}; choose one of {select_predictors()}")
    needs = PREDICTORS[name].needs
    if needs.references:
        raise CapjaxInputError(
            f"--predictor {name} is fitted on fully trained reference candidates, which select does not "
            f"have; choose one of {select_predictors()}, or score it with capjax bench"
        )
    return needs


def _sweep_options(needs: Needs | None, features: tuple[str, ...]) -> dict[str, Any]:
    """What the sweep records: the predictor's declared needs, or the engine's feature groups."""
    if needs is not None:
        return dict(interactions=needs.interactions, snapshot_params=needs.snapshots,
                    record_fns=record_fns(needs.fields) if needs.fields else None)
    fields = [f for group in features[1:] for f in FEATURES[group]]  # the curve needs val_acc only
    interactions = tuple(i for i in ("coupling", "hessian") if beta_field(i) in fields)
    signals = [f for f in fields if not f.startswith("beta_")]
    return dict(interactions=interactions, record_fns=record_fns(signals) if signals else None)


def smallest_budget_error(view: View, budget: float) -> None:
    """A one-line error when ``budget`` cannot pay for every candidate's first epoch and one finish."""
    n, full = len(view), view.full_epochs
    smallest = view.epochs_fraction(n + full - 1)
    if budget < smallest - 1e-12:
        raise CapjaxInputError(
            f"--budget {budget:.1%} is below the smallest that selects here, {smallest:.1%}: every candidate "
            f"one epoch, then the winner to the end, (N + full - 1) / (N x full) = ({n} + {full} - 1) / "
            f"({n} x {full}); pass --budget {math.ceil(1000 * smallest) / 10:g}% or more"
        )


def _measured_columns(view: View, draws: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Mean, 90% interval and P(best) of final *test* accuracy from draws of final validation accuracy."""
    test = test_draws(view, draws, seed)
    lower, upper = np.quantile(test, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    return {"mean": draws.mean(axis=0), "lower": lower, "upper": upper, "samples": test}


def _by_engine(view: View, budget: float, features: tuple[str, ...], p_best_stop: float,
               seed: int) -> dict[str, Any]:
    out = capjax_engine(view, budget, p_best_stop=p_best_stop, seed=seed, features=features)
    if out.chosen is None:
        raise CapjaxInputError(f"the selection could not finish: {out.reason}; check the failed candidates' reasons")
    return {"chosen": out.chosen, **_measured_columns(view, out.draws, seed), "rounds": out.rounds, "notes": {}}


def _by_predictor(view: View, predictor: str, needs: Needs, budget: float, seed: int) -> dict[str, Any]:
    """Uniform early epochs the budget allows, ``predictor``'s forecast, its best trained to the end."""
    n, full = len(view), view.full_epochs
    epochs = min(full, math.floor((view.epoch_budget(budget) - full) / max(n - 1, 1)))
    if epochs < max(1, needs.min_budget):
        need = view.epochs_fraction(n * needs.min_budget + full - needs.min_budget)
        raise CapjaxInputError(
            f"--predictor {predictor} needs >= {needs.min_budget} early epochs per candidate; --budget "
            f"{budget:.1%} gives {epochs}; pass --budget {math.ceil(1000 * need) / 10:g}% or more"
        )
    view.train_to({c: epochs for c in range(n)})
    forecast = PREDICTORS[predictor](Task(view.records(), epochs, full, seed=seed))
    chosen = int(forecast.ranking().order[0])
    reached = view.read("val_acc", epochs, np.arange(n))
    view.train_to({chosen: full})
    mean, lower, upper = (np.array(a, dtype=float) for a in (forecast.mean, forecast.lower, forecast.upper))
    notes = {}
    for c in range(n):
        if np.isfinite(mean[c]) and (min(mean[c], lower[c]) < 0 or max(mean[c], upper[c]) > 1):
            notes[c] = "paper's model: outside [0, 1]"
        elif np.isfinite(mean[c]) and mean[c] < reached[c]:
            notes[c] = f"paper's model: below the {reached[c]:.3f} already reached"
    measured = _measured_columns(view, np.full((NUM_DRAWS, 1), view.val_acc(full, [chosen])[0]), seed)
    mean[chosen], lower[chosen], upper[chosen] = (measured[key][0] for key in ("mean", "lower", "upper"))
    return {"chosen": chosen, "mean": mean, "lower": lower, "upper": upper, "samples": forecast.samples, "rounds": (),
            "notes": notes, "early_epochs": epochs}


def select_zoo(
    *,
    zoo: str = "transfer",
    data: str = "digits",
    data_dir: str | os.PathLike[str] | None = None,
    n: int | None = None,
    full_epochs: int = DEFAULT_FULL_EPOCHS,
    budget: str | float = DEFAULT_BUDGET,
    probe_widths: tuple[int, ...] | None = None,
    predictor: str | None = None,
    features: tuple[str, ...] = ("curve",),
    p_best_stop: float = 0.95,
    seed: int = 0,
    out: str | os.PathLike[str] = "results",
    run: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    verify: bool = False,
    progress: bool = True,
    console: Any = None,
) -> dict:
    """Choose the best of the ``zoo`` on ``data`` within ``budget``; returns the JSON it writes.

    Args:
      zoo: ``"transfer"`` or ``"hyper"`` (:data:`capjax.training.zoos.ZOOS`).
      data: a dataset spec (:func:`capjax.data.load_dataset`); ``data_dir`` for tfds.
      n: number of candidates (default: the zoo's default size).
      full_epochs: length of full training, the compute fraction's denominator per candidate.
      budget: compute, as a fraction of training every candidate fully (``0.2``, ``"20%"``),
        counted in training passes; finishing the winner is part of it.
      probe_widths: widths of the frozen probe (default: the zoo's).
      predictor: None for capjax's engine, or a name from :func:`select_predictors`.
      features: the engine's feature groups (:data:`capjax.selection.engine.FEATURES`),
        ``"curve"`` first; the sweep records what they need.
      p_best_stop: the engine stops exploring once its leader's P(best) reaches this.
      seed: seed of the zoo, data splits, training and posterior draws.
      out, run: results go to ``out/run`` (``run`` defaults to :func:`run_name`).
      cache_dir: pretrained-backbone cache.
      verify: then train every candidate to the end and score the choice on test accuracy.
      progress: show progress bars.
      console: a ``rich.console.Console`` to print to (default: a new one).

    Returns:
      The payload of ``results.json``: ``chosen``, ``compute`` (``fraction``: training
      passes spent over those of training everyone fully, without ``verify``; evaluation
      and beta_eff passes apart), ``ranking`` rows (``name, mean, lower, upper, p_best,
      epochs, measured, reason, true``, plus ``rank`` and ``note``), ``rounds``, ``winner``,
      the settings, and with ``verify`` the scores.
    """
    if console is None:
        from rich.console import Console

        console = Console(width=140)
    fraction = parse_budget(budget)
    needs = None if predictor is None else check_predictor(predictor)
    features = tuple(features)
    if not features or features[0] != "curve" or not set(features) <= set(FEATURES):
        raise CapjaxInputError(f"--features {','.join(features)!r}: start with curve, then any of beta, weights")
    if not 0 < p_best_stop <= 1:
        raise CapjaxInputError(f"--p-best-stop {p_best_stop}: pass a probability in (0, 1]")
    method = predictor or ENGINE
    t0 = time.perf_counter()
    dataset = load_dataset(data, data_dir=data_dir, seed=seed)
    candidates = make_zoo(zoo, data, n, seed=seed, probe_widths=probe_widths)
    run_dir = Path(out) / (run or run_name(zoo, data, n, full_epochs, seed, fraction, method))
    view = LiveView(candidates, dataset, full_epochs, run_dir / "sweep", progress=progress, cache_dir=cache_dir,
                    **_sweep_options(needs, features))
    smallest_budget_error(view, fraction)
    console.print(
        f"[bold]capjax select[/bold]: {len(candidates)} candidates ({zoo} zoo) on {dataset.name}, "
        f"{fraction:.0%} of the compute of training all for {full_epochs} epochs, by "
        f"{'capjax engine' if predictor is None else predictor} → {run_dir}"
    )
    if predictor is None:
        decision = _by_engine(view, fraction, features, p_best_stop, seed)
    else:
        decision = _by_predictor(view, predictor, needs, fraction, seed)
    chosen = decision["chosen"]
    names = view.names
    reasons = {names[c]: why for c, why in enumerate(view.reasons()) if why}
    score = np.where(view.failed, np.nan, decision["mean"])
    rk = ranking(names, score, mean=decision["mean"], lower=decision["lower"], upper=decision["upper"],
                 samples=decision["samples"], level=LEVEL, reasons=reasons)
    epochs = view.paid.copy()
    deciding, training = (float(sum(t)) for t in zip(*view.timings)) if view.timings else (0.0, 0.0)
    compute = {"fraction": view.fraction, "train_passes": view.spent, "train_passes_all_full": view.full_cost,
               **view.passes_eval_beta()}
    winner_dir = run_dir / "winner"
    report.save_params(winner_dir, trained_params(run_dir / "sweep", candidates, dataset, names[chosen]))
    payload: dict[str, Any] = {
        "chosen": names[chosen],
        "compute": compute,
        "method": method,
        "budget": fraction,
        "zoo": zoo,
        "data": dataset.name,
        "n_candidates": len(candidates),
        "full_epochs": full_epochs,
        "features": list(features) if predictor is None else None,
        "seed": seed,
        "winner": {"name": names[chosen], "epochs": int(epochs[chosen]),
                   "val_acc": float(view.val_acc(full_epochs, [chosen])[0]), "params": str(winner_dir)},
        "rounds": [{"fraction": f, "p_best": p} for f, p in decision["rounds"]],
        # the policy's own time between rounds against the rounds' training (after the first)
        "round_seconds": {"deciding": deciding, "training": training},
    }
    # what the selection saw, before --verify trains the rest
    curves = {name: (np.arange(epochs[c] + 1),
                     np.array([view.read("val_acc", e, [c])[0] for e in range(epochs[c] + 1)]))
              for c, name in enumerate(names)}
    truth = None
    if verify:
        truth = _verify(view, payload, rk, epochs)
    payload["ranking"] = report.rows(rk, epochs, full_epochs, decision["notes"], truth)
    payload["seconds"] = time.perf_counter() - t0
    report.write(run_dir, payload, console, curves=curves, level=LEVEL)
    return payload


def _verify(view: View, payload: dict, rk: Any, epochs: np.ndarray) -> np.ndarray:
    """Every candidate to the end; the choice, ranking and intervals scored on final test accuracy.

    Nothing here feeds back into the selection: it has been made and paid for. Successive
    halving and uniform early accuracy replay the now full records at no more compute.
    """
    full = view.full_epochs
    view.train_to({c: full for c in range(len(view))})
    sweep = view.records()
    replay = PaidView(sweep, full)
    truth = replay.final_truth()
    chosen = view.names.index(payload["chosen"])
    open_ = (epochs < full) & np.isfinite(rk.lower) & np.isfinite(truth)
    inside = (rk.lower <= truth) & (truth <= rk.upper)
    # a candidate that diverged has no final accuracy: score the others, as the bench does
    ok = np.isfinite(truth) & np.isfinite(rk.score)
    scores = (score_predictor(rk.score[ok], truth[ok], k=min(5, int(ok.sum()))) if ok.sum() >= 2
              else {"tau": None, "tau_lo": None, "tau_hi": None})
    scores = {k: None if v is None or not np.isfinite(v) else v for k, v in scores.items() if k.startswith("tau")}
    policies = {}
    for name in ("successive_halving", "uniform"):
        out = POLICIES[name](PaidView(sweep, full), payload["compute"]["fraction"])
        policies[name] = {"chosen": None if out.chosen is None else view.names[out.chosen],
                          "regret": None if out.chosen is None else out.regret(truth),
                          "compute": out.fraction, "reason": out.reason}
    payload["verify"] = {
        "regret": float(np.nanmax(truth) - truth[chosen]),
        "best": view.names[int(np.nanargmax(truth))],
        "tau": scores["tau"], "tau_lo": scores["tau_lo"], "tau_hi": scores["tau_hi"],
        "coverage_not_finished": float(inside[open_].mean()) if open_.any() else None,
        "n_not_finished": int(open_.sum()),
        "policies": policies,
    }
    return truth
