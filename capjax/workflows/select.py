"""The main job: rank a zoo of candidates from a few early epochs (what ``capjax select`` runs).

:func:`select_zoo` builds a zoo, fine-tunes every candidate for the early budget while
recording exactly what the chosen predictor declares it needs (its
:class:`~capjax.predictors.Needs`), forecasts each candidate's final accuracy, and writes
``results.json``, ``results.csv`` and the figures. With ``verify=True`` it also trains
every candidate to the end and scores the forecast against the truth.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from capjax import plots
from capjax.base.validation import CapjaxInputError
from capjax.data.sources import load_dataset
from capjax.predictors.registry import PREDICTORS, Needs, Task
from capjax.records.fields import beta_field
from capjax.records.sweep import load_sweep
from capjax.scoring.metrics import score_predictor
from capjax.scoring.protocol import budget_epochs
from capjax.selection import POLICIES, PaidView
from capjax.training.recorders import record_fns
from capjax.training.sweep import run_sweep
from capjax.training.zoos import make_zoo

DEFAULT_FULL_EPOCHS = 30
DEFAULT_BUDGET = "5"
DEFAULT_PREDICTOR = "beta_hessian"
"""Chosen on the development split of the four benchmark zoos (README): of the two
per-candidate beta_eff predictors, hessian ranked better (mean dev Kendall tau 0.27 vs 0.16
at a 10% budget)."""


def select_predictors() -> list[str]:
    """The predictors ``select`` offers: those that need no fully trained references."""
    return sorted(name for name, spec in PREDICTORS.items() if spec.needs.references == 0)


def parse_budget(text: str, full_epochs: int) -> int:
    """Early epochs from ``"5"`` (epochs) or ``"10%"`` (of ``full_epochs``, at least 1)."""
    text = str(text).strip()
    try:
        epochs = budget_epochs(float(text[:-1]), full_epochs) if text.endswith("%") else int(text)
    except ValueError:
        raise CapjaxInputError(
            f"budget {text!r} is not a number; pass epochs (e.g. 5) or a percentage (e.g. 10%)"
        ) from None
    if epochs < 1:
        raise CapjaxInputError(f"budget {text!r} gives {epochs} epochs; pass at least 1 epoch")
    if epochs > full_epochs:
        raise CapjaxInputError(
            f"budget of {epochs} epochs exceeds the full training of {full_epochs} epochs; "
            f"pass --budget <= {full_epochs} or raise --full-epochs"
        )
    return epochs


def run_name(zoo: str, data: str, n: int | None, seed: int) -> str:
    """The default name of a run's folder: zoo, data, size and seed."""
    data = data.replace(":", "-").replace("/", "_")
    return f"{zoo}-{data}-n{n or 'default'}-s{seed}"


def check_predictor(name: str, budget: int) -> Needs:
    """The needs of ``--predictor name``, or a one-line error when ``select`` cannot meet them."""
    if name not in PREDICTORS:
        raise CapjaxInputError(f"unknown --predictor {name!r}; choose one of {select_predictors()}")
    needs = PREDICTORS[name].needs
    if needs.references:
        raise CapjaxInputError(
            f"--predictor {name} is fitted on fully trained reference candidates, which select does not "
            f"have; choose one of {select_predictors()}, or score it with capjax bench"
        )
    if budget < needs.min_budget:
        raise CapjaxInputError(
            f"--predictor {name} needs a budget of >= {needs.min_budget} epochs; pass --budget {needs.min_budget} "
            "or more"
        )
    return needs


