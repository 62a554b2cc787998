"""Candidate zoos: the models whose final accuracy capjax predicts (SPEC 2.3, 5).

A :class:`Candidate` is a frozen, JSON-serialisable description of one model to fine-tune:
backbone family and size, pretraining source and budget, fine-tuning hyperparameters,
probe widths and seed. Two zoos build lists of them:

* :func:`transfer_zoo`, the paper's setting: backbones of different families and sizes,
  pretrained by capjax itself for different budgets on source tasks carved from the
  training split (half of the classes, flipped inputs, random labels) or left at random
  initialisation, each fine-tuned with the frozen probe and a new head;
* :func:`hyperparameter_zoo`: one MLP family over learning rate, width, depth, weight
  decay, init scale and batch size.

Models are pure functions over parameter pytrees::

    {"backbone": {"layers": [{"kernel", "bias"}, ...]},
     "probe": [{"kernel", "bias"}, ...],          # frozen (capjax.freeze_probe)
     "head": {"kernel": (probe_widths[-1], K), "bias": (K,)}}

backbone -> probe -> head. The probe is the same instrument for every candidate: it is
drawn from the fixed key :data:`PROBE_SEED` (given the feature size and widths), not from
the candidate's seed, so that differences in ``beta_eff`` between candidates come from
their backbones and heads rather than from the probe's random draw. (The paper draws it
at random; :data:`PROBE_SEED` is that draw, made once.)

Backbones:

* ``mlp``: ``depth`` Dense+ReLU layers of ``width`` units on the flattened input;
  features are the last hidden layer, ``(batch, width)``.
* ``cnn``: ``depth`` blocks of 3-wide convolution (``width`` channels, SAME padding),
  ReLU and 2-wide max-pooling, then flatten. NHWC images ``(H, W, C)`` get 2-D
  convolutions; flat inputs ``(d,)`` (e.g. MNIST-1D's 40-long sequences) are read as
  one-channel sequences and get 1-D convolutions, so both families work on every dataset.

Kernels start He-normal times the candidate's ``init_scale``; biases start at zero.

Pretraining (:func:`pretrain_backbones`) trains the backbone with a temporary Dense head
on the source task, with Adam at :data:`PRETRAIN_LR`, batch :data:`PRETRAIN_BATCH`, then
drops that head (the paper removes the pretrained model's output layer) and caches the
backbone on disk with orbax, keyed by a hash of everything that determines it
(family, size, init scale, seed, source, budget, and a fingerprint of the data).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from capjax.data import Dataset, batch_indices
from capjax.dynamics import stack_apply
from capjax.probe import DEFAULT_WIDTHS, apply_probe, freeze_probe, init_probe
from capjax.validation import CapjaxInputError
from capjax.zerocost import cross_entropy

FAMILIES = ("mlp", "cnn")
SOURCES = ("none", "half", "flip", "randlabel")
"""Pretraining sources, all carved from the target's training split:

* ``none``: no pretraining (random initialisation; budget 0);
* ``half``: the examples of the first ``ceil(K / 2)`` classes;
* ``flip``: every example with its input reversed along each spatial axis (images
  rotated by 180 degrees, sequences reversed), same labels;
* ``randlabel``: every example with a random label (fixed draw), a negative-transfer source.
"""

PROBE_SEED = 20240705
"""Key of the probe's random draw, shared by all candidates (see the module docstring)."""

PRETRAIN_LR = 1e-3
PRETRAIN_BATCH = 64

CACHE_ENV = "CAPJAX_CACHE"


def default_cache_dir() -> Path:
    """``$CAPJAX_CACHE`` if set, else ``~/.cache/capjax``; pretrained backbones go under it."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "capjax"))


BACKBONE_STREAM, HEAD_STREAM, FINETUNE_STREAM, PRETRAIN_STREAM = range(4)
"""A candidate's independent random streams (see :func:`candidate_key`), all from its seed."""


