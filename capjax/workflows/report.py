"""What a selection leaves behind: the ranking rows, the terminal table, files, figures, the winner.

``results.json`` and ``results.csv`` hold the same rows (:func:`rows`); the figures are
``curves.png`` (every candidate's learning curve with its predicted final interval),
``p_best.png`` (P(best) per candidate over the engine's rounds) and ``predictions.png``
(predicted vs true final test accuracy when verified, else the predictions with their
intervals). The winner's trained parameters are an orbax checkpoint in ``winner/``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from capjax import plots
from capjax.base.distributed import orbax_primary_only
from capjax.base.validation import CapjaxInputError
from capjax.bayes.decision import Ranking

LEVEL = 0.9
"""The level of every interval a selection reports."""

COLUMNS = ("rank", "name", "mean", "lower", "upper", "p_best", "epochs", "measured", "reason", "note", "true")
"""The keys of every ranking row, in the order of ``results.csv``."""


def rows(rk: Ranking, epochs: np.ndarray, full_epochs: int, notes: dict[int, str],
         truth: np.ndarray | None) -> list[dict[str, Any]]:
    """One JSON-ready dict per candidate, in rank order, with the keys of :data:`COLUMNS`.

    ``mean``/``lower``/``upper`` are the predicted (or, where ``measured``, the measured)
    final accuracy and its 90% interval for the test accuracy; ``epochs`` how far the
    candidate was trained; ``true`` its final test accuracy, None unless verified.
    """
    index = {name: c for c, name in enumerate(rk.names)}
    out = []
    for row in rk.table():
        c = index[row["name"]]
        row.update(epochs=int(epochs[c]), measured=bool(epochs[c] >= full_epochs), note=notes.get(c),
                   true=None if truth is None or not np.isfinite(truth[c]) else float(truth[c]))
        out.append({key: row[key] for key in COLUMNS})
    return out


def save_params(path: Path, params: Any) -> Path:
    """The winner's parameters as an orbax checkpoint at ``path`` (replacing an older one)."""
    import orbax.checkpoint as ocp  # here: orbax is heavy and only a finished selection needs it

    path = Path(path).absolute()
    if path.exists():
        shutil.rmtree(path)
    with ocp.StandardCheckpointer(multiprocessing_options=orbax_primary_only()) as ckpt:
        ckpt.save(path, params)
    return path


def load_params(path: str | os.PathLike[str]) -> Any:
    """Parameters saved by :func:`save_params` (NumPy leaves)."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer(multiprocessing_options=orbax_primary_only()) as ckpt:
        return ckpt.restore(Path(path).absolute())


def table(payload: dict, title: str) -> Any:
    """The ranking as a rich Table."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    heads = ["rank", "candidate", "epochs", "final acc", "90% interval", "P(best)", "note"]
    verified = "verify" in payload
    heads += ["true final (test)"] if verified else []
    for h in heads:
        table.add_column(h, justify="left" if h in ("candidate", "note") else "right")
    for r in payload["ranking"]:
        name = r["name"] + (" [bold green](chosen)[/bold green]" if r["name"] == payload["chosen"] else "")
        if r["reason"]:
            name += f"  [red](failed: {r['reason']})[/red]"
        value = "—" if r["mean"] is None else f"{r['mean']:.3f}" + (" measured" if r["measured"] else " predicted")
        interval = "—" if r["lower"] is None else f"[{r['lower']:.3f}, {r['upper']:.3f}]"
        cells = ["—" if r["rank"] is None else str(r["rank"]), name, str(r["epochs"]), value, interval,
                 "—" if r["p_best"] is None else f"{r['p_best']:.2f}", r["note"] or ""]
        cells += ["—" if r["true"] is None else f"{r['true']:.3f}"] if verified else []
        table.add_row(*cells)
    return table


