"""Your own models: three Flax NNX families of different architecture, selected on digits.

A residual CNN, a VGG-like CNN and a depthwise-separable CNN, each at two learning rates.
``capjax.select`` puts the frozen probe and a new head on each, trains them in rounds
within 30% of the compute of training all six for 10 epochs, trains the winner to the
end, and (``verify=True``) then trains the rest to score the choice on test accuracy.
Candidates of one architecture train in one vmapped group; each group compiles once.

    python examples/own_models.py
"""

from __future__ import annotations

import jax
from flax import nnx

import capjax


class Residual(nnx.Module):
    """conv -> two residual blocks (conv, BatchNorm, ReLU) -> global average pool."""

    def __init__(self, width: int, rngs: nnx.Rngs, channels: int = 1):
        self.stem = nnx.Conv(channels, width, (3, 3), rngs=rngs)
        self.convs = nnx.List([nnx.Conv(width, width, (3, 3), rngs=rngs) for _ in range(2)])
        self.norms = nnx.List([nnx.BatchNorm(width, momentum=0.9, rngs=rngs) for _ in range(2)])

    def __call__(self, x):
        h = jax.nn.relu(self.stem(x))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + jax.nn.relu(norm(conv(h)))
        return h.mean(axis=(1, 2))


class VGG(nnx.Module):
    """two blocks of (conv, conv, max-pool), flattened."""

    def __init__(self, width: int, rngs: nnx.Rngs, channels: int = 1):
        chans = [channels, width, width, 2 * width, 2 * width]
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), rngs=rngs) for a, b in zip(chans[:-1], chans[1:], strict=True)])

    def __call__(self, x):
        h = x
        for k, conv in enumerate(self.convs):
            h = jax.nn.relu(conv(h))
            if k % 2:
                h = nnx.max_pool(h, (2, 2), (2, 2))
        return h.reshape(h.shape[0], -1)


class Separable(nnx.Module):
    """depthwise 3x3 then pointwise 1x1 convolutions, twice, with Dropout."""

    def __init__(self, width: int, rngs: nnx.Rngs, channels: int = 1):
        self.stem = nnx.Conv(channels, width, (3, 3), rngs=rngs)
        self.depthwise = nnx.List([nnx.Conv(width, width, (3, 3), feature_group_count=width, rngs=rngs)
                                   for _ in range(2)])
        self.pointwise = nnx.List([nnx.Conv(width, width, (1, 1), rngs=rngs) for _ in range(2)])
        self.dropout = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.stem(x))
        for dw, pw in zip(self.depthwise, self.pointwise, strict=True):
            h = jax.nn.relu(pw(dw(h)))
        return self.dropout(nnx.avg_pool(h, (2, 2), (2, 2)).reshape(h.shape[0], -1))


def build(width: int = 8, channels: int = 1) -> dict[str, capjax.Model]:
    """The six candidates (inputs with ``channels`` channels); also ``capjax select --candidates
    examples/own_models.py:build``."""
    families = {"residual": Residual, "vgg": VGG, "separable": Separable}
    return {f"{name}-lr{lr:g}": capjax.Model(family(width, nnx.Rngs(k), channels), lr=lr)
            for k, (name, family) in enumerate(families.items()) for lr in (1e-3, 3e-3)}


def main(full_epochs: int = 10) -> capjax.Selection:
    from rich.console import Console

    selection = capjax.select(build(), "digits", budget=0.3, full_epochs=full_epochs, verify=True, progress=False)
    Console(width=120).print(selection.table())
    v = selection.payload["verify"]
    halving = v["policies"]["successive_halving"]
    halving = "does not fit" if halving["regret"] is None else f"{halving['regret']:.3f}"
    print(f"chosen {selection.chosen} at {selection.compute_fraction:.1%} compute; regret {v['regret']:.3f} on "
          f"test accuracy (best: {v['best']}); successive halving: {halving}")
    return selection


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Select among three NNX families on digits, then verify.")
    parser.add_argument("--full-epochs", type=int, default=10, help="epochs of full training (default 10)")
    main(parser.parse_args().full_epochs)