def candidate_key(seed: jax.Array | int, stream: int) -> jax.Array:
    """The PRNG key of one of a candidate's random streams; traceable in ``seed``."""
    return jax.random.fold_in(jax.random.key(seed), stream)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise CapjaxInputError(f"{name} is {value!r}; pass an int >= {minimum}")
    return int(value)


def _positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise CapjaxInputError(f"{name} is {value!r}; pass a finite number {bound}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One model to fine-tune and rank.

    Attributes:
      name: unique, readable identifier; also a file name, so no ``/``.
      family: backbone family, ``"mlp"`` or ``"cnn"``.
      depth: number of hidden layers (mlp) or conv blocks (cnn), >= 1.
      width: units per hidden layer (mlp) or channels per conv (cnn).
      source: pretraining source, one of :data:`SOURCES`.
      pretrain_epochs: pretraining budget in epochs of the source task; 0 iff ``source``
        is ``"none"``.
      lr: fine-tuning learning rate (AdamW).
      weight_decay: decoupled weight decay of AdamW (multiplied by ``lr``).
      batch_size: fine-tuning batch size.
      init_scale: multiplies the He-normal initial kernels of the backbone (before any
        pretraining).
      probe_widths: widths of the frozen probe's layers.
      seed: seeds the backbone and head initialisation and the batch order.
      data: the dataset the zoo was built for (provenance; pretraining uses the dataset
        it is given).
    """

    name: str
    family: str
    depth: int
    width: int
    source: str = "none"
    pretrain_epochs: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    init_scale: float = 1.0
    probe_widths: tuple[int, ...] = DEFAULT_WIDTHS
    seed: int = 0
    data: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name or "\\" in self.name:
            raise CapjaxInputError(
                f"candidate name {self.name!r} is not a usable file name; "
                "pass a non-empty name without slashes"
            )
        if self.family not in FAMILIES:
            raise CapjaxInputError(
                f"candidate {self.name}: family {self.family!r} is unknown; use one of {FAMILIES}"
            )
        if self.source not in SOURCES:
            raise CapjaxInputError(
                f"candidate {self.name}: source {self.source!r} is unknown; use one of {SOURCES}"
            )
        set_ = lambda field, v: object.__setattr__(self, field, v)  # noqa: E731
        for field in ("depth", "width", "batch_size"):
            set_(field, _positive_int(f"candidate {self.name}: {field}", getattr(self, field)))
        set_("pretrain_epochs", _positive_int(
            f"candidate {self.name}: pretrain_epochs", self.pretrain_epochs, minimum=0))
        set_("seed", _positive_int(f"candidate {self.name}: seed", self.seed, minimum=0))
        if (self.source == "none") != (self.pretrain_epochs == 0):
            raise CapjaxInputError(
                f"candidate {self.name}: source {self.source!r} with pretrain_epochs "
                f"{self.pretrain_epochs}; use source 'none' exactly when pretrain_epochs is 0"
            )
        set_("lr", _positive_float(f"candidate {self.name}: lr", self.lr))
        set_("init_scale", _positive_float(f"candidate {self.name}: init_scale", self.init_scale))
        set_("weight_decay", _positive_float(
            f"candidate {self.name}: weight_decay", self.weight_decay, allow_zero=True))
        widths = self.probe_widths
        if isinstance(widths, str | int) or not isinstance(widths, Sequence) or not widths:
            raise CapjaxInputError(
                f"candidate {self.name}: probe_widths is {widths!r}; pass a non-empty "
                "sequence of layer widths, e.g. (64, 32)"
            )
        set_("probe_widths", tuple(
            _positive_int(f"candidate {self.name}: probe width", w) for w in widths))

    @property
    def group_key(self) -> tuple:
        """Candidates with equal keys have identical parameter shapes and batch size.

        They train together in one vmapped step; ``lr``, ``weight_decay``,
        ``init_scale``, ``seed``, source and budget may differ within a group.
        """
        return (self.family, self.depth, self.width, self.probe_widths, self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` inverts it."""
        out = dataclasses.asdict(self)
        out["probe_widths"] = list(self.probe_widths)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        """Rebuild a candidate from :meth:`to_dict`'s output (e.g. read back from JSON)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise CapjaxInputError(
                f"candidate dict has unknown field(s) {sorted(unknown)}; known: {sorted(fields)}"
            )
        return cls(**d)


def check_candidates(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Return ``candidates`` as a list after checking they are Candidates with unique names."""
    candidates = list(candidates)
    if not candidates:
        raise CapjaxInputError("no candidates given; pass at least one Candidate")
    for c in candidates:
        if not isinstance(c, Candidate):
            raise CapjaxInputError(
                f"{c!r} is not a Candidate; build candidates with capjax.zoo (or Candidate(...))"
            )
    names = [c.name for c in candidates]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CapjaxInputError(
            f"candidate names {dupes} repeat; give every candidate a unique name"
        )
    return candidates


# ---------------------------------------------------------------------------------------
# Backbones and the fine-tuning model


def _spatial(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Spatial dims a CNN convolves over: ``(H, W)`` for images, ``(d,)`` for flat inputs."""
    return tuple(input_shape[:-1]) if len(input_shape) == 3 else tuple(input_shape)


def _channels(input_shape: Sequence[int]) -> int:
    return input_shape[-1] if len(input_shape) == 3 else 1


def init_backbone(
    key: jax.Array,
    candidate: Candidate,
    input_shape: Sequence[int],
    *,
    init_scale: float | jax.Array | None = None,
) -> dict:
    """Random backbone parameters ``{"layers": [{"kernel", "bias"}, ...]}``.

    Args:
      key: PRNG key.
      candidate: gives the family, depth, width and init scale.
      input_shape: one example's shape, ``(d,)`` or NHWC ``(H, W, C)``.
      init_scale: overrides ``candidate.init_scale``; may be traced, so that one
        compiled initialiser vmaps over the candidates of a shape.

    MLP kernels are ``(d_in, width)``; CNN kernels ``(3, 3, c_in, width)`` for images or
    ``(3, c_in, width)`` for flat inputs. A CNN whose poolings would shrink a spatial
    dimension below 1 is rejected.
    """
    input_shape = tuple(int(s) for s in input_shape)
    scale = candidate.init_scale if init_scale is None else init_scale
    if len(input_shape) not in (1, 3):
        raise CapjaxInputError(
            f"input_shape {input_shape}; backbones take flat (d,) inputs or NHWC (H, W, C) images"
        )
    if candidate.family == "mlp":
        sizes = [math.prod(input_shape)] + [candidate.width] * candidate.depth
        shapes = [(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    else:
        spatial = _spatial(input_shape)
        if min(spatial) < 2**candidate.depth:
            raise CapjaxInputError(
                f"candidate {candidate.name}: inputs of spatial size {spatial} are too small for "
                f"{candidate.depth} conv blocks (each halves them); use depth <= "
                f"{max(int(math.log2(min(spatial))), 1)} or the mlp family"
            )
        chans = [_channels(input_shape)] + [candidate.width] * candidate.depth
        window = (3,) * len(spatial)
        shapes = [(*window, a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)]
    kernels = _truncated_normal_kernels(key, shapes, gain=2.0)
    return {
        "layers": [{"kernel": scale * k, "bias": jnp.zeros((k.shape[-1],), jnp.float32)}
                   for k in kernels]
    }


_TRUNCATED_STD = 0.87962566103423978
"""Standard deviation of a unit normal truncated to [-2, 2]."""


def _truncated_normal_kernels(
    key: jax.Array, shapes: Sequence[tuple[int, ...]], gain: float
) -> list[jax.Array]:
    """Kernels of ``shapes`` with variance ``gain / fan_in``, truncated at two std devs.

    The same distribution as ``jax.nn.initializers.variance_scaling(gain, "fan_in",
    "truncated_normal")`` (He-normal for ``gain=2``, LeCun-normal for 1), from ONE draw for
    all layers: XLA on CPU compiles each random draw separately and slowly, and
    initialisers are compiled per architecture.
    """
    sizes = [math.prod(s) for s in shapes]
    flat = jax.random.truncated_normal(key, -2.0, 2.0, (sum(sizes),), jnp.float32)
    parts = jnp.split(flat, np.cumsum(sizes)[:-1].tolist())
    return [
        p.reshape(s) * (math.sqrt(gain / math.prod(s[:-1])) / _TRUNCATED_STD)
        for p, s in zip(parts, shapes, strict=True)
    ]


def _conv_block(x: jax.Array, layer: dict) -> jax.Array:
    n_sp = x.ndim - 2
    spatial = "HW"[:n_sp] if n_sp == 2 else "W"
    dims = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    x = jax.lax.conv_general_dilated(
        x, layer["kernel"], (1,) * n_sp, "SAME", dimension_numbers=dims
    )
    return _max_pool(jax.nn.relu(x + layer["bias"]))


def _max_pool(x: jax.Array) -> jax.Array:
    """2-wide, stride-2 max-pooling of every spatial axis of ``(N, *spatial, C)`` (floor).

    Written as a reshape and a max rather than ``lax.reduce_window``: under ``vmap`` the
    latter's gradient (select-and-scatter) runs several times slower on CPU.
    """
    spatial = x.shape[1:-1]
    x = x[(slice(None), *(slice(0, s // 2 * 2) for s in spatial), slice(None))]
    split = [d for s in spatial for d in (s // 2, 2)]
    pairs = tuple(range(2, 2 + 2 * len(spatial), 2))
    return x.reshape(x.shape[0], *split, x.shape[-1]).max(axis=pairs)


def _features(family: str, params: dict, x: jax.Array) -> jax.Array:
    if family == "mlp":
        return stack_apply(params["layers"], x.reshape(x.shape[0], -1))
    h = x if x.ndim == 4 else x.reshape(x.shape[0], -1, 1)
    for layer in params["layers"]:
        h = _conv_block(h, layer)
    return h.reshape(h.shape[0], -1)


def backbone_features(candidate: Candidate, params: dict, x: jax.Array) -> jax.Array:
    """Backbone features ``(batch, d_feat)`` of inputs ``x`` ``(batch, *input_shape)``. Pure."""
    return _features(candidate.family, params, x)


def feature_dim(candidate: Candidate, input_shape: Sequence[int]) -> int:
    """``d_feat``, the size of the features the backbone gives the probe."""
    params = jax.eval_shape(lambda: init_backbone(jax.random.key(0), candidate, input_shape))
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return int(jax.eval_shape(lambda p, x: _features(candidate.family, p, x), params, x).shape[1])


def _dense(key: jax.Array, d_in: int, d_out: int) -> dict:
    """A LeCun-normal Dense layer, as ``nn.Dense`` initialises it."""
    (kernel,) = _truncated_normal_kernels(key, [(d_in, d_out)], gain=1.0)
    return {"kernel": kernel, "bias": jnp.zeros((d_out,), jnp.float32)}


@functools.cache
def shared_probe(d_feat: int, widths: tuple[int, ...]) -> list[dict]:
    """The frozen probe every candidate with these sizes gets: :data:`PROBE_SEED`'s draw.

    Computed once per sizes and returned as NumPy arrays, so that inside a traced
    initialiser it is a constant rather than a random draw compiled again.
    """
    with jax.ensure_compile_time_eval():
        init = jax.jit(init_probe, static_argnums=(1, 2))
        layers = init(jax.random.key(PROBE_SEED), d_feat, widths)
    return jax.device_get(layers)


def init_model(
    candidate: Candidate,
    backbone: dict,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    seed: int | jax.Array | None = None,
) -> dict:
    """The fine-tuning model ``{"backbone", "probe", "head"}`` around ``backbone``'s params.

    The probe comes from :data:`PROBE_SEED` (the same for every candidate); the head, a
    Dense ``probe_widths[-1] -> num_classes``, from the candidate's seed. ``seed``
    overrides ``candidate.seed`` and may be traced, so that this vmaps over candidates.
    """
    d_feat = feature_dim(candidate, input_shape)
    seed = candidate.seed if seed is None else seed
    return {
        "backbone": backbone,
        "probe": jax.tree.map(jnp.asarray, shared_probe(d_feat, candidate.probe_widths)),
        "head": _dense(candidate_key(seed, HEAD_STREAM), candidate.probe_widths[-1], num_classes),
    }


def apply_head(head: dict, h: jax.Array) -> jax.Array:
    """The Dense head: logits ``(batch, K)`` of the probe's output ``h``."""
    return h @ head["kernel"] + head["bias"]


def model_logits(candidate: Candidate, params: dict, x: jax.Array) -> jax.Array:
    """Logits ``(batch, K)`` of the fine-tuning model (backbone -> probe -> head). Pure."""
    h = apply_probe(params["probe"], backbone_features(candidate, params["backbone"], x))
    return apply_head(params["head"], h)


def finetune_optimizer(
    lr: float | jax.Array, weight_decay: float | jax.Array
) -> optax.GradientTransformation:
    """AdamW with the probe frozen (:func:`capjax.freeze_probe`), for fine-tuning.

    The learning rate and weight decay live in the optimizer *state*
    (``optax.inject_hyperparams``), so ``init`` under ``jax.vmap`` with per-candidate
    arrays gives each candidate its own values, and ``update`` of any instance (e.g.
    ``finetune_optimizer(0.0, 0.0)``) reads them from the state.
    """
    adamw = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=weight_decay)
    return freeze_probe(adamw)


def train_epoch(
    loss: Callable[[Any, jax.Array, jax.Array], jax.Array],
    tx: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    x: jax.Array,
    y: jax.Array,
    idx: jax.Array,
) -> tuple[Any, Any, jax.Array]:
    """One epoch of mini-batch training, a ``jax.lax.scan`` over the rows of ``idx``.

    Args:
      loss: ``loss(params, x_batch, y_batch) -> scalar``.
      tx: the optimizer.
      x, y: the whole training split, ``(n, ...)`` and ``(n,)``.
      idx: ``(n_batches, batch_size)`` example indices (:func:`capjax.data.batch_indices`).

    Returns:
      ``(params, opt_state, losses)`` with the loss of every step, ``(n_batches,)``.
    """

    def step(carry, rows):
        p, s = carry
        value, grads = jax.value_and_grad(loss)(p, x[rows], y[rows])
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), idx)
    return params, opt_state, losses


