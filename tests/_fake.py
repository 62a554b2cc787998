"""Synthetic sweeps for predictor and benchmark tests: records without training."""

import numpy as np

from capjax.records import SweepResult, Trajectory


def fake_sweep(tmp_path, fields: dict[str, np.ndarray], failed: dict[str, str] | None = None) -> SweepResult:
    """A SweepResult whose candidate i has ``fields[f][i, e]`` at epoch e (0..E)."""
    failed = failed or {}
    n, n_epochs = next(iter(fields.values())).shape
    names = tuple(f"c{i:02d}" for i in range(n))
    trajectories = {
        name: Trajectory(
            name,
            np.arange(n_epochs),
            {f: v[i] for f, v in fields.items()},
            failed=name in failed,
            failed_epoch=1 if name in failed else None,
            reason=failed.get(name),
        )
        for i, name in enumerate(names)
    }
    return SweepResult(tmp_path, names, trajectories)


def planted_curves(n: int = 24, epochs: int = 21, seed: int = 0, noise: float = 0.003) -> tuple[dict, np.ndarray]:
    """Learning curves that obey the paper's premise: beta_eff -> 0 as accuracy -> final.

    ``acc(e) = final * (1 - 0.9 exp(-e / tau))`` and ``beta(e) = k (final - acc(e))``, so the
    linear fit of accuracy on beta read at beta = 0 recovers ``final`` exactly.
    """
    rng = np.random.default_rng(seed)
    final = rng.uniform(0.5, 0.95, n)
    tau = rng.uniform(2.0, 6.0, n)
    k = rng.uniform(0.5, 2.0, n)
    e = np.arange(epochs)
    acc = final[:, None] * (1 - 0.9 * np.exp(-e[None] / tau[:, None])) + noise * rng.standard_normal((n, epochs))
    beta = k[:, None] * (final[:, None] - acc)
    fields = {
        "val_acc": np.clip(acc, 0, 1),
        "val_loss": -np.log(np.clip(acc, 1e-3, 1)),
        "train_loss": -np.log(np.clip(acc, 1e-3, 1)) * 0.9,
        "beta_coupling": beta,
        "beta_hessian": 2 * beta,
        "passes_train": np.cumsum(np.full((n, epochs), 1000.0), axis=1),
    }
    fields["val_acc"][:, -1] = final  # the truth, read at the final epoch
    return fields, final
