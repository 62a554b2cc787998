"""Every early signal other than beta_eff and the learning curve: records and predictors.

SPEC sections 3 and 4 list the other views of training that capjax holds beta_eff
against. This module turns each into

1. a **record function** for :func:`capjax.sweep.run_sweep` (``record_fns=``): a scalar
   per candidate and epoch, computed from that candidate's parameters, and
2. a **predictor** in :data:`capjax.predictors.PREDICTORS` (registered on import), reading
   those records up to the budget.

Record fields (all from the candidate's *backbone* unless said otherwise; see
:data:`RECORD_FIELDS`):

* ``l2_norm``: ``sqrt(sum w^2)`` over the backbone's kernels and biases
  (:func:`capjax.topology.weight_l2_norm`; Tan et al.'s baseline).
* ``spectral_alpha``: mean power-law exponent of the kernels' eigenvalue tails
  (:func:`capjax.spectral.mean_alpha`); NaN when no kernel has 10 eigenvalues (e.g. conv
  kernels with fewer than 10 output channels).
* ``strength``, ``fluctuation``: La Malfa's node strength and layer fluctuation
  ``std_i(s_i^l)`` (:func:`capjax.strength.node_strengths`), each averaged over the
  backbone's node layers, so that candidates of any depth get comparable scalars.
* ``rolled_degree_mean``, ``rolled_degree_std``, ``rolled_centrality_mean``,
  ``rolled_centrality_std``: mean and std of the weighted degree and of the eigenvector
  centrality, pooled over every node of the backbone's rolled graph (Vahedian et al.;
  :mod:`capjax.rolled`).
* ``fractal``: mean box-counting dimension of the backbone's kernel images
  (:func:`capjax.fractal.fractal_features`; kernels with a side under 4 pixels are
  skipped); NaN when none qualifies.
* ``logme``, ``hscore``, ``transrate``: transferability (:mod:`capjax.transferability`)
  of the backbone's features (:func:`capjax.zoo.backbone_features`) of the fixed probe
  batch.
* ``zc_grad_norm``, ``zc_snip``, ``zc_synflow``, ``zc_jacov``, ``zc_nwot``: zero-cost
  proxies (:mod:`capjax.zerocost`) of the whole model (backbone, frozen probe and head;
  every parameter counts) on the probe batch. They are defined at initialisation, so
  they are computed at epoch 0 only and recorded NaN afterwards.

Conv backbones on flat inputs use 1-D kernels ``(3, c_in, c_out)``; the graph views read
them as 2-D kernels ``(1, 3, c_in, c_out)`` over a ``(1, d)`` image, which is the same
convolution. The max-pooling after every conv block links nothing, so in La Malfa's graph
each pooling junction is two node layers (see :func:`capjax.strength.node_strengths`).

A signal that is undefined for a candidate (its checks raise
:class:`~capjax.validation.CapjaxInputError`) is recorded NaN rather than stopping the
sweep; the predictors then mark that candidate failed with a reason.

Predictors (higher score = predicted better):

* one per scalar signal (:data:`SCALAR_SIGNALS`), the signal at the budget epoch (epoch 0
  for zero-cost proxies) times a direction chosen by :func:`signal_direction`: the sign
  of Kendall's tau against the final accuracy of the *reference* candidates when at least
  :data:`MIN_DIRECTION_REFERENCES` have both, else the literature's direction;
* ``ph_dim``: the persistent-homology dimension of the weight trajectory over epochs
  0..budget, from the sweep's snapshots, directed the same way;
* ``vahedian`` and ``la_malfa``: a random-forest regressor of final accuracy on a
  candidate's per-epoch graph features over epochs 1..budget, fitted on the reference
  candidates (:func:`supervised_forecast`).
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
from scipy.stats import kendalltau
from sklearn.ensemble import RandomForestRegressor

from capjax.fractal import fractal_features
from capjax.predictors import Forecast, Task, _from_scores, _with_reasons, register
from capjax.probe import apply_probe
from capjax.rolled import eigenvector_centrality, rolled_blocks, weighted_degree
from capjax.spectral import mean_alpha
from capjax.strength import strength_features
from capjax.sweep import RecordFn, SweepContext, load_snapshots
from capjax.topology import ph_dimension, subset_sizes, weight_l2_norm
from capjax.transferability import h_score, logme, transrate
from capjax.validation import CapjaxInputError
from capjax.zerocost import grad_norm, jacov, nwot, snip, synflow
from capjax.zoo import Candidate, backbone_features, model_logits

Params = Mapping[str, Any]
"""One candidate's ``{"backbone", "probe", "head"}`` as the sweep passes it."""