def select_zoo(
    *,
    zoo: str = "transfer",
    data: str = "digits",
    data_dir: str | os.PathLike[str] | None = None,
    n: int | None = None,
    full_epochs: int = DEFAULT_FULL_EPOCHS,
    budget: str | int = DEFAULT_BUDGET,
    probe_widths: tuple[int, ...] | None = None,
    predictor: str = DEFAULT_PREDICTOR,
    seed: int = 0,
    out: str | os.PathLike[str] = "results",
    run: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    verify: bool = False,
    progress: bool = True,
    console: Any = None,
) -> dict:
    """Rank the ``zoo`` on ``data`` from ``budget`` early epochs; returns the JSON it writes.

    Args:
      zoo: ``"transfer"`` or ``"hyper"`` (:data:`capjax.training.zoos.ZOOS`).
      data: a dataset spec (:func:`capjax.data.load_dataset`); ``data_dir`` for tfds.
      n: number of candidates (default: the zoo's default size).
      full_epochs: length of full training, where final accuracy is read.
      budget: early epochs, as an int or a string of epochs (``"5"``) or percent (``"10%"``).
      probe_widths: widths of the frozen probe (default: the zoo's).
      predictor: a name from :func:`select_predictors`.
      seed: seed of the zoo, data splits and training.
      out, run: results go to ``out/run`` (``run`` defaults to :func:`run_name`).
      cache_dir: pretrained-backbone cache.
      verify: also train every candidate to ``full_epochs`` and score the forecast.
      progress: show progress bars.
      console: a ``rich.console.Console`` to print to (default: a new one).

    Returns:
      The payload of ``results.json``: settings, ``ranking`` rows (see
      :meth:`capjax.bayes.Ranking.table`, plus ``early_acc`` and ``true``), ``compute``,
      and with ``verify`` the scores of the forecast and of early accuracy, and the regret on
      the final test accuracy of this selection (its top candidate finished) and of
      successive halving and uniform early accuracy at no more compute.
    """
    if console is None:
        from rich.console import Console

        console = Console(width=140)
    budget = parse_budget(str(budget), full_epochs)
    needs = check_predictor(predictor, budget)
    t0 = time.perf_counter()
    dataset = load_dataset(data, data_dir=data_dir, seed=seed)
    candidates = make_zoo(zoo, data, n, seed=seed, probe_widths=probe_widths)
    run_dir = Path(out) / (run or run_name(zoo, data, n, seed))
    sweep_dir = run_dir / "sweep"
    console.print(
        f"[bold]capjax select[/bold]: {len(candidates)} candidates ({zoo} zoo) on {dataset.name}, "
        f"{budget} of {full_epochs} epochs each → {run_dir}"
    )
    common = dict(
        out_dir=sweep_dir,
        interactions=needs.interactions,
        record_fns=record_fns(needs.fields, last_epoch=budget) if needs.fields else None,
        snapshot_params=needs.snapshots,
        progress=progress,
        cache_dir=cache_dir,
    )
    run_sweep(candidates, dataset, epochs=budget, **common)
    if verify:
        run_sweep(candidates, dataset, epochs=full_epochs, **common)
    sweep = load_sweep(sweep_dir)
    forecast = PREDICTORS[predictor](Task(sweep, budget, full_epochs, seed=seed))
    early = sweep.array("val_acc", budget)[:, -1]
    truth = sweep.array("val_acc", full_epochs)[:, -1] if verify else None
    ranking = forecast.ranking()
    extra = {"early_acc": early, "true": truth if verify else np.full(len(early), np.nan)}
    rows = ranking.table(extra)

    passes = sweep.array("passes_train", full_epochs if verify else budget)
    spent = float(np.nansum(passes[:, budget - 1]))
    full = float(np.nansum(passes[:, -1])) if verify else spent * full_epochs / budget
    payload: dict[str, Any] = {
        "zoo": zoo,
        "data": dataset.name,
        "n_candidates": len(candidates),
        "budget_epochs": budget,
        "full_epochs": full_epochs,
        "predictor": predictor,
        "interactions": list(needs.interactions),
        "seed": seed,
        "ranking": rows,
        "compute": {
            "train_passes_spent": spent,
            "train_passes_all_full": full,
            "fraction_of_full": spent / full if full else None,
        },
        "seconds": time.perf_counter() - t0,
    }
    if verify:
        k = min(5, len(candidates))
        payload["verify"] = {
            "predictor": score_predictor(forecast.score, truth, lower=forecast.lower, upper=forecast.upper, k=k),
            "early_acc_baseline": score_predictor(early, truth, k=k),
            "policies": _policies_at_equal_compute(sweep, full_epochs, budget, int(ranking.order[0])),
        }

    title = f"predicted final accuracy after {full_epochs} epochs ({predictor}, from {budget} epochs)"
    console.print(ranking.rich_table(title, {"early acc": early, **({"true final acc": truth} if verify else {})}))
    c = payload["compute"]
    console.print(
        f"compute: {c['train_passes_spent']:.3g} training passes spent, {c['fraction_of_full']:.1%} of training "
        f"all {len(candidates)} candidates fully"
    )
    if verify:
        for label, s in (
            ("prediction", payload["verify"]["predictor"]),
            ("early accuracy (baseline)", payload["verify"]["early_acc_baseline"]),
        ):
            console.print(
                f"verify, {label}: Kendall tau {s['tau']:.2f} [{s['tau_lo']:.2f}, {s['tau_hi']:.2f}], "
                f"Spearman {s['rho']:.2f}, top-1 regret {s['regret']:.3f}"
                + (f", 90% coverage {s['coverage']:.2f}" if s.get("coverage") is not None else "")
            )
        for name, p in payload["verify"]["policies"].items():
            console.print(
                f"verify, {name.replace('_', ' ')}: regret {p['regret']:.3f} on the final test accuracy "
                f"at {p['compute']:.1%} compute" if p["regret"] is not None else f"verify, {name}: {p['reason']}"
            )
    _write(run_dir, payload, rows)
    best = [r["name"] for r in rows[:3] if r["rank"]]
    figures = ["predictions.png"]
    for interaction in needs.interactions:
        field = beta_field(interaction)
        values = sweep.array(field, budget)
        plots.plot_trajectories(
            {name: (np.arange(1, budget + 1), values[j]) for j, name in enumerate(sweep.names)},
            run_dir / f"{field}_trajectories.png",
            ylabel=field,
            highlight=best,
            title=f"{field} during fine-tuning (top 3 predicted in red)",
        )
        figures.append(f"{field}_trajectories.png")
    plots.plot_predictions(
        sweep.names,
        ranking.mean,
        ranking.lower,
        ranking.upper,
        run_dir / "predictions.png",
        truth=truth,
        title=f"predicted final accuracy ({predictor}, {budget} epochs)",
    )
    console.print(f"wrote {run_dir}/results.json, results.csv, " + ", ".join(figures))
    return payload


def _policies_at_equal_compute(sweep: Any, full_epochs: int, budget: int, top: int) -> dict[str, dict]:
    """Regret on the final test accuracy of this selection and of two baselines at its compute.

    The selection's compute is its early epochs for everyone plus finishing its top-ranked
    candidate, as a policy must (:class:`capjax.selection.PaidView`); successive halving
    and uniform early accuracy replay the same records at no more compute.
    """
    mine = PaidView(sweep, full_epochs)
    mine.train(np.arange(len(mine)), budget)
    mine.train([top], full_epochs)
    truth = mine.final_truth()
    out = {"this_selection": {"chosen": sweep.names[top], "regret": float(np.nanmax(truth) - truth[top]),
                              "compute": mine.fraction}}
    for name in ("successive_halving", "uniform"):
        view = PaidView(sweep, full_epochs)
        result = POLICIES[name](view, mine.fraction)
        out[name] = {
            "chosen": None if result.chosen is None else sweep.names[result.chosen],
            "regret": None if result.chosen is None else result.regret(truth),
            "compute": result.fraction,
            "reason": result.reason,
        }
    return out


def _write(run_dir: Path, payload: dict, rows: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    with open(run_dir / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))
