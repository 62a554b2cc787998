"""The main job: choose the best of a zoo under a compute budget, and train it (``capjax select``).

:func:`select_zoo` builds a zoo and hands it, through a :class:`~capjax.workflows.live.LiveView`
that trains for real, to a selection policy (docs/method.md §6):

* by default capjax's engine (:func:`capjax.selection.capjax_engine`): rungs of training
  whose survivors one joint posterior over every candidate's final accuracy chooses;
* with ``predictor``, a per-candidate predictor of the registry (the paper's reading among
  them): every candidate trained for the same early epochs that the budget allows, then
  the predicted best trained to the end.

Either way the chosen candidate is trained to the end and its parameters saved, and
``results.json``, ``results.csv`` and the figures are written (:mod:`capjax.workflows.report`).
With ``verify=True`` every candidate is then trained to the end, and the choice, the
ranking and the intervals are scored against the final *test* accuracy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from capjax.base.distributed import is_primary, shared
from capjax.base.validation import CapjaxInputError
from capjax.bayes.decision import ranking
from capjax.data.dataset import Dataset
from capjax.data.sources import load_dataset
from capjax.predictors.registry import PREDICTORS, Needs, Task
from capjax.records.fields import beta_field
from capjax.records.files import exclusive, json_number, writable, written
from capjax.scoring.metrics import score_predictor
from capjax.selection import POLICIES, PaidView, capjax_engine
from capjax.selection.engine import FEATURES, NUM_DRAWS, test_draws
from capjax.selection.policies import halving_cost
from capjax.selection.view import View, smallest_epochs
from capjax.training.checkpoints import trained_params
from capjax.training.own import is_own, own_candidates
from capjax.training.pretrain import data_fingerprint
from capjax.training.recorders import BUILTIN_ONLY_FIELDS, record_fns
from capjax.training.spec import Candidate, check_candidates
from capjax.training.zoos import make_zoo
from capjax.workflows import report
from capjax.workflows.live import LiveView, drive
from capjax.workflows.result import Selection

DEFAULT_FULL_EPOCHS = 30
DEFAULT_BUDGET = "20%"
ENGINE = "engine"
"""The name ``results.json`` gives capjax's engine as the method (``predictor=None``)."""
LEVEL = 0.9
PROBE_BATCH = 256
"""Examples in the fixed probe batch of beta_eff and the transferability signals."""
RECORDED = ("val_acc", "val_loss", "train_loss")
"""The per-epoch fields a :class:`Selection` keeps of every candidate, up to its paid epoch."""


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
    """A one-line error when ``budget`` cannot pay for two candidates' first epoch and one finish."""
    n, full = len(view), view.full_epochs
    smallest = view.epochs_fraction(smallest_epochs(n, full))
    if budget < smallest - 1e-12:
        what = ("its one candidate to the end" if n == 1 else "two candidates one epoch each, then the better "
                f"to the end, (full + 1) / (N x full) = ({full} + 1) / ({n} x {full})")
        raise CapjaxInputError(f"--budget {budget:.1%} is below the smallest that selects here, {smallest:.1%}: "
                               f"{what}; pass --budget {math.ceil(1000 * smallest) / 10:g}% or more")


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
    # left out of a small budget's pool: its forecast is the pool's, not its own
    notes = {int(c): "not trained: the pool's forecast" for c in np.flatnonzero(out.epochs == 0)}
    return {"chosen": out.chosen, **_measured_columns(view, out.draws, seed), "rounds": out.rounds, "notes": notes}


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
            "notes": notes}


def _candidates(candidates: Any, dataset: Any, data: Any, n: int | None, seed: int,
                probe_widths: tuple[int, ...] | None) -> tuple[list[Candidate], str]:
    """The candidates and their label in run names: a zoo by name, Candidates, or your own models."""
    if isinstance(candidates, str):
        zoo = make_zoo(candidates, data if isinstance(data, str) else dataset.name, n, seed=seed,
                       probe_widths=probe_widths)
        return zoo, f"{candidates}-n{len(zoo)}"
    if isinstance(candidates, list | tuple) and candidates and all(isinstance(c, Candidate) for c in candidates):
        return check_candidates(candidates), f"zoo{len(candidates)}"
    own = own_candidates(candidates, dataset, seed=seed, probe_widths=probe_widths)
    return own, f"own{len(own)}"


def run_name(label: str, dataset: Dataset, candidates: list[Candidate], settings: dict[str, Any]) -> str:
    """A run's folder name: readable settings and a hash of everything that changes its results.

    The hash covers the candidates (own backbones by fingerprint), the data (a fingerprint
    of its splits), and ``settings`` (budget, method, features, seed, ...): the same
    settings resume in the same folder, other settings get their own, nothing is overwritten.
    """
    digest = hashlib.blake2b(json.dumps({
        "candidates": [c.to_dict() for c in candidates],
        "data": [dataset.name, data_fingerprint(dataset), len(dataset.y_val), len(dataset.y_test)],
        **settings,
    }, sort_keys=True, default=str).encode(), digest_size=4).hexdigest()
    data = dataset.name.replace(":", "-").replace("/", "_")
    return (f"{label}-{data}-e{settings['full_epochs']}-s{settings['seed']}-b{100 * settings['budget']:g}-"
            f"{settings['method']}-{digest}")