def print_summary(payload: dict, console: Any) -> None:
    """The ranking table and the compute, winner and verification lines."""
    full = payload["full_epochs"]
    console.print(table(payload, f"final accuracy after {full} epochs ({payload['method']})"))
    c, w = payload["compute"], payload["winner"]
    console.print(
        f"compute: {c['fraction']:.1%} of training all {payload['n_candidates']} candidates fully "
        f"({c['train_passes']:.3g} of {c['train_passes_all_full']:.3g} training passes; evaluation "
        f"{c['passes_eval']:.3g} and beta_eff {c['passes_beta']:.3g} passes not counted)"
    )
    console.print(f"chosen: [bold]{w['name']}[/bold], trained to the end (validation accuracy {w['val_acc']:.3f})")
    untrained = sum(r["epochs"] == 0 for r in payload["ranking"])
    if untrained:
        console.print(f"not trained: {untrained} of {payload['n_candidates']} candidates, left out of the pool the "
                      f"budget allows; successive halving over all of them needs --budget "
                      f"{payload['halving_budget']:.1%}")
    v = payload.get("verify")
    if v:
        cov = v["coverage_not_finished"]
        console.print(
            f"verify: regret {v['regret']:.3f} on the final test accuracy (best: {v['best']}); Kendall tau "
            + ("—" if v["tau"] is None else f"{v['tau']:.2f} [{v['tau_lo']:.2f}, {v['tau_hi']:.2f}]")
            + "; 90% coverage "
            + ("—" if cov is None else f"{cov:.2f}") + f" on the {v['n_not_finished']} candidates not finished"
        )
        for name, p in v["policies"].items():
            console.print(f"verify, {name.replace('_', ' ')}: " + (
                f"regret {p['regret']:.3f} at {p['compute']:.1%} compute" if p["regret"] is not None else p["reason"]))


def write(run_dir: Path, payload: dict, params: Any) -> list[str]:
    """``results.json``, ``results.csv``, the figures and ``winner/`` in ``run_dir``; the files written.

    Each file is written to a temporary name and renamed, so a run killed while saving
    leaves the previous complete file or none.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    payload["winner"]["params"] = str(save_params(run_dir / "winner", params))
    tmp = run_dir / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    os.replace(tmp, run_dir / "results.json")
    with open(run_dir / "results.csv.tmp", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(payload["ranking"])
    os.replace(run_dir / "results.csv.tmp", run_dir / "results.csv")
    return ["results.json", "results.csv", *_figures(run_dir, payload), "winner"]


def curves(payload: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each candidate's validation accuracy at epochs ``0..epochs`` as the selection saw it."""
    return {name: (np.arange(len(rec["val_acc"])), np.array([np.nan if v is None else v for v in rec["val_acc"]]))
            for name, rec in payload["records"].items()}


def _figures(run_dir: Path, payload: dict) -> list[str]:
    kinds = [kind for kind in FIGURES if kind != "p_best" or payload["rounds"]]
    for kind in kinds:
        figure(kind, payload, run_dir / f"{kind}.png")
    return [f"{kind}.png" for kind in kinds]


FIGURES = ("curves", "p_best", "predictions")


def figure(kind: str, payload: dict, path: str | os.PathLike[str] | None = None) -> Any:
    """One of :data:`FIGURES` of a selection's payload: written to ``path``, or returned as a Figure."""
    rows_ = payload["ranking"]
    if kind == "curves":
        final = {r["name"]: (r["mean"], r["lower"], r["upper"]) for r in rows_ if r["mean"] is not None
                 and r["lower"] is not None}
        # the paper's model may predict outside [0, 1]; the figure's axes stay inside it
        final = {k: tuple(float(np.clip(v, 0, 1)) for v in t) for k, t in final.items()}
        return plots.plot_learning_curves(curves(payload), final, payload["full_epochs"], path,
                                          chosen=payload["chosen"], level=LEVEL)
    if kind == "p_best":
        rounds = payload["rounds"]
        if not rounds:
            raise CapjaxInputError(f"this selection ({payload['method']}) has no rounds; plot curves or predictions")
        return plots.plot_p_best([r["fraction"] for r in rounds], np.stack([r["p_best"] for r in rounds]),
                                 list(payload["records"]), path,
                                 title="P(best) of final validation accuracy after each rung")
    ok = [r for r in rows_ if r["mean"] is not None and r["lower"] is not None]
    if "verify" in payload:
        ok = [r for r in ok if r["true"] is not None]
        return plots.plot_predicted_vs_true([r["mean"] for r in ok], [r["true"] for r in ok], path,
                                            lower=[r["lower"] for r in ok], upper=[r["upper"] for r in ok],
                                            title="predicted vs true final test accuracy (90% intervals)")
    return plots.plot_predictions([r["name"] for r in ok], [r["mean"] for r in ok], [r["lower"] for r in ok],
                                  [r["upper"] for r in ok], path, level=LEVEL)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))
