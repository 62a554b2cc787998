"""Which predictors can ``capjax select`` honestly offer? Every one it offers must score every
candidate that trained on the default zoo; this script measures that.

Usage: ``python benchmarks/select_offer.py [--zoo transfer --data digits --budget 5]``

It sweeps the zoo once for the budget, recording what every reference-free predictor
needs, runs each predictor, and writes ``benchmarks/results/select_offer.json``: per
predictor, how many trained candidates it left without a finite score, and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capjax.data import load_dataset  # noqa: E402
from capjax.predictors import PREDICTORS, Task, needs_of  # noqa: E402
from capjax.records import load_sweep  # noqa: E402
from capjax.training import make_zoo, record_fns, run_sweep  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "select_offer.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", default="transfer")
    p.add_argument("--data", default="digits")
    p.add_argument("--budget", type=int, default=5)
    p.add_argument("--full-epochs", type=int, default=30)
    p.add_argument("--out", default="/tmp/capjax-select-offer")
    args = p.parse_args()
    names = sorted(n for n, s in PREDICTORS.items() if s.needs.references == 0)
    needs = needs_of(names)
    candidates = make_zoo(args.zoo, args.data)
    run_sweep(
        candidates,
        load_dataset(args.data),
        epochs=args.budget,
        out_dir=Path(args.out) / f"{args.zoo}-{args.data}",
        interactions=needs.interactions,
        record_fns=record_fns(needs.fields),
        snapshot_params=needs.snapshots,
        progress=False,
    )
    sweep = load_sweep(Path(args.out) / f"{args.zoo}-{args.data}")
    trained = ~sweep.failed
    report = {}
    for name in names:
        f = PREDICTORS[name](Task(sweep, args.budget, args.full_epochs))
        missing = [n for n, s, ok in zip(sweep.names, f.score, trained) if ok and not s == s]
        report[name] = {"unscored": len(missing), "reasons": sorted({f.reasons[n] for n in missing})}
        print(f"{name:18s} unscored {len(missing):2d}/{int(trained.sum())}  {report[name]['reasons'][:1]}")
    OUT.write_text(json.dumps({"zoo": args.zoo, "data": args.data, "budget": args.budget,
                               "n_trained": int(trained.sum()), "predictors": report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
