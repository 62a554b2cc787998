"""Command line: ``capjax select`` (pick the best candidate early) and ``capjax bench``.

``capjax select`` with no arguments builds the default transfer zoo on scikit-learn's
digits, pretrains each backbone once (cached), fine-tunes every candidate for a few early
epochs with the frozen probe, records beta_eff, predicts each candidate's final
accuracy with a 90% interval, and prints the ranking. ``--verify`` trains every candidate
to the end and scores the prediction against the truth.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from capjax.bench import budget_epochs
from capjax.validation import CapjaxInputError

DEFAULT_FULL_EPOCHS = 30
DEFAULT_BUDGET = "5"
DEFAULT_PREDICTOR = "beta_hessian"
"""Chosen on the development split of the four benchmark zoos (README): of the two
per-candidate beta_eff predictors, hessian ranked better (mean dev Kendall tau 0.27 vs 0.16
at a 10% budget)."""


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


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"probe widths {text!r}: pass integers separated by commas, e.g. 64,32"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"probe widths {text!r}: every width must be >= 1")
    return widths


def _add_common(p: argparse.ArgumentParser, *, interaction: bool = True) -> None:
    p.add_argument(
        "--zoo",
        choices=["transfer", "hyper"],
        default="transfer",
        help="transfer: backbones of several architectures and pretraining sources/budgets, "
        "fine-tuned alike (the paper's setting); hyper: one MLP family over lr, width, depth, "
        "weight decay, init scale and batch size (default: transfer)",
    )
    p.add_argument(
        "--data",
        default="digits",
        help="digits (scikit-learn's, bundled), mnist1d (generated locally), npz:PATH "
        "(x_train, y_train, x_test, y_test[, x_val, y_val]) or tfds:NAME (prepared with "
        "array_record in --data-dir; never downloaded) (default: digits)",
    )
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir for tfds:NAME")
    p.add_argument("--n", type=int, default=None, help="number of candidates (default: the zoo's default size)")
    p.add_argument(
        "--full-epochs",
        type=int,
        default=DEFAULT_FULL_EPOCHS,
        help=f"length of full training, where final accuracy is read (default: {DEFAULT_FULL_EPOCHS})",
    )
    p.add_argument(
        "--probe-widths",
        type=_widths,
        default=None,
        help="widths of the frozen probe, e.g. 64,32 (default: the zoo's, 64,32)",
    )
    if interaction:
        p.add_argument(
            "--interaction",
            choices=["coupling", "hessian"],
            nargs="+",
            default=["hessian"],
            help="beta_eff interaction(s) to record (SPEC 2.2) (default: hessian, chosen on the benchmark's "
            "development split)",
        )
    p.add_argument("--seed", type=int, default=0, help="seed of the zoo, data splits and training (default: 0)")
    p.add_argument(
        "--out", type=Path, default=Path("results"), help="output root; results go to OUT/RUN (default: results)"
    )
    p.add_argument("--run", default=None, help="run name (default: derived from zoo, data and seed)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="pretrained-backbone cache (default: ~/.cache/capjax or $CAPJAX_CACHE)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    import capjax.combined  # noqa: F401  (registers the supervised predictors)
    from capjax.predictors import PREDICTORS

    parser = argparse.ArgumentParser(
        prog="capjax", description="Which candidate model ends up best, from a few early epochs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    select = sub.add_parser(
        "select",
        help="rank a zoo of candidates from a few early epochs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(select)
    select.add_argument(
        "--budget",
        default=DEFAULT_BUDGET,
        help=f"early epochs to train each candidate: an integer, or a percentage of "
        f"--full-epochs such as 10%% (default: {DEFAULT_BUDGET})",
    )
    select.add_argument(
        "--predictor",
        default=DEFAULT_PREDICTOR,
        choices=sorted(PREDICTORS),
        help=f"how to predict final accuracy (default: {DEFAULT_PREDICTOR}, the paper's "
        "per-candidate Bayesian ridge of accuracy on beta_eff read at beta_eff = 0)",
    )
    select.add_argument(
        "--verify",
        action="store_true",
        help="also train every candidate to --full-epochs and score the prediction "
        "(Kendall tau, Spearman, top-1 regret, interval coverage, compute saved)",
    )
    from capjax.bench import add_parser

    add_parser(sub)
    return parser


def _run_name(args: argparse.Namespace) -> str:
    data = args.data.replace(":", "-").replace("/", "_")
    return args.run or f"{args.zoo}-{data}-n{args.n or 'default'}-s{args.seed}"


def build_zoo(args: argparse.Namespace, dataset_name: str) -> list:
    from capjax import zoo

    make = zoo.transfer_zoo if args.zoo == "transfer" else zoo.hyperparameter_zoo
    candidates = make(dataset_name, args.n, seed=args.seed) if args.n else make(dataset_name, seed=args.seed)
    if args.probe_widths:
        candidates = [dataclasses.replace(c, probe_widths=args.probe_widths) for c in candidates]
    return candidates


def _table(rows: list[dict], verify: bool, title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ["rank", "candidate", "predicted final acc", "90% interval", "P(best)", "early acc"] + (
        ["true final acc"] if verify else []
    ):
        table.add_column(col, justify="left" if col == "candidate" else "right")
    fmt = lambda v, spec=".3f": "—" if v is None or not np.isfinite(v) else format(v, spec)
    for r in rows:
        interval = "—" if r["lower"] is None or not np.isfinite(r["lower"]) else f"[{r['lower']:.3f}, {r['upper']:.3f}]"
        cells = [
            str(r["rank"]) if r["rank"] else "—",
            r["name"] + (f"  [red](failed: {r['reason']})[/red]" if r["reason"] else ""),
            fmt(r["mean"]),
            interval,
            fmt(r["p_best"], ".2f"),
            fmt(r["early_acc"]),
        ]
        if verify:
            cells.append(fmt(r["true"]))
        table.add_row(*cells)
    return table


def select(args: argparse.Namespace) -> dict:
    """The main job; returns the JSON payload it writes."""
    from rich.console import Console

    from capjax import plots, scoring
    from capjax.data import load_dataset
    from capjax.predictors import PREDICTORS, Task
    from capjax.sweep import load_sweep, run_sweep

    console = Console(width=None if sys.stdout.isatty() else 140)
    budget = parse_budget(args.budget, args.full_epochs)
    t0 = time.perf_counter()
    dataset = load_dataset(args.data, data_dir=args.data_dir, seed=args.seed)
    candidates = build_zoo(args, args.data)
    run_dir = args.out / _run_name(args)
    sweep_dir = run_dir / "sweep"
    console.print(
        f"[bold]capjax select[/bold]: {len(candidates)} candidates ({args.zoo} zoo) on {dataset.name}, "
        f"{budget} of {args.full_epochs} epochs each → {run_dir}"
    )
    common = dict(
        out_dir=sweep_dir, interactions=tuple(args.interaction), progress=not args.no_progress, cache_dir=args.cache_dir
    )
    run_sweep(candidates, dataset, epochs=budget, **common)
    if args.verify:
        run_sweep(candidates, dataset, epochs=args.full_epochs, **common)
    sweep = load_sweep(sweep_dir)
    predictor = args.predictor
    needed = predictor.rsplit("_", 1)[-1]
    if predictor.startswith("beta_") and needed not in args.interaction:
        raise CapjaxInputError(f"--predictor {predictor} needs --interaction {needed}")
    forecast = PREDICTORS[predictor](Task(sweep, budget, args.full_epochs, seed=args.seed))
    early = sweep.array("val_acc", budget)[:, -1]
    p_best = forecast.prob_best()
    mean = forecast.mean if forecast.mean is not None else np.full(len(sweep.names), np.nan)
    lower = forecast.lower if forecast.lower is not None else np.full_like(mean, np.nan)
    upper = forecast.upper if forecast.upper is not None else np.full_like(mean, np.nan)
    truth = sweep.array("val_acc", args.full_epochs)[:, -1] if args.verify else None

    order = np.argsort(-np.where(np.isfinite(forecast.score), forecast.score, -np.inf), kind="stable")
    rows = []
    for rank, i in enumerate(order, start=1):
        name = sweep.names[i]
        ok = np.isfinite(forecast.score[i])
        rows.append(
            {
                "rank": rank if ok else None,
                "name": name,
                "score": float(forecast.score[i]),
                "mean": float(mean[i]),
                "lower": float(lower[i]),
                "upper": float(upper[i]),
                "p_best": None if p_best is None else float(p_best[i]),
                "early_acc": float(early[i]),
                "true": None if truth is None else float(truth[i]),
                "reason": forecast.reasons.get(name),
            }
        )
    passes = sweep.array("passes_train", args.full_epochs if args.verify else budget)
    spent = float(np.nansum(passes[:, budget - 1]))
    full = float(np.nansum(passes[:, -1])) if args.verify else spent * args.full_epochs / budget
    payload = {
        "zoo": args.zoo,
        "data": dataset.name,
        "n_candidates": len(candidates),
        "budget_epochs": budget,
        "full_epochs": args.full_epochs,
        "predictor": predictor,
        "interactions": args.interaction,
        "seed": args.seed,
        "ranking": rows,
        "compute": {
            "train_passes_spent": spent,
            "train_passes_all_full": full,
            "fraction_of_full": spent / full if full else None,
        },
        "seconds": time.perf_counter() - t0,
    }
    if args.verify:
        k = min(5, len(candidates))
        payload["verify"] = {
            "predictor": scoring.score_predictor(
                forecast.score, truth, lower=forecast.lower, upper=forecast.upper, k=k
            ),
            "early_acc_baseline": scoring.score_predictor(early, truth, k=k),
        }

    console.print(
        _table(
            rows,
            args.verify,
            f"predicted final accuracy after {args.full_epochs} epochs ({predictor}, from {budget} epochs)",
        )
    )
    c = payload["compute"]
    console.print(
        f"compute: {c['train_passes_spent']:.3g} training passes spent, {c['fraction_of_full']:.1%} of training "
        f"all {len(candidates)} candidates fully"
    )
    if args.verify:
        for label, s in (
            ("prediction", payload["verify"]["predictor"]),
            ("early accuracy (baseline)", payload["verify"]["early_acc_baseline"]),
        ):
            console.print(
                f"verify, {label}: Kendall tau {s['tau']:.2f} [{s['tau_lo']:.2f}, {s['tau_hi']:.2f}], "
                f"Spearman {s['rho']:.2f}, top-1 regret {s['regret']:.3f}"
                + (f", 90% coverage {s['coverage']:.2f}" if s.get("coverage") is not None else "")
            )

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    with open(run_dir / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best = [r["name"] for r in rows[:3] if r["rank"]]
    traj = {
        f"beta_{k}": {
            n: (np.arange(1, budget + 1), sweep.array(f"beta_{k}", budget)[j]) for j, n in enumerate(sweep.names)
        }
        for k in args.interaction
    }
    for field, curves in traj.items():
        plots.plot_trajectories(
            curves,
            run_dir / f"{field}_trajectories.png",
            ylabel=field,
            highlight=best,
            title=f"{field} during fine-tuning (top 3 predicted in red)",
        )
    plots.plot_predictions(
        sweep.names,
        mean,
        lower,
        upper,
        run_dir / "predictions.png",
        truth=truth,
        title=f"predicted final accuracy ({predictor}, {budget} epochs)",
    )
    console.print(f"wrote {run_dir}/results.json, results.csv, predictions.png and the beta_eff trajectory PNGs")
    return payload


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "select":
            select(args)
        elif args.command == "bench":
            from capjax.bench import bench

            bench(args)
    except CapjaxInputError as err:
        print(f"capjax: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