def _check_run_dir(run_dir: Path, settings: str) -> None:
    """A run folder holds one selection: another one's settings may not overwrite it."""
    path = run_dir / "results.json"
    if path.is_file():
        old = json.loads(path.read_text()).get("settings")
        if old != settings:
            raise CapjaxInputError(
                f"{run_dir} holds a selection with other settings ({old}); pass another --run, or none to "
                "get a folder named by these settings"
            )


def _check_own_needs(candidates: list[Candidate], options: dict[str, Any]) -> None:
    fields = sorted(set(options.get("record_fns") or ()) & set(BUILTIN_ONLY_FIELDS))
    if fields and is_own(candidates):
        raise CapjaxInputError(
            f"this --predictor reads {fields} from the layer list of capjax's built-in backbones, which your own "
            "backbones do not have; use the engine or a predictor of learning curves, beta_eff or transferability"
        )


def select(
    candidates: Any = "transfer",
    data: str | Mapping[str, Any] | Dataset = "digits",
    *,
    budget: str | float = DEFAULT_BUDGET,
    full_epochs: int = DEFAULT_FULL_EPOCHS,
    seed: int = 0,
    verify: bool = False,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    predictor: str | None = None,
    features: tuple[str, ...] = ("curve",),
    p_best_stop: float = 0.95,
    n: int | None = None,
    probe_widths: tuple[int, ...] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    run: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    console: Any = None,
) -> Selection:
    """Choose the best candidate on ``data`` within ``budget``, train it to the end, return a :class:`Selection`.

    Args:
      candidates: your own models, ``{name: backbone}`` where a backbone is an
        ``nnx.Module``, a Linen ``(module, variables)`` pair, a pure ``(apply_fn, params)``
        pair (features ``(batch, d)``) or a :class:`capjax.Model` with its own optimizer or
        learning rate and batch size; or a zoo's name (``"transfer"``, ``"hyper"``) or a
        list of :class:`~capjax.training.Candidate`. capjax adds the frozen probe and a new
        head (docs/method.md §2.3).
      data: a :class:`capjax.Dataset`, a spec (``digits``, ``mnist1d``, ``npz:PATH``,
        ``tfds:NAME``; ``data_dir`` for tfds) or a mapping of arrays ``x_train, y_train,
        x_test, y_test`` (optionally ``x_val, y_val``, else carved from the training split).
      budget: compute, as a fraction of training every candidate for ``full_epochs``
        (``0.2``, ``"20%"``), counted in training passes; finishing the winner is part of it.
      full_epochs: length of full training, the same for every candidate.
      seed: seed of the zoo, data splits, heads, batch order and posterior draws.
      verify: then train every candidate to the end and score the choice on test accuracy.
      out: save the run in ``out/<run>`` (``run`` defaults to :func:`run_name`): the same
        settings resume there. None: a temporary folder, nothing saved (use :meth:`Selection.save`).
      progress: show progress bars and print the table.
      predictor: None for capjax's engine, or a name from :func:`select_predictors`.
      features: the engine's feature groups (:data:`capjax.selection.engine.FEATURES`), ``"curve"`` first.
      p_best_stop: the engine stops exploring once its leader's P(best) reaches this.
      n, probe_widths: the zoo's size (zoos only) and the probe's widths.
      cache_dir: pretrained-backbone cache (zoos).
      console: a ``rich.console.Console`` to print to.
    """
    fraction = parse_budget(budget)
    needs = None if predictor is None else check_predictor(predictor)
    features = tuple(features)
    if not features or features[0] != "curve" or not set(features) <= set(FEATURES):
        raise CapjaxInputError(f"--features {','.join(features)!r}: start with curve, then any of beta, weights")
    if not 0 < p_best_stop <= 1:
        raise CapjaxInputError(f"--p-best-stop {p_best_stop}: pass a probability in (0, 1]")
    method = predictor or ENGINE
    t0 = time.perf_counter()
    progress = progress and is_primary()  # one process speaks for a multi-process run (docs/method.md §9)
    if out is not None:  # before any loading: a folder that cannot be written fails now, not after minutes
        shared(lambda: writable(Path(out), "--out"))
    dataset = load_dataset(data, data_dir=data_dir, seed=seed)
    candidates, label = _candidates(candidates, dataset, data, n, seed, probe_widths)
    # a small training split is the whole probe batch rather than an error
    options = {**_sweep_options(needs, features), "probe_batch": min(PROBE_BATCH, len(dataset.y_train))}
    _check_own_needs(candidates, options)
    settings = {"full_epochs": full_epochs, "seed": seed, "budget": fraction, "method": method,
                "features": list(features), "p_best_stop": p_best_stop}
    name = run_name(label, dataset, candidates, settings)
    with contextlib.ExitStack() as stack:
        def open_run() -> Path:  # process 0's: it alone reads and writes the run folder
            root = Path(out) if out is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
            run_dir = root / (run or name)
            stack.enter_context(exclusive(run_dir))  # one run per folder; the kernel frees it if this one dies
            _check_run_dir(run_dir, name)
            return run_dir

        run_dir = shared(open_run)
        view = LiveView(candidates, dataset, full_epochs, run_dir / "sweep", progress=progress, cache_dir=cache_dir,
                        **options)
        smallest_budget_error(view, fraction)
        if not is_primary():
            console = None
        elif console is None and progress:
            from rich.console import Console

            console = Console(width=140)
        if console is not None:
            console.print(
                f"[bold]capjax select[/bold]: {len(candidates)} candidates ({label}) on {dataset.name}, "
                f"{fraction:.0%} of the compute of training all for {full_epochs} epochs, by "
                f"{'capjax engine' if predictor is None else predictor}" + (f" → {run_dir}" if out is not None else "")
            )

        def work() -> Selection:
            selection = _decide(view, candidates, dataset, predictor, needs, fraction, features, p_best_stop, seed,
                                verify)
            selection.payload.update(zoo=label, data=dataset.name, seed=seed, seconds=time.perf_counter() - t0,
                                     features=list(features) if predictor is None else None,
                                     settings=name)
            if out is not None:
                with written(run_dir, "results"):
                    selection.save(run_dir)
            return selection

        selection = drive(view, work, lambda sel: (sel.payload, sel.params))
        if not is_primary():  # a worker: the selection process 0 made and sent
            payload, params = selection
            return Selection(payload, params, next(c.backbone for c in candidates if c.name == payload["chosen"]))
    if console is not None:
        report.print_summary(selection.payload, console)
        if out is not None:
            console.print(f"wrote {run_dir}: results.json, results.csv, the figures and winner/")
    return selection


