"""Per-epoch record functions for every signal of :mod:`capjax.signals` (docs/method.md §3, §4).

:func:`record_fns` gives :func:`capjax.training.run_sweep` one function per field of
:data:`capjax.records.fields.SIGNAL_FIELDS`: a scalar per candidate and epoch, computed
from that candidate's parameters (all from its *backbone* unless said otherwise):

* ``l2_norm``: ``sqrt(sum w^2)`` over the backbone's kernels and biases
  (:func:`capjax.signals.topology.weight_l2_norm`; Tan et al.'s baseline).
* ``spectral_alpha``: mean power-law exponent of the kernels' eigenvalue tails
  (:func:`capjax.signals.spectral.mean_alpha`); NaN when no kernel has 10 eigenvalues
  (e.g. conv kernels with fewer than 10 output channels).
* ``strength``, ``fluctuation``: La Malfa's node strength and layer fluctuation
  ``std_i(s_i^l)`` (:func:`capjax.signals.strength.node_strengths`), each averaged over
  the backbone's node layers, so that candidates of any depth get comparable scalars.
* ``rolled_degree_mean``, ``rolled_degree_std``, ``rolled_centrality_mean``,
  ``rolled_centrality_std``: mean and std of the weighted degree and of the eigenvector
  centrality, pooled over every node of the backbone's rolled graph (Vahedian et al.;
  :mod:`capjax.signals.rolled`).
* ``fractal``: mean box-counting dimension of the backbone's kernel images
  (:func:`capjax.signals.fractal.fractal_features`; kernels with a side under 4 pixels
  are skipped); NaN when none qualifies.
* ``logme``, ``hscore``, ``transrate``: transferability
  (:mod:`capjax.signals.transferability`) of the backbone's features of the fixed probe
  batch.
* ``zc_grad_norm``, ``zc_snip``, ``zc_synflow``, ``zc_jacov``, ``zc_nwot``: zero-cost
  proxies (:mod:`capjax.signals.zerocost`) of the whole model (backbone, frozen probe and
  head; every parameter counts) on the probe batch. They are defined at initialisation,
  so they are computed at epoch 0 only and recorded NaN afterwards.

Conv backbones on flat inputs use 1-D kernels ``(3, c_in, c_out)``; the graph views read
them as 2-D kernels ``(1, 3, c_in, c_out)`` over a ``(1, d)`` image, which is the same
convolution. The max-pooling after every conv block links nothing, so in La Malfa's graph
each pooling junction is two node layers (see :func:`capjax.signals.strength.node_strengths`).

A signal that is undefined for a candidate (its checks raise
:class:`~capjax.base.validation.CapjaxInputError`) is recorded NaN rather than stopping the
sweep; the predictors then mark that candidate failed with a reason.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.capacitance.probe import apply_probe
from capjax.data.dataset import Dataset
from capjax.records.fields import (
    FRACTAL_FIELDS,
    L2_FIELDS,
    ROLLED_FIELDS,
    SIGNAL_FIELDS,
    SPECTRAL_FIELDS,
    STRENGTH_FIELDS,
    TRANSFERABILITY_FIELDS,
    ZERO_COST_FIELDS,
)
from capjax.signals.fractal import fractal_features
from capjax.signals.rolled import eigenvector_centrality, rolled_blocks, weighted_degree
from capjax.signals.spectral import mean_alpha
from capjax.signals.strength import strength_features
from capjax.signals.topology import weight_l2_norm
from capjax.signals.transferability import h_score, logme, transrate
from capjax.signals.zerocost import grad_norm, jacov, nwot, snip, synflow
from capjax.training.backbones import Program
from capjax.training.model import backbone_features, model_logits
from capjax.training.spec import Candidate


@dataclasses.dataclass(frozen=True)
class SweepContext:
    """What a ``record_fns`` callable may use besides the candidate's parameters.

    Attributes:
      candidate: the candidate (use it with :func:`capjax.training.model.model_logits` or
        :func:`capjax.training.model.backbone_features` with its ``family``).
      epoch: the epoch just finished (0: before fine-tuning).
      dataset: the target dataset.
      probe_x, probe_y: the fixed probe batch, ``(probe_batch, *input_shape)`` and
        ``(probe_batch,)``.
    """

    candidate: Candidate
    epoch: int
    dataset: Dataset
    probe_x: np.ndarray
    probe_y: np.ndarray


BUILTIN_ONLY_FIELDS = (*SPECTRAL_FIELDS, *STRENGTH_FIELDS, *ROLLED_FIELDS, *FRACTAL_FIELDS, *ZERO_COST_FIELDS)
"""Fields read from a built-in backbone's layer list (``params["backbone"]["layers"]``);
own backbones (:mod:`capjax.training.backbones`) can record the others."""

RecordFn = Callable[[dict, SweepContext], float]
"""``fn(params, ctx) -> float`` with one candidate's ``{"backbone", "probe", "head"}``."""

