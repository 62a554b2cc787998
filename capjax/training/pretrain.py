"""Pretraining backbones on source tasks carved from the target, cached on disk with orbax.

:func:`pretrain_backbones` trains each backbone with a temporary Dense head on its source
task (:data:`~capjax.training.spec.SOURCES`), with Adam at :data:`PRETRAIN_LR`, batch
:data:`PRETRAIN_BATCH`, then drops that head (the paper removes the pretrained model's
output layer) and caches the backbone keyed by a hash of everything that determines it
(family, size, init scale, seed, source, budget, and a fingerprint of the data).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from capjax.base.distributed import orbax_primary_only
from capjax.base.validation import CapjaxInputError, CapjaxWarning
from capjax.data.dataset import Dataset
from capjax.records.files import exclusive, written
from capjax.signals.zerocost import cross_entropy
from capjax.training.model import (
    apply_head,
    backbone_features,
    dense,
    epoch_batches,
    feature_dim,
    random_backbones,
    train_epoch,
)
from capjax.training.spec import (
    HEAD_STREAM,
    PRETRAIN_STREAM,
    SOURCES,
    Architecture,
    Candidate,
    candidate_key,
    check_candidates,
)

PRETRAIN_LR = 1e-3
PRETRAIN_BATCH = 64

CACHE_ENV = "CAPJAX_CACHE"


def default_cache_dir() -> Path:
    """``$CAPJAX_CACHE`` if set, else ``~/.cache/capjax``; pretrained backbones go under it."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "capjax"))