# ---------------------------------------------------------------------------------------
# The backbone as the graph views read it


def _arch(family: str) -> Candidate:
    """A stand-in candidate for the model functions, which read only the family.

    Keying compiled functions on the family (shapes come from the parameters) compiles
    once per architecture, not once per candidate.
    """
    return Candidate("signals", family, 1, 1)


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
def _features(family: str, backbone: Params, x: jax.Array) -> jax.Array:
    return backbone_features(_arch(family), backbone, x)


def _relu_outputs(family: str, params: Params, x: jax.Array) -> list[jax.Array]:
    """Output of every ReLU layer of the model: each backbone block, each probe layer.

    For :func:`capjax.zerocost.nwot`, which reads ``z > 0``: after a ReLU that is the
    sign of the pre-activation itself; after a conv block's max-pooling, a pooled unit
    is active when any unit of its window is.
    """
    arch = _arch(family)
    layers = params["backbone"]["layers"]
    outs = [backbone_features(arch, {"layers": layers[:k]}, x) for k in range(1, len(layers) + 1)]
    probe = params["probe"]
    outs += [apply_probe(probe[:k], outs[-1]) for k in range(1, len(probe) + 1)]
    return outs


@functools.partial(jax.jit, static_argnums=0)
def _zero_cost_f32(family: str, params: Params, x: jax.Array, y: jax.Array) -> dict:
    apply = functools.partial(model_logits, _arch(family))
    batch = (x, y)
    return {
        "zc_grad_norm": grad_norm(apply, params, batch),
        "zc_snip": snip(apply, params, batch),
        "zc_jacov": jacov(apply, params, batch),
        "zc_nwot": nwot(functools.partial(_relu_outputs, family), params, batch),
    }