Params = Mapping[str, Any]
"""One candidate's ``{"backbone", "probe", "head"}`` as the sweep passes it."""


def _graph_layers(backbone: Params) -> list[dict]:
    """The backbone's layers with 1-D conv kernels ``(3, c_in, c_out)`` lifted to 2-D."""

    def lift(kernel: Any) -> Any:
        return kernel[None] if np.ndim(kernel) == 3 else kernel

    return [{**layer, "kernel": lift(layer["kernel"])} for layer in backbone["layers"]]


def _conv_inputs(
    family: str, depth: int, input_shape: Sequence[int]
) -> tuple[tuple[int, int], ...] | None:
    """Spatial shape ``(H, W)`` entering each conv block (None for MLPs).

    Images ``(H, W, C)`` halve both sides per block (2-wide VALID max-pooling, so
    ``floor``); flat inputs ``(d,)`` are the ``(1, d)`` images of :func:`_graph_layers`
    and halve only ``d``.
    """
    if family == "mlp":
        return None
    image = len(input_shape) == 3
    h, w = (input_shape[0], input_shape[1]) if image else (1, input_shape[0])
    shapes = []
    for _ in range(depth):
        shapes.append((h, w))
        h, w = (h // 2 if image else 1), w // 2
    return tuple(shapes)


@jax.jit
def _l2(backbone: Params) -> jax.Array:
    return weight_l2_norm(backbone)


@functools.partial(jax.jit, static_argnums=1)
def _strength_summary(layers: list[dict], conv_inputs: tuple | None) -> jax.Array:
    """``[mean_l mean_i s_i^l, mean_l std_i s_i^l]`` over the node layers."""
    return strength_features(layers, conv_inputs).reshape(-1, 2).mean(axis=0)


@jax.jit
def _rolled_summary(layers: list[dict]) -> jax.Array:
    """Mean and std of weighted degree, then of eigenvector centrality, over all nodes."""
    blocks = rolled_blocks(layers)
    degree = jnp.concatenate(weighted_degree(blocks))
    centrality = jnp.concatenate(eigenvector_centrality(blocks))
    return jnp.stack([degree.mean(), degree.std(), centrality.mean(), centrality.std()])


@jax.jit
def _fractal_dims(backbone: Params) -> jax.Array:
    return fractal_features(backbone)[0::2]


@functools.partial(jax.jit, static_argnums=0)
def _features(family: str | Program, backbone: Params, x: jax.Array) -> jax.Array:
    return backbone_features(family, backbone, x)


def _relu_outputs(family: str, params: Params, x: jax.Array) -> list[jax.Array]:
    """Output of every ReLU layer of the model: each backbone block, each probe layer.

    For :func:`capjax.signals.zerocost.nwot`, which reads ``z > 0``: after a ReLU that is the
    sign of the pre-activation itself; after a conv block's max-pooling, a pooled unit
    is active when any unit of its window is.
    """
    layers = params["backbone"]["layers"]
    outs = [backbone_features(family, {"layers": layers[:k]}, x) for k in range(1, len(layers) + 1)]
    probe = params["probe"]
    outs += [apply_probe(probe[:k], outs[-1]) for k in range(1, len(probe) + 1)]
    return outs


@functools.partial(jax.jit, static_argnums=0)
def _zero_cost_f32(family: str, params: Params, x: jax.Array, y: jax.Array) -> dict:
    apply = functools.partial(model_logits, family)
    batch = (x, y)
    return {
        "zc_grad_norm": grad_norm(apply, params, batch),
        "zc_snip": snip(apply, params, batch),
        "zc_jacov": jacov(apply, params, batch),
        "zc_nwot": nwot(functools.partial(_relu_outputs, family), params, batch),
    }


@functools.partial(jax.jit, static_argnums=0)
def _synflow(family: str, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return synflow(functools.partial(model_logits, family), params, (x, y))


# ---------------------------------------------------------------------------------------
# Summaries: one computation per group of record fields


def _l2_norm(params: Params, ctx: SweepContext) -> tuple[float, ...]:
    return (float(_l2(params["backbone"])),)


def _spectral_alpha(params: Params, ctx: SweepContext) -> tuple[float, ...]:
    return (mean_alpha(params["backbone"]),)


def _strength(params: Params, ctx: SweepContext) -> tuple[float, ...]:
    layers = params["backbone"]["layers"]
    conv = _conv_inputs(ctx.candidate.family, len(layers), ctx.dataset.input_shape)
    return tuple(np.asarray(_strength_summary(_graph_layers(params["backbone"]), conv)).tolist())


def _rolled(params: Params, ctx: SweepContext) -> tuple[float, ...]:
    return tuple(np.asarray(_rolled_summary(_graph_layers(params["backbone"]))).tolist())


def _fractal(params: Params, ctx: SweepContext) -> tuple[float, ...]:
    dims = np.asarray(_fractal_dims(params["backbone"]))
    dims = dims[np.isfinite(dims)]
    return (float(dims.mean()) if dims.size else math.nan,)


def _transferability(params: Params, ctx: SweepContext) -> tuple[float, ...]:
    """Each of :data:`_TRANSFERABILITY_SCORES` of the backbone's features of the probe batch.

    One forward pass serves every score; a score undefined for the features (its checks
    raise :class:`~capjax.base.validation.CapjaxInputError`) is NaN on its own.
    """
    f = np.asarray(_features(ctx.candidate.net, params["backbone"], ctx.probe_x))
    values = []
    for score in _TRANSFERABILITY_SCORES.values():
        try:
            values.append(score(f, ctx.probe_y))
        except CapjaxInputError:
            values.append(math.nan)
    return tuple(values)


def _zero_cost(params: Params, ctx: SweepContext) -> tuple[float, ...]:
    family = ctx.candidate.family
    out = {k: float(v) for k, v in _zero_cost_f32(family, params, ctx.probe_x, ctx.probe_y).items()}
    # R of synflow is a product of the layers' absolute weight sums: float64 keeps it
    # finite for wide, deep or pretrained backbones (see capjax.signals.zerocost.synflow).
    with jax.enable_x64(True):
        out["zc_synflow"] = float(_synflow(family, params, ctx.probe_x, ctx.probe_y))
    return tuple(out[f] for f in ZERO_COST_FIELDS)


Summary = Callable[[Params, SweepContext], tuple[float, ...]]
"""``fn(params, ctx) -> values`` of a :class:`_Signals`' fields, in their order."""


@dataclasses.dataclass(frozen=True)
class _Signals:
    """Record fields computed together by one summary.

    Attributes:
      fields: the field names.
      summary: computes their values.
      initial_only: defined at initialisation only (zero-cost proxies): NaN after epoch 0.
    """

    fields: tuple[str, ...]
    summary: Summary
    initial_only: bool = False


_TRANSFERABILITY_SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = dict(
    zip(TRANSFERABILITY_FIELDS, (logme, h_score, transrate), strict=True)
)
"""Record field -> its transferability score of (features, labels)."""

_SIGNALS: tuple[_Signals, ...] = (
    _Signals(L2_FIELDS, _l2_norm),
    _Signals(SPECTRAL_FIELDS, _spectral_alpha),
    _Signals(STRENGTH_FIELDS, _strength),
    _Signals(ROLLED_FIELDS, _rolled),
    _Signals(FRACTAL_FIELDS, _fractal),
    _Signals(TRANSFERABILITY_FIELDS, _transferability),
    _Signals(ZERO_COST_FIELDS, _zero_cost, initial_only=True),
)


class _LastCall:
    """A summary's values remembered for the latest ``(params, ctx)`` it was called with.

    The sweep calls a candidate-epoch's record functions one after another with the same
    params and ctx objects, so the fields of one summary (e.g. the four rolled-graph
    statistics) share a single computation. The objects are held, not only their ids,
    so an id cannot be reused by a later candidate while remembered.
    """

    def __init__(self, group: _Signals, last_epoch: int | None):
        self.group = group
        self.last_epoch = 0 if group.initial_only else last_epoch
        self.key: tuple[Any, Any] | None = None
        self.value: dict[str, float] = {}

    def __call__(self, params: Params, ctx: SweepContext) -> dict[str, float]:
        if self.key is None or self.key[0] is not params or self.key[1] is not ctx:
            fields = self.group.fields
            values: Sequence[float] = (math.nan,) * len(fields)
            if self.last_epoch is None or ctx.epoch <= self.last_epoch:
                try:
                    values = self.group.summary(params, ctx)
                except CapjaxInputError:
                    # The signal is undefined for this candidate; NaN marks it failed
                    # for the predictors instead of stopping the whole sweep.
                    pass
            self.value = dict(zip(fields, values, strict=True))
            self.key = (params, ctx)
        return self.value


def record_fns(
    names: str | Sequence[str] | None = None, *, last_epoch: int | None = None
) -> dict[str, RecordFn]:
    """Record functions for :func:`capjax.training.run_sweep`, ``{field: fn(params, ctx)}``.

    Args:
      names: fields to record (one name or several) from :data:`SIGNAL_FIELDS`
        (default: all).
      last_epoch: compute the fields for epochs ``0..last_epoch`` only and record NaN
        after (default: every epoch). Predictors read records up to the budget only, so
        a benchmark whose largest budget is 20% of full training can skip the rest.
        Zero-cost proxies stop after epoch 0 regardless.

    Returns:
      One function per field, each returning a float (NaN where undefined). Fields that
      share a computation share it through a memo of the latest call, so asking for all
      four rolled-graph fields costs one eigenvector centrality per candidate-epoch.
      Every heavy part is jitted once per parameter shape.
    """
    if isinstance(names, str):
        names = (names,)
    names = SIGNAL_FIELDS if names is None else tuple(names)
    unknown = sorted(set(names) - set(SIGNAL_FIELDS), key=str)
    if unknown:
        raise CapjaxInputError(
            f"unknown record field(s) {unknown}; pass names from "
            f"capjax.records.fields.SIGNAL_FIELDS: {list(SIGNAL_FIELDS)}"
        )
    if last_epoch is not None and (
        isinstance(last_epoch, bool)
        or not isinstance(last_epoch, int | np.integer)
        or last_epoch < 0
    ):
        raise CapjaxInputError(
            f"last_epoch is {last_epoch!r}; pass None (every epoch) or an int >= 0, e.g. "
            "the largest budget the predictors will read"
        )
    out: dict[str, RecordFn] = {}
    for group in _SIGNALS:
        memo = _LastCall(group, last_epoch)
        for field in group.fields:
            if field in names:
                out[field] = lambda params, ctx, memo=memo, field=field: memo(params, ctx)[field]
    return out


RECORD_FNS: dict[str, RecordFn] = record_fns()
