"""Candidate zoos: the models whose final accuracy capjax predicts (docs/method.md §2.3, §5).

* :func:`transfer_zoo`, the paper's setting: backbones of different families and sizes,
  pretrained by capjax itself for different budgets on source tasks carved from the
  training split (half of the classes, flipped inputs, random labels) or left at random
  initialisation, each fine-tuned with the frozen probe and a new head;
* :func:`hyperparameter_zoo`: one MLP family over learning rate, width, depth, weight
  decay, init scale and batch size.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.training.spec import Candidate, positive_int

# ---------------------------------------------------------------------------------------
# Zoos

TRANSFER_ARCHS: tuple[tuple[str, int, int], ...] = (
    ("mlp", 2, 128), ("cnn", 2, 16), ("mlp", 1, 32), ("cnn", 1, 8), ("mlp", 3, 256),
    ("cnn", 2, 32), ("mlp", 2, 64), ("cnn", 1, 4), ("mlp", 1, 256),
)
"""Backbone (family, depth, width) of the transfer zoo, in the order zoos take them."""

TRANSFER_SETTINGS: tuple[tuple[str, int], ...] = (
    ("none", 0), ("half", 10), ("flip", 3), ("randlabel", 3),
    ("half", 1), ("flip", 10), ("half", 3), ("randlabel", 10),
)
"""Pretraining (source, budget) of the transfer zoo, ordered so that any prefix is varied."""

DEFAULT_TRANSFER_N = 12


def _check_zoo_args(dataset_name: Any, n: Any, seed: Any) -> tuple[int, int]:
    if not isinstance(dataset_name, str) or not dataset_name:
        raise CapjaxInputError(
            f"dataset_name is {dataset_name!r}; pass the dataset spec, e.g. 'digits'"
        )
    return positive_int("n", n), positive_int("seed", seed, minimum=0)


def _arch_name(family: str, depth: int, width: int) -> str:
    return f"{family}-d{depth}-{'w' if family == 'mlp' else 'c'}{width}"


def transfer_zoo(dataset_name: str, n: int | None = None, seed: int = 0) -> list[Candidate]:
    """The transfer zoo (docs/method.md §2.3): backbones x pretraining settings, fine-tuned alike.

    Takes the first ``a = clip(round(sqrt(n)), 2, 9)`` backbones of
    :data:`TRANSFER_ARCHS` and crosses each with the first ``ceil(n / a)`` pretraining
    settings of :data:`TRANSFER_SETTINGS`; past the eight settings, the settings repeat
    with the next seed (name suffix ``-r1``, ``-r2``...). The first ``n`` are kept, so
    every backbone shape is shared by several candidates that train together. All
    fine-tune with the paper's settings: AdamW lr 1e-3, batch 64, no weight decay.

    Args:
      dataset_name: the dataset the zoo is for (recorded in each candidate's ``data``).
      n: number of candidates (default :data:`DEFAULT_TRANSFER_N`, sized so the default
        job runs in a few minutes on 2 CPU cores).
      seed: the candidates' base seed (initialisation and batch order).

    Returns:
      ``n`` candidates with unique names such as ``mlp-d2-w128-half-pre10``.
    """
    n, seed = _check_zoo_args(dataset_name, DEFAULT_TRANSFER_N if n is None else n, seed)
    n_arch = min(max(round(math.sqrt(n)), 2), len(TRANSFER_ARCHS))
    n_set = math.ceil(n / n_arch)
    out = []
    for j in range(n_set):
        source, budget = TRANSFER_SETTINGS[j % len(TRANSFER_SETTINGS)]
        rep = j // len(TRANSFER_SETTINGS)
        for family, depth, width in TRANSFER_ARCHS[:n_arch]:
            tag = "scratch" if source == "none" else f"{source}-pre{budget}"
            name = f"{_arch_name(family, depth, width)}-{tag}" + (f"-r{rep}" if rep else "")
            out.append(Candidate(name=name, family=family, depth=depth, width=width,
                                 source=source, pretrain_epochs=budget, seed=seed + rep,
                                 data=dataset_name))
    return out[:n]


HP_DEPTHS = (1, 2, 3)
HP_WIDTHS = (32, 64, 128, 256)
HP_BATCH_SIZES = (32, 64, 128)
HP_LR_RANGE = (1e-4, 1e-1)
HP_WD_RANGE = (1e-6, 1e-2)
HP_INIT_SCALE_RANGE = (0.5, 2.0)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def hyperparameter_zoo(dataset_name: str, n: int = 60, seed: int = 0) -> list[Candidate]:
    """The hyperparameter zoo: MLPs from scratch with randomly sampled hyperparameters.

    Each candidate draws, from ``np.random.default_rng(seed)``: learning rate log-uniform
    in :data:`HP_LR_RANGE`, weight decay log-uniform in :data:`HP_WD_RANGE`, init scale
    log-uniform in :data:`HP_INIT_SCALE_RANGE`, and depth, width and batch size uniformly
    from :data:`HP_DEPTHS`, :data:`HP_WIDTHS`, :data:`HP_BATCH_SIZES`. Candidate ``i`` is
    the ``i``-th draw, so a larger ``n`` extends a smaller zoo. All share ``seed``, so
    candidates of one shape start from the same weights up to their init scale and see
    the same batches: the differences are the hyperparameters.

    Returns:
      ``n`` candidates named like ``hp007-mlp-d2-w128-b64-lr3.2e-03-wd1.0e-05-is1.41``.
    """
    n, seed = _check_zoo_args(dataset_name, n, seed)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        lr = _log_uniform(rng, HP_LR_RANGE)
        wd = _log_uniform(rng, HP_WD_RANGE)
        scale = _log_uniform(rng, HP_INIT_SCALE_RANGE)
        depth = int(rng.choice(HP_DEPTHS))
        width = int(rng.choice(HP_WIDTHS))
        batch = int(rng.choice(HP_BATCH_SIZES))
        name = (f"hp{i:03d}-{_arch_name('mlp', depth, width)}-b{batch}-lr{lr:.1e}-wd{wd:.1e}"
                f"-is{scale:.2f}")
        out.append(Candidate(name=name, family="mlp", depth=depth, width=width, lr=lr,
                             weight_decay=wd, batch_size=batch, init_scale=scale, seed=seed,
                             data=dataset_name))
    return out


ZOOS = {"transfer": transfer_zoo, "hyper": hyperparameter_zoo}
"""The zoos by the names ``capjax select --zoo`` and ``capjax bench --zoo`` take."""


def make_zoo(
    kind: str, dataset_name: str, n: int | None = None, seed: int = 0, probe_widths: tuple[int, ...] | None = None
) -> list[Candidate]:
    """The ``kind`` zoo of :data:`ZOOS` for ``dataset_name`` (its default size when ``n`` is None).

    ``probe_widths`` replaces every candidate's probe widths when given.
    """
    if kind not in ZOOS:
        raise CapjaxInputError(f"unknown zoo {kind!r}; use one of {sorted(ZOOS)}")
    make = ZOOS[kind]
    candidates = make(dataset_name, n, seed=seed) if n else make(dataset_name, seed=seed)
    if probe_widths:
        candidates = [dataclasses.replace(c, probe_widths=tuple(probe_widths)) for c in candidates]
    return candidates