def _decide(view: LiveView, candidates: list[Candidate], dataset: Dataset, predictor: str | None,
            needs: Needs | None, fraction: float, features: tuple[str, ...], p_best_stop: float, seed: int,
            verify: bool) -> Selection:
    """The policy's decision on ``view``, its winner trained, and (``verify``) everyone scored."""
    if predictor is None:
        decision = _by_engine(view, fraction, features, p_best_stop, seed)
    else:
        decision = _by_predictor(view, predictor, needs, fraction, seed)
    chosen = decision["chosen"]
    names, full_epochs = view.names, view.full_epochs
    reasons = {names[c]: why for c, why in enumerate(view.reasons()) if why}
    score = np.where(view.failed, np.nan, decision["mean"])
    rk = ranking(names, score, mean=decision["mean"], lower=decision["lower"], upper=decision["upper"],
                 samples=decision["samples"], level=LEVEL, reasons=reasons)
    epochs = view.paid.copy()
    deciding, training = (float(sum(t)) for t in zip(*view.timings)) if view.timings else (0.0, 0.0)
    compute = {"fraction": view.fraction, "train_passes": view.spent, "train_passes_all_full": view.full_cost,
               **view.passes_eval_beta(),
               # what each process of this invocation computed (one entry per process; a resumed run
               # counts only the epochs it ran itself)
               "train_passes_by_process": view.passes_by_process.tolist()}
    params = trained_params(view.sweep_dir, candidates, dataset, names[chosen])
    payload: dict[str, Any] = {
        "chosen": names[chosen],
        "compute": compute,
        "method": predictor or ENGINE,
        "budget": fraction,
        "n_candidates": len(candidates),
        "full_epochs": full_epochs,
        "winner": {"name": names[chosen], "epochs": int(epochs[chosen]),
                   "val_acc": float(view.val_acc(full_epochs, [chosen])[0]), "params": "winner"},
        "rounds": [{"fraction": f, "p_best": p} for f, p in decision["rounds"]],
        # the policy's own time between rounds against the rounds' training (after the first)
        "round_seconds": {"deciding": deciding, "training": training},
        # below this budget the engine trains only part of the pool
        "halving_budget": view.epochs_fraction(halving_cost(len(view), full_epochs)),
    }
    # what the selection saw, before verify trains the rest
    records = {name: {field: [json_number(view.read(field, e, [c])[0]) for e in range(epochs[c] + 1)]
                      for field in RECORDED} for c, name in enumerate(names)}
    truth = _verify(view, payload, rk, epochs) if verify else None
    payload["ranking"] = report.rows(rk, epochs, full_epochs, decision["notes"], truth)
    payload["records"] = records
    return Selection(payload, params, candidates[chosen].backbone)


def select_zoo(*, zoo: str = "transfer", data: str = "digits", out: str | os.PathLike[str] = "results",
               **options: Any) -> dict:
    """:func:`select` of a zoo by name, saved under ``out``; returns ``results.json``'s payload."""
    return select(zoo, data, out=out, **options).payload


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