def source_task(source: str, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels of a pretraining source (see :data:`SOURCES`), from the train split."""
    x, y = dataset.x_train, dataset.y_train
    if source == "half":
        keep = y < math.ceil(dataset.num_classes / 2)
        return x[keep], y[keep]
    if source == "flip":
        axes = tuple(range(1, x.ndim - 1)) if x.ndim == 4 else (1,)
        return np.flip(x, axis=axes), y
    if source == "randlabel":
        # One fixed draw, so every candidate pretrained on "random labels" sees the same task.
        labels = np.random.default_rng(0).integers(dataset.num_classes, size=len(y))
        return x, labels.astype(np.int32)
    raise CapjaxInputError(f"source {source!r} has no task; use one of {SOURCES[1:]}")


def data_fingerprint(dataset: Dataset) -> str:
    """A short hash of the training split and class count; part of the pretraining cache key."""
    h = hashlib.blake2b(digest_size=8)
    for a in (dataset.x_train, dataset.y_train):
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(str(dataset.num_classes).encode())
    return h.hexdigest()


def _lineage(c: Candidate) -> tuple:
    # Candidates with the same lineage follow one pretraining run; budgets are its epochs.
    return (c.family, c.depth, c.width, c.init_scale, c.seed, c.source)


def _cache_path(cache_dir: Path, c: Candidate, budget: int, fingerprint: str, shape) -> Path:
    spec = {
        "lineage": list(_lineage(c)), "budget": budget, "data": fingerprint,
        "input_shape": list(shape), "lr": PRETRAIN_LR, "batch": PRETRAIN_BATCH, "version": 1,
    }
    digest = hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()
    name = f"{c.family}-d{c.depth}-w{c.width}-{c.source}-pre{budget}-{digest}"
    return cache_dir / "pretrain" / name


@functools.cache
def _pretrain_fns(arch: Architecture, input_shape: tuple, num_classes: int):
    """Jitted ``init(backbone, seed) -> (params, opt_state)`` and one training epoch."""
    tx = optax.adam(PRETRAIN_LR)
    d_feat = feature_dim(arch, input_shape)

    @jax.jit
    def init(backbone, seed):
        params = {"backbone": backbone,
                  "head": dense(candidate_key(seed, HEAD_STREAM), d_feat, num_classes)}
        return params, tx.init(params)

    def loss(p, xb, yb, key):
        return cross_entropy(apply_head(p["head"], backbone_features(arch.family, p["backbone"], xb)), yb), p

    @jax.jit
    def run(params, opt_state, x, y, idx):
        return train_epoch(loss, tx, params, opt_state, x, y, idx, jnp.zeros(2, jnp.uint32))

    return init, run


def _pretrain_lineage(
    c: Candidate, backbone: dict, dataset: Dataset, budgets: Sequence[int]
) -> dict[int, dict]:
    """Pretrain one lineage to ``max(budgets)`` epochs; the backbone after each budget."""
    x, y = source_task(c.source, dataset)
    init, run = _pretrain_fns(c.arch, dataset.input_shape, dataset.num_classes)
    params, opt_state = init(backbone, c.seed)
    x, y = jnp.asarray(x), jnp.asarray(y)
    batch = min(PRETRAIN_BATCH, len(y))
    out = {}
    for epoch in range(1, max(budgets) + 1):
        idx = epoch_batches(np.array([c.seed], np.int32), epoch, len(y), batch, PRETRAIN_STREAM)
        params, opt_state, _ = run(params, opt_state, x, y, idx[0])
        if epoch in budgets:
            out[epoch] = jax.device_get(params["backbone"])
    return out


def pretrain_backbones(
    candidates: Iterable[Candidate],
    dataset: Dataset,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    on_lineage: Callable[[], None] | None = None,
) -> dict[str, dict]:
    """Initial backbone parameters of every candidate, pretrained and cached as needed.

    Candidates with source ``"none"`` get their random initialisation
    (:func:`random_backbones`). The others start from the same initialisation and are
    pretrained on their source task (:func:`source_task`) with a temporary Dense head;
    candidates that differ only in budget share one run, stopped at each budget. Results
    are saved with orbax under ``cache_dir/pretrain/`` and loaded on later calls instead
    of retrained. The batch order of pretraining epoch ``e`` depends only on the seed and
    ``e``, so a budget-3 backbone is the same whether it was trained alone or on the way
    to budget 10.

    Args:
      candidates: the candidates.
      dataset: the target dataset; source tasks are carved from its training split.
      cache_dir: cache root (default :func:`default_cache_dir`).
      on_lineage: called after each pretraining run or cache load (progress reporting).

    Returns:
      ``{candidate name: backbone params}`` as NumPy pytrees.
    """
    candidates = check_candidates(candidates)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    shape = dataset.input_shape
    out = random_backbones(candidates, shape)
    lineages: dict[tuple, list[Candidate]] = {}
    for c in candidates:
        if c.source != "none":
            lineages.setdefault(_lineage(c), []).append(c)
    fingerprint = data_fingerprint(dataset) if lineages else ""
    import orbax.checkpoint as ocp  # here: orbax is heavy and only pretraining needs it

    if not lineages:
        return out
    checkpointer = ocp.StandardCheckpointer(multiprocessing_options=orbax_primary_only())
    # shared by every run that uses this cache: one writer at a time, the others wait
    with exclusive(cache_dir, wait=True, flag="--cache-dir"):
        try:
            for members in lineages.values():
                first = members[0]
                paths = {b: _cache_path(cache_dir, first, b, fingerprint, shape)
                         for b in sorted({c.pretrain_epochs for c in members})}
                backbones = {b: _load_entry(checkpointer, p, out[first.name]) for b, p in paths.items() if p.exists()}
                missing = [b for b in paths if backbones.get(b) is None]
                trained = _pretrain_lineage(first, out[first.name], dataset, missing) if missing else {}
                for b, params in trained.items():
                    with written(paths[b].parent, "pretrained backbone"):
                        checkpointer.save(paths[b].absolute(), params, force=True)
                        checkpointer.wait_until_finished()
                    backbones[b] = params
                for c in members:
                    out[c.name] = backbones[c.pretrain_epochs]
                if on_lineage is not None:
                    on_lineage()
        finally:
            checkpointer.close()
    return out


def _load_entry(checkpointer: Any, path: Path, like: dict) -> dict | None:
    """A cached backbone, or None after deleting an unreadable entry (it is then retrained)."""
    try:
        return checkpointer.restore(path.absolute(), like)
    except Exception as err:  # noqa: BLE001 - orbax reports a torn entry in many ways; any means "rebuild"
        warnings.warn(f"pretraining cache entry {path} is unreadable ({type(err).__name__}); deleting and "
                      "rebuilding it", CapjaxWarning, stacklevel=4)
        shutil.rmtree(path, ignore_errors=True)
        return None


def pretrain_backbone(
    candidate: Candidate, dataset: Dataset, cache_dir: str | os.PathLike[str] | None = None
) -> dict:
    """One candidate's initial backbone parameters; see :func:`pretrain_backbones`."""
    return pretrain_backbones([candidate], dataset, cache_dir)[candidate.name]


def n_lineages(candidates: Iterable[Candidate]) -> int:
    """How many pretraining runs (or cache loads) :func:`pretrain_backbones` will make."""
    return len({_lineage(c) for c in candidates if c.source != "none"})