# ---------------------------------------------------------------------------------------
# Pretraining, cached on disk


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


def _arch(c: Candidate) -> Candidate:
    """A stand-in with only ``c``'s architecture: the static key of compiled functions."""
    return Candidate("arch", c.family, c.depth, c.width)


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


@functools.partial(jax.jit, static_argnums=(2, 3))
def _random_backbones(seeds: jax.Array, scales: jax.Array, arch: Candidate, input_shape: tuple):
    def one(seed, scale):
        key = candidate_key(seed, BACKBONE_STREAM)
        return init_backbone(key, arch, input_shape, init_scale=scale)

    return jax.vmap(one)(seeds, scales)


def random_backbones(
    candidates: Iterable[Candidate], input_shape: Sequence[int]
) -> dict[str, dict]:
    """Each candidate's randomly initialised backbone (its seed's backbone stream), NumPy.

    Candidates of one architecture are initialised by one compiled, vmapped function.
    """
    candidates = check_candidates(candidates)
    shape = tuple(int(s) for s in input_shape)
    by_arch: dict[Candidate, list[Candidate]] = {}
    for c in candidates:
        by_arch.setdefault(_arch(c), []).append(c)
    out = {}
    for arch, members in by_arch.items():
        # Shape errors name a real candidate, not the stand-in the compiled function sees.
        jax.eval_shape(lambda c=members[0]: init_backbone(jax.random.key(0), c, shape))
        stacked = jax.device_get(_random_backbones(
            np.array([c.seed for c in members], np.int32),
            np.array([c.init_scale for c in members], np.float32), arch, shape,
        ))
        for i, c in enumerate(members):
            out[c.name] = jax.tree.map(lambda leaf, i=i: leaf[i], stacked)
    return out


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def epoch_batches(
    seeds: jax.Array, epoch: int | jax.Array, num_examples: int, batch_size: int, stream: int
) -> jax.Array:
    """Every candidate's batch order for one epoch: ``(len(seeds), n_batches, batch_size)``.

    Row ``i`` is :func:`capjax.data.batch_indices` keyed by candidate ``seeds[i]``'s random
    stream ``stream`` folded with ``epoch``: a function of the seed and the epoch only, so
    an interrupted run resumes with the same batches.
    """

    def one(seed):
        key = jax.random.fold_in(candidate_key(seed, stream), epoch)
        return batch_indices(key, num_examples, batch_size)

    return jax.vmap(one)(seeds)


