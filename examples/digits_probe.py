"""Fine-tune a small Flax NNX backbone through a frozen neural capacitance probe on digits.

The backbone is first pretrained on digits 0-4 (the "source task"), then its head is
replaced: a frozen random probe and a new 10-way head go on top, and backbone + head are
fine-tuned on all ten classes at the paper's settings (Adam, lr 1e-3, batch 64). beta_eff
is measured on the probe once per epoch on a fixed batch; the script plots beta_eff(t)
and validation accuracy(t) to a PNG.

    python examples/digits_probe.py --epochs 30 --out results/digits_probe.png
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import capjax
from capjax.data import Dataset, batch_indices, load_dataset


class ProbedClassifier(nnx.Module):
    """MLP backbone -> frozen NCProbe -> trainable head."""

    def __init__(self, d_in, n_classes, *, hidden=(128, 64), probe_widths=(64, 32), rngs):
        sizes = [d_in, *hidden]
        self.backbone = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.probe = capjax.NCProbe(hidden[-1], probe_widths, rngs=rngs)
        self.head = nnx.Linear(probe_widths[-1], n_classes, rngs=rngs)

    def features(self, x):
        for layer in self.backbone:
            x = jax.nn.relu(layer(x))
        return x

    def __call__(self, x):
        return self.head(self.probe(self.features(x)))


def cross_entropy(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@nnx.jit
def train_step(model, opt, x, y):
    loss, grads = nnx.value_and_grad(lambda m: cross_entropy(m(x), y))(model)
    opt.update(model, grads)
    return loss


@partial(nnx.jit, static_argnames="interaction")
def measure_beta_eff(model, x, y, lr, interaction="coupling"):
    """beta_eff of the probe on one batch: features in, errors back through the head."""
    loss_fn = lambda out: cross_entropy(model.head(out), y)
    return capjax.beta_eff(model.probe, model.features(x), loss_fn, lr=lr, interaction=interaction)


@nnx.jit
def accuracy(model, x, y):
    return jnp.mean(jnp.argmax(model(x), axis=-1) == y)


def train_epoch(model, opt, data: Dataset, epoch: int, batch_size: int = 64, seed: int = 0) -> float:
    """One pass over the training set in a seeded order; returns the mean training loss."""
    idx = np.asarray(batch_indices(jax.random.fold_in(jax.random.PRNGKey(seed), epoch), len(data.y_train), batch_size))
    losses = [train_step(model, opt, data.x_train[b], data.y_train[b]) for b in idx]
    return float(jnp.mean(jnp.stack(losses)))


def pretrain(data: Dataset, epochs: int, seed: int) -> ProbedClassifier:
    """Train backbone + a temporary head on classes 0-4, then give it a new probe and head."""
    source = data.y_train < 5
    src = Dataset(
        data.x_train[source],
        data.y_train[source],
        data.x_val,
        data.y_val,
        data.x_test,
        data.y_test,
        data.num_classes,
        "digits-0-4",
    )
    model = ProbedClassifier(data.x_train.shape[1], data.num_classes, rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    for epoch in range(epochs):
        train_epoch(model, opt, src, epoch, seed=seed)
    fresh = ProbedClassifier(data.x_train.shape[1], data.num_classes, rngs=nnx.Rngs(seed + 1))
    fresh.backbone = model.backbone
    return fresh


def run(
    epochs: int = 30,
    pretrain_epochs: int = 5,
    seed: int = 0,
    lr: float = 1e-3,
    probe_batch: int = 256,
    interaction: str = "coupling",
) -> dict:
    """Fine-tune with the probe; return per-epoch history (beta_eff, val accuracy, timings).

    beta_eff is measured once per epoch on the first ``probe_batch`` training examples.
    """
    data = load_dataset("digits", seed=seed).flat()
    model = pretrain(data, pretrain_epochs, seed)
    opt = nnx.Optimizer(model, capjax.freeze_probe(optax.adam(lr)), wrt=nnx.Param)
    probe_x, probe_y = data.x_train[:probe_batch], data.y_train[:probe_batch]
    history = {
        "epoch": [],
        "train_loss": [],
        "val_acc": [],
        "beta_eff": [],
        "train_s": [],
        "measure_s": [],
    }
    for epoch in range(epochs + 1):
        t0 = time.perf_counter()
        loss = train_epoch(model, opt, data, epoch, seed=seed) if epoch else float("nan")
        t1 = time.perf_counter()
        beta = float(measure_beta_eff(model, probe_x, probe_y, lr, interaction))
        t2 = time.perf_counter()
        history["epoch"].append(epoch)
        history["train_loss"].append(loss)
        history["val_acc"].append(float(accuracy(model, data.x_val, data.y_val)))
        history["beta_eff"].append(beta)
        history["train_s"].append(t1 - t0)
        history["measure_s"].append(t2 - t1)
    return history


def plot(history: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["epoch"], history["beta_eff"], "o-", color="C0", label="beta_eff (probe)")
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("beta_eff", color="C0")
    ax2 = ax.twinx()
    ax2.plot(history["epoch"], history["val_acc"], "s-", color="C1", label="validation accuracy")
    ax2.set_ylabel("validation accuracy", color="C1")
    ax.set_title("digits: beta_eff and accuracy while fine-tuning")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/digits_probe.png"))
    args = parser.parse_args()
    history = run(args.epochs, seed=args.seed)
    plot(history, args.out)
    for e, b, a in zip(history["epoch"], history["beta_eff"], history["val_acc"]):
        print(f"epoch {e:3d}  beta_eff {b:.4g}  val_acc {a:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
