"""When does the hierarchical prior (partial pooling of slopes) help? Synthetic answer.

Each candidate's early curve follows docs/method.md §2.4's model, ``acc_t = h0 + slope * beta_t +
noise``, observed at only a few early epochs, and we predict its final accuracy (the
accuracy at beta = 0) three ways:

* independent, fast: one regression per candidate at the evidence-maximising precisions;
* independent, NUTS: the same model with the precisions sampled;
* hierarchical, NUTS: the candidates' slopes share a population prior N(mu, tau^2) whose
  mu and tau are learned from all of them (``hierarchical=True``).

Two regimes, the same number of early points per candidate:

* shared slope: the candidates differ in h0 but their slopes are nearly equal; a few
  points pin a slope poorly, the population pins it well, so pooling should help;
* different slopes: half the candidates improve steeply, half hardly at all; one normal
  population describes them badly, so pooling has little or nothing to add.

The table gives, per regime and method, the mean absolute error of the predicted final
accuracy, the coverage of the nominal 90% interval and its mean width (over candidates;
the truth is a fresh noisy observation at beta = 0), and for NUTS the worst split r_hat.

What it shows (40 candidates, 3 or 4 points each): with a shared slope, pooling cuts the
error by a factor of 2-5 against both independent fits and keeps intervals about as narrow
as the fast path's while covering; the fast path's intervals under-cover (plug-in
precisions from 3-4 points), independent NUTS covers but with intervals 2-4 times wider.
With different slopes, pooling no longer beats the independent fast fit on error and its
intervals are nearly as wide as independent NUTS's: the population learns a large tau and
shrinks little, so there is little to gain (and a misfit population to pay for).

    python examples/hierarchical_prior.py
"""

from __future__ import annotations

import argparse

import numpy as np

from capjax.bayes import predict_final

NOISE_SD = 0.01


def simulate(slopes: np.ndarray, n_early: int, seed: int):
    """Early curves of len(slopes) candidates, and their final accuracy at beta = 0."""
    rng = np.random.default_rng(seed)
    C = len(slopes)
    h0 = rng.uniform(0.6, 0.9, size=C)
    beta = np.sort(rng.uniform(0.2, 1.0, size=(C, n_early)), axis=1)[:, ::-1]
    acc = h0[:, None] + slopes[:, None] * beta + NOISE_SD * rng.normal(size=(C, n_early))
    final = h0 + NOISE_SD * rng.normal(size=C)
    return beta, acc, final


def scores(pred, final: np.ndarray) -> dict:
    covered = (pred.lower <= final) & (final <= pred.upper)
    return {
        "mae": float(np.mean(np.abs(pred.mean - final))),
        "coverage": float(np.mean(covered)),
        "width": float(np.mean(pred.upper - pred.lower)),
        "r_hat": pred.diagnostics.get("max_r_hat", float("nan")),
    }


def compare(beta, acc, final, *, num_warmup: int, num_samples: int, key: int) -> dict:
    nuts = dict(method="nuts", num_warmup=num_warmup, num_samples=num_samples, key=key)
    return {
        "independent, fast": scores(predict_final(beta, acc, method="fast", key=key), final),
        "independent, NUTS": scores(predict_final(beta, acc, **nuts), final),
        "hierarchical, NUTS": scores(predict_final(beta, acc, hierarchical=True, **nuts), final),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--n-early", type=int, default=3, help="early points per candidate")
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    C = args.candidates
    regimes = {
        "shared slope": rng.normal(-0.3, 0.02, size=C),
        "different slopes": np.where(np.arange(C) % 2 == 0, -0.6, -0.02) + rng.normal(0, 0.02, size=C),
    }
    print(f"{C} candidates, {args.n_early} early points each, noise sd {NOISE_SD}, nominal 90% intervals\n")
    print(f"{'regime':<18}{'method':<20}{'MAE':>8}{'coverage':>10}{'width':>8}{'r_hat':>7}")
    for k, (name, slopes) in enumerate(regimes.items()):
        data = simulate(slopes, args.n_early, seed=args.seed + k + 1)
        table = compare(*data, num_warmup=args.num_warmup, num_samples=args.num_samples, key=args.seed)
        for method, s in table.items():
            print(f"{name:<18}{method:<20}{s['mae']:8.4f}{s['coverage']:10.2f}{s['width']:8.3f}{s['r_hat']:7.3f}")


if __name__ == "__main__":
    main()