@functools.cache
def _pretrain_fns(arch: Candidate, input_shape: tuple, num_classes: int):
    """Jitted ``init(backbone, seed) -> (params, opt_state)`` and one training epoch."""
    tx = optax.adam(PRETRAIN_LR)
    d_feat = feature_dim(arch, input_shape)

    @jax.jit
    def init(backbone, seed):
        params = {"backbone": backbone,
                  "head": _dense(candidate_key(seed, HEAD_STREAM), d_feat, num_classes)}
        return params, tx.init(params)

    def loss(p, xb, yb):
        return cross_entropy(apply_head(p["head"], _features(arch.family, p["backbone"], xb)), yb)

    @jax.jit
    def run(params, opt_state, x, y, idx):
        return train_epoch(loss, tx, params, opt_state, x, y, idx)

    return init, run


def _pretrain_lineage(
    c: Candidate, backbone: dict, dataset: Dataset, budgets: Sequence[int]
) -> dict[int, dict]:
    """Pretrain one lineage to ``max(budgets)`` epochs; the backbone after each budget."""
    x, y = source_task(c.source, dataset)
    init, run = _pretrain_fns(_arch(c), dataset.input_shape, dataset.num_classes)
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
    checkpointer = ocp.StandardCheckpointer()
    try:
        for members in lineages.values():
            first = members[0]
            paths = {b: _cache_path(cache_dir, first, b, fingerprint, shape)
                     for b in sorted({c.pretrain_epochs for c in members})}
            missing = [b for b, p in paths.items() if not p.exists()]
            trained = _pretrain_lineage(first, out[first.name], dataset, missing) if missing else {}
            backbones = {}
            for b, path in paths.items():
                if b in trained:
                    backbones[b] = trained[b]
                    checkpointer.save(path.absolute(), trained[b], force=True)
                    checkpointer.wait_until_finished()
                else:
                    backbones[b] = checkpointer.restore(path.absolute(), out[first.name])
            for c in members:
                out[c.name] = backbones[c.pretrain_epochs]
            if on_lineage is not None:
                on_lineage()
    finally:
        checkpointer.close()
    return out


def pretrain_backbone(
    candidate: Candidate, dataset: Dataset, cache_dir: str | os.PathLike[str] | None = None
) -> dict:
    """One candidate's initial backbone parameters; see :func:`pretrain_backbones`."""
    return pretrain_backbones([candidate], dataset, cache_dir)[candidate.name]


def n_lineages(candidates: Iterable[Candidate]) -> int:
    """How many pretraining runs (or cache loads) :func:`pretrain_backbones` will make."""
    return len({_lineage(c) for c in candidates if c.source != "none"})


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
    return _positive_int("n", n), _positive_int("seed", seed, minimum=0)


def _arch_name(family: str, depth: int, width: int) -> str:
    return f"{family}-d{depth}-{'w' if family == 'mlp' else 'c'}{width}"


def transfer_zoo(dataset_name: str, n: int | None = None, seed: int = 0) -> list[Candidate]:
    """The transfer zoo (SPEC 2.3): backbones x pretraining settings, fine-tuned alike.

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
