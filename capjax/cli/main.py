"""Command line: ``capjax select`` (choose the best candidate under a compute budget) and ``capjax bench``.

``capjax select`` with no arguments builds the default transfer zoo on scikit-learn's
digits, pretrains each backbone once (cached), and spends 20% of the compute of training
every candidate fully: capjax's engine trains the candidates in rungs (successive
halving's shape fitted to the budget), keeps after each rung those that a joint posterior
over their final accuracies says are worth most to the decision, trains the winner to
the end and saves it, and prints every candidate's predicted final accuracy with a
90% interval and P(best). ``--verify`` then trains every candidate to the end and scores
the choice against the final test accuracy.

This module only parses arguments: the jobs are :func:`capjax.workflows.select_zoo` and
:func:`capjax.workflows.run_bench`, callable from Python with the same settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from capjax.base import distributed
from capjax.base.validation import CapjaxInputError
from capjax.predictors.registry import PREDICTORS
from capjax.scoring.protocol import BUDGETS_PERCENT
from capjax.training.own import import_candidates
from capjax.training.zoos import ZOOS
from capjax.workflows import bench as bench_job
from capjax.workflows import select as select_job


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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--zoo",
        choices=sorted(ZOOS),
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
        default=select_job.DEFAULT_FULL_EPOCHS,
        help=f"length of full training, where final accuracy is read (default: {select_job.DEFAULT_FULL_EPOCHS})",
    )
    p.add_argument(
        "--probe-widths",
        type=_widths,
        default=None,
        help="widths of the frozen probe, e.g. 64,32 (default: the zoo's, 64,32)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the zoo, data splits and training (default: 0)")
    p.add_argument(
        "--out", type=Path, default=Path("results"), help="output root; results go to OUT/RUN (default: results)"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="pretrained-backbone cache (default: ~/.cache/capjax or $CAPJAX_CACHE)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    many = p.add_argument_group(
        "multi-process runs (one selection over every host of a TPU slice or GPU cluster; start the same command "
        "on each)"
    )
    many.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                      help="process 0's host and a free port, the same on every process")
    many.add_argument("--num-processes", type=int, default=None, help="how many processes take part")
    many.add_argument("--process-id", type=int, default=None, help="this process's index, 0..N-1, one each")
    many.add_argument("--distributed", action="store_true",
                      help="join a multi-process run that JAX detects itself (SLURM, TPU pods) instead")
    many.add_argument("--join-timeout", type=float, default=distributed.INIT_TIMEOUT_S,
                      help=f"seconds to wait for every process to join (default: {distributed.INIT_TIMEOUT_S})")


def build_parser() -> argparse.ArgumentParser:
    """The ``capjax`` parser with its ``select`` and ``bench`` subcommands."""
    parser = argparse.ArgumentParser(
        prog="capjax", description="Which candidate model ends up best, from a few early epochs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    select = sub.add_parser(
        "select",
        help="choose the best of a zoo under a compute budget, and train it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(select)
    select.add_argument(
        "--run", default=None,
        help="run folder name (default: the settings and a hash of everything that changes the result)"
    )
    select.add_argument(
        "--candidates",
        default=None,
        metavar="PATH.py:FUNCTION",
        help="your own models instead of --zoo: a Python file whose FUNCTION() returns {name: backbone} "
        "(an nnx.Module, a Linen (module, variables) pair, an (apply_fn, params) pair, or capjax.Model(...))",
    )
    select.add_argument(
        "--budget",
        default=select_job.DEFAULT_BUDGET,
        help="compute to spend, as a fraction of training every candidate for --full-epochs, counted in "
        "training passes and including finishing the winner: 20%% or 0.2 "
        f"(default: {select_job.DEFAULT_BUDGET.replace('%', '%%')})",
    )
    select.add_argument(
        "--predictor",
        default=None,
        choices=select_job.select_predictors(),
        help="instead of capjax's engine, a per-candidate predictor: every candidate trains the same early "
        "epochs the budget allows, then the predicted best to the end (beta_hessian: the paper's reading)",
    )
    select.add_argument(
        "--features",
        default="curve",
        help="the engine's features: curve, optionally with beta (beta_eff) and weights (weight norm, LogME), "
        "comma-separated (default: curve)",
    )
    select.add_argument(
        "--p-best-stop",
        type=float,
        default=0.95,
        help="the engine stops exploring when its leader's P(best) reaches this (default: 0.95)",
    )
    select.add_argument(
        "--verify",
        action="store_true",
        help="afterwards train every candidate to --full-epochs and score the choice on the final test "
        "accuracy (regret, Kendall tau, interval coverage, and successive halving at no more compute)",
    )
    bench = sub.add_parser(
        "bench",
        help="every early predictor side by side on one zoo (docs/method.md §5)",
        description=bench_job.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(bench)
    bench.set_defaults(n=60, full_epochs=50, out=Path("benchmarks/results"))
    bench.add_argument(
        "--budgets",
        default=",".join(map(str, BUDGETS_PERCENT)),
        help="budgets in percent of --full-epochs (default: 1,2,5,10,20; each at least one epoch)",
    )
    bench.add_argument(
        "--predictors",
        default="all",
        help=f"comma-separated predictor names, or all (default; {len(PREDICTORS)} predictors)",
    )
    return parser


def _common(args: argparse.Namespace) -> dict:
    return dict(
        zoo=args.zoo,
        data=args.data,
        data_dir=args.data_dir,
        n=args.n,
        full_epochs=args.full_epochs,
        probe_widths=args.probe_widths,
        seed=args.seed,
        out=args.out,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``capjax`` with ``argv`` (default: the process's); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed,
                               timeout_s=args.join_timeout)
        if args.command == "select":
            from rich.console import Console

            console = Console(width=None if sys.stdout.isatty() else 140)
            options = _common(args)
            zoo = options.pop("zoo")
            select_job.select(
                import_candidates(args.candidates) if args.candidates else zoo,
                options.pop("data"),
                **options,
                budget=args.budget,
                predictor=args.predictor,
                features=tuple(f.strip() for f in args.features.split(",")),
                p_best_stop=args.p_best_stop,
                run=args.run,
                verify=args.verify,
                console=console,
            )
        else:
            bench_job.bench(**_common(args), budgets=args.budgets, predictors=args.predictors)
    except CapjaxInputError as err:
        print(f"capjax: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a filesystem fault outside the writes capjax words itself: still one line
        print(f"capjax: error: {err.strerror or err} ({err.filename or 'a file'}); fix the disk or the path "
              "(--out, --cache-dir, --data-dir) and rerun: finished epochs are kept", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