@functools.partial(jax.jit, static_argnums=0)
def _synflow(family: str, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return synflow(functools.partial(model_logits, _arch(family)), params, (x, y))


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
    raise :class:`~capjax.validation.CapjaxInputError`) is NaN on its own.
    """
    f = np.asarray(_features(ctx.candidate.family, params["backbone"], ctx.probe_x))
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
    # finite for wide, deep or pretrained backbones (see capjax.zerocost.synflow).
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


ROLLED_FIELDS = (
    "rolled_degree_mean",
    "rolled_degree_std",
    "rolled_centrality_mean",
    "rolled_centrality_std",
)
STRENGTH_FIELDS = ("strength", "fluctuation")
_TRANSFERABILITY_SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "logme": logme,
    "hscore": h_score,
    "transrate": transrate,
}
"""Record field -> its transferability score of (features, labels)."""
ZERO_COST_FIELDS = ("zc_grad_norm", "zc_snip", "zc_synflow", "zc_jacov", "zc_nwot")

_SIGNALS: tuple[_Signals, ...] = (
    _Signals(("l2_norm",), _l2_norm),
    _Signals(("spectral_alpha",), _spectral_alpha),
    _Signals(STRENGTH_FIELDS, _strength),
    _Signals(ROLLED_FIELDS, _rolled),
    _Signals(("fractal",), _fractal),
    _Signals(tuple(_TRANSFERABILITY_SCORES), _transferability),
    _Signals(ZERO_COST_FIELDS, _zero_cost, initial_only=True),
)

RECORD_FIELDS: tuple[str, ...] = tuple(f for s in _SIGNALS for f in s.fields)
"""Every field :func:`record_fns` can record, in a fixed order (see the module docstring)."""


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
    """Record functions for :func:`capjax.sweep.run_sweep`, ``{field: fn(params, ctx)}``.

    Args:
      names: fields to record (one name or several) from :data:`RECORD_FIELDS`
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
    names = RECORD_FIELDS if names is None else tuple(names)
    unknown = sorted(set(names) - set(RECORD_FIELDS), key=str)
    if unknown:
        raise CapjaxInputError(
            f"unknown record field(s) {unknown}; pass names from "
            f"capjax.signals.RECORD_FIELDS: {list(RECORD_FIELDS)}"
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
"""Every record function, ``{field: fn(params, ctx) -> float}``; see :func:`record_fns`."""


# ---------------------------------------------------------------------------------------
# Direction of a scalar signal

MIN_DIRECTION_REFERENCES = 3
"""Reference candidates (finite signal and truth) needed to learn a signal's direction."""


def _reference(task: Task) -> np.ndarray:
    """``(C,)`` reference truth, NaN where unknown; checks its shape."""
    n = len(task.sweep.names)
    if task.reference is None:
        return np.full(n, np.nan)
    ref = np.asarray(task.reference, dtype=float)
    if ref.shape != (n,):
        raise CapjaxInputError(
            f"task.reference has shape {ref.shape} for {n} candidates; pass one final "
            "accuracy per candidate in the sweep's order (NaN for non-reference ones)"
        )
    return ref


def signal_direction(
    values: np.ndarray, reference: np.ndarray, higher_is_better: bool
) -> tuple[float, str]:
    """Whether higher ``values`` predict higher final accuracy: ``(+1 or -1, how decided)``.

    With at least :data:`MIN_DIRECTION_REFERENCES` candidates whose value and reference
    truth are both finite, the sign of Kendall's tau between them on those candidates
    only; otherwise (or when tau is 0 or undefined, e.g. a constant signal) the
    literature's direction ``higher_is_better``.

    Args:
      values: ``(C,)`` the signal per candidate.
      reference: ``(C,)`` true final accuracy of the reference candidates, NaN elsewhere.
      higher_is_better: the literature's direction.
    """
    ok = np.isfinite(values) & np.isfinite(reference)
    if ok.sum() >= MIN_DIRECTION_REFERENCES:
        tau = kendalltau(values[ok], reference[ok]).statistic
        if np.isfinite(tau) and tau != 0:
            return float(np.sign(tau)), f"Kendall tau {tau:+.2f} on {ok.sum()} reference candidates"
    return (1.0 if higher_is_better else -1.0), "literature"


def _directed(
    task: Task,
    values: np.ndarray,
    higher_is_better: bool,
    why: str,
    reasons: Mapping[str, str] | None = None,
) -> Forecast:
    """Score = direction x value; NaN values get ``reasons[name]`` or ``why``."""
    sign, _ = signal_direction(values, _reference(task), higher_is_better)
    return _with_reasons(task, _from_scores(task, sign * values, why), reasons or {})


# ---------------------------------------------------------------------------------------
# Scalar-signal predictors


@dataclasses.dataclass(frozen=True)
class ScalarSignal:
    """A recorded scalar read as a predictor.

    Attributes:
      field: the record field.
      higher_is_better: the literature's direction, used without enough references.
      source: where that direction comes from.
      at_init: read at epoch 0 (zero-cost proxies) instead of at the budget epoch.
    """

    field: str
    higher_is_better: bool
    source: str
    at_init: bool = False


_NO_DIRECTION = "no rank rule is given; higher is taken as better until references exist"
_ZERO_COST = "zero-cost proxies score higher for better architectures (Abdelfattah et al. 2021)"

SCALAR_SIGNALS: dict[str, ScalarSignal] = {
    "l2_norm": ScalarSignal(
        "l2_norm",
        False,
        "norm-based capacity (Neyshabur et al. 2015): a smaller norm bounds a smaller "
        "generalisation gap; Tan et al. (arXiv 2406.02234) find it beats PH dimensions",
    ),
    "spectral_alpha": ScalarSignal(
        "spectral_alpha",
        False,
        "heavier tails (smaller alpha) go with better-trained layers (Martin & Mahoney 2021)",
    ),
    "strength": ScalarSignal("strength", True, "La Malfa et al.: " + _NO_DIRECTION),
    "fluctuation": ScalarSignal("fluctuation", True, "La Malfa et al.: " + _NO_DIRECTION),
    "rolled_degree": ScalarSignal("rolled_degree_mean", True, "Vahedian et al.: " + _NO_DIRECTION),
    "fractal": ScalarSignal("fractal", True, "Moharil et al.: " + _NO_DIRECTION),
    "logme": ScalarSignal("logme", True, "higher evidence = more transferable (You et al. 2021)"),
    "hscore": ScalarSignal("hscore", True, "higher = more transferable (Bao et al. 2019)"),
    "transrate": ScalarSignal("transrate", True, "higher = more transferable (Huang et al. 2022)"),
    **{f: ScalarSignal(f, True, _ZERO_COST, at_init=True) for f in ZERO_COST_FIELDS},
}
"""Predictor name -> the scalar signal it ranks by (one registered predictor each)."""


def scalar_forecast(task: Task, signal: ScalarSignal) -> Forecast:
    """Rank candidates by ``signal`` at the budget epoch (epoch 0 if ``at_init``), directed.

    The direction is :func:`signal_direction` on the reference candidates. Candidates
    without a finite value are NaN with the reason.
    """
    epoch = 0 if signal.at_init else task.budget
    values = task.sweep.initial(signal.field) if signal.at_init else task.early(signal.field)[:, -1]
    why = (
        f"no finite {signal.field} at epoch {epoch} (record it with "
        f"capjax.signals.record_fns(['{signal.field}']))"
    )
    return _directed(task, values, signal.higher_is_better, why)


for _name, _signal in SCALAR_SIGNALS.items():
    register(_name)(functools.partial(scalar_forecast, signal=_signal))


# ---------------------------------------------------------------------------------------
# Persistent-homology dimension of the weight trajectory

MIN_PH_ITERATES = 5
"""Snapshots (epochs 0..budget, so budget >= 4) below which ``ph_dim`` is not estimated.

The dimension is a log-log slope of MST energy over subset sizes; with fewer iterates it
rests on two or three sizes of two or three points.
"""


def trajectory_ph_dim(task: Task, name: str) -> tuple[float, str | None]:
    """PH_0 dimension of one candidate's snapshots over epochs 0..budget; ``(value, reason)``.

    Birdal et al. (2021) via :func:`capjax.topology.ph_dimension` with ``alpha = 1``, the
    subset sizes of :func:`capjax.topology.subset_sizes` from 2 up, and random subsets keyed by ``task.seed`` (the same
    draws for every candidate). The points are the flattened ``{"backbone", "head"}``
    parameters saved after each epoch (the probe is frozen). Birdal et al. read late
    iterates; here the trajectory is the early one the budget allows.
    """
    try:
        epochs, flat = load_snapshots(task.sweep.out_dir, name)
    except CapjaxInputError as err:
        return math.nan, str(err)
    points = flat[epochs <= task.budget]
    if len(points) < MIN_PH_ITERATES:
        return math.nan, (
            f"{len(points)} snapshot(s) in epochs 0..{task.budget}; the PH dimension needs "
            f">= {MIN_PH_ITERATES} (a budget of >= {MIN_PH_ITERATES - 1} epochs)"
        )
    try:
        value = float(ph_dimension(points, jax.random.key(task.seed), sizes=subset_sizes(len(points), min_size=2)))
    except CapjaxInputError as err:
        return math.nan, str(err)
    if not (math.isfinite(value) and value > 0):
        # alpha / (1 - m) with m >= 1: the MST energy grew at least linearly in n, as for
        # iterates spread evenly in more dimensions than so few points can resolve.
        return math.nan, (
            "the MST energy grew at least linearly with the number of iterates (slope >= 1), "
            "so the PH dimension is unbounded; a longer budget gives more iterates"
        )
    return value, None


@register("ph_dim")
def ph_dim(task: Task) -> Forecast:
    """Persistent-homology dimension of the weight trajectory (SPEC 3; Tan et al.'s critique).

    Literature direction: a lower dimension bounds a smaller generalisation gap (Birdal
    et al. 2021), so lower = better without references.
    """
    pairs = [trajectory_ph_dim(task, name) for name in task.sweep.names]
    values = np.array([v for v, _ in pairs])
    reasons = {n: r for n, (_, r) in zip(task.sweep.names, pairs, strict=True) if r}
    return _directed(task, values, False, "no PH dimension", reasons)


# ---------------------------------------------------------------------------------------
# Supervised predictors on per-epoch graph features

MIN_SUPERVISED_REFERENCES = 5
"""Reference candidates with finite truth and features needed to fit a regressor."""

N_TREES = 200


def supervised_forecast(task: Task, fields: Sequence[str], what: str) -> Forecast:
    """Regress final accuracy on per-epoch records over epochs 1..budget (SPEC 3).

    Each candidate's feature vector is ``[field_1(1..T), field_2(1..T), ...]`` with
    ``T = task.budget``, read from the sweep's records (no snapshots needed). A
    ``RandomForestRegressor`` (:data:`N_TREES` trees, ``random_state=task.seed``; chosen
    because it needs no feature scaling and copes with few, heterogeneous candidates) is
    fitted on the reference candidates and predicts every candidate with finite
    features; score and ``mean`` are the prediction.

    Args:
      task: the task; its ``reference`` needs :data:`MIN_SUPERVISED_REFERENCES`
        candidates with finite truth and features, else every candidate is NaN.
      fields: the record fields.
      what: the predictor's name, for the reasons.
    """
    truth = _reference(task)
    x = np.concatenate([task.early(f) for f in fields], axis=1)
    usable = np.isfinite(x).all(axis=1)
    train = usable & np.isfinite(truth)
    pred = np.full(len(truth), np.nan)
    if train.sum() < MIN_SUPERVISED_REFERENCES:
        why = (
            f"{what} is fitted on reference candidates and needs >= "
            f"{MIN_SUPERVISED_REFERENCES} with final accuracy and complete features; "
            f"{train.sum()} given (pass Task.reference)"
        )
        return _from_scores(task, pred, why)
    model = RandomForestRegressor(n_estimators=N_TREES, random_state=task.seed, n_jobs=1)
    model.fit(x[train], truth[train])
    pred[usable] = model.predict(x[usable])
    why = f"missing {', '.join(fields)} in epochs 1..{task.budget}"
    return _from_scores(task, pred, why, mean=pred)


@register("vahedian")
def vahedian(task: Task) -> Forecast:
    """Vahedian et al.: rolled-graph degree and centrality summaries over epochs 1..T.

    Their per-node features are summarised here per graph (mean and std over nodes) so
    that candidates of any width and depth share one regressor.
    """
    return supervised_forecast(task, ROLLED_FIELDS, "vahedian")


@register("la_malfa")
def la_malfa(task: Task) -> Forecast:
    """La Malfa et al.'s strength and fluctuation over epochs 1..T into a regressor.

    They compare populations of networks (KDE, symmetrised KL) rather than predict one
    network's accuracy; capjax feeds the same features to the regressor of
    :func:`supervised_forecast`.
    """
    return supervised_forecast(task, STRENGTH_FIELDS, "la_malfa")
