"""The fine-tuning model as pure functions over parameter pytrees (docs/method.md §2.3).

::

    {"backbone": {"layers": [{"kernel", "bias"}, ...]},
     "probe": [{"kernel", "bias"}, ...],          # frozen (capjax.freeze_probe)
     "head": {"kernel": (probe_widths[-1], K), "bias": (K,)}}

backbone -> probe -> head. The probe is the same instrument for every candidate: it is
drawn from the fixed key :data:`PROBE_SEED` (given the feature size and widths), not from
the candidate's seed, so that differences in ``beta_eff`` between candidates come from
their backbones and heads rather than from the probe's random draw. (The paper draws it
at random; :data:`PROBE_SEED` is that draw, made once.)

Backbones (:class:`~capjax.training.spec.Architecture`):

* ``mlp``: ``depth`` Dense+ReLU layers of ``width`` units on the flattened input;
  features are the last hidden layer, ``(batch, width)``.
* ``cnn``: ``depth`` blocks of 3-wide convolution (``width`` channels, SAME padding),
  ReLU and 2-wide max-pooling, then flatten. NHWC images ``(H, W, C)`` get 2-D
  convolutions; flat inputs ``(d,)`` (e.g. MNIST-1D's 40-long sequences) are read as
  one-channel sequences and get 1-D convolutions, so both families work on every dataset.

Kernels start He-normal times the candidate's ``init_scale``; biases start at zero. The
functions take the architecture (or only its family), never a whole candidate, so each
compiles once per shape.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from capjax.base.validation import CapjaxInputError
from capjax.capacitance.dynamics import stack_apply
from capjax.capacitance.probe import apply_probe, freeze_probe, init_probe
from capjax.data.batching import batch_indices
from capjax.training.backbones import Program
from capjax.training.spec import (
    BACKBONE_STREAM,
    HEAD_STREAM,
    OWN,
    Architecture,
    Candidate,
    candidate_key,
    check_candidates,
)

BACKBONE_STATE = "state"
"""Key of an own backbone's non-trainable state in ``params["backbone"]``, frozen in the optimizer."""

PROBE_SEED = 20240705
"""Key of the probe's random draw, shared by all candidates (see the module docstring)."""


def _spatial(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Spatial dims a CNN convolves over: ``(H, W)`` for images, ``(d,)`` for flat inputs."""
    return tuple(input_shape[:-1]) if len(input_shape) == 3 else tuple(input_shape)


def _channels(input_shape: Sequence[int]) -> int:
    return input_shape[-1] if len(input_shape) == 3 else 1


def init_backbone(
    key: jax.Array,
    arch: Architecture,
    input_shape: Sequence[int],
    *,
    init_scale: float | jax.Array = 1.0,
) -> dict:
    """Random backbone parameters ``{"layers": [{"kernel", "bias"}, ...]}``.

    Args:
      key: PRNG key.
      arch: the backbone's family, depth and width.
      input_shape: one example's shape, ``(d,)`` or NHWC ``(H, W, C)``.
      init_scale: multiplies the He-normal kernels; may be traced, so that one compiled
        initialiser vmaps over the candidates of a shape.

    MLP kernels are ``(d_in, width)``; CNN kernels ``(3, 3, c_in, width)`` for images or
    ``(3, c_in, width)`` for flat inputs. A CNN whose poolings would shrink a spatial
    dimension below 1 is rejected.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) not in (1, 3):
        raise CapjaxInputError(
            f"input_shape {input_shape}; backbones take flat (d,) inputs or NHWC (H, W, C) images"
        )
    if arch.family == "mlp":
        sizes = [math.prod(input_shape)] + [arch.width] * arch.depth
        shapes = [(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    else:
        spatial = _spatial(input_shape)
        if min(spatial) < 2**arch.depth:
            raise CapjaxInputError(
                f"inputs of spatial size {spatial} are too small for "
                f"{arch.depth} conv blocks (each halves them); use depth <= "
                f"{max(int(math.log2(min(spatial))), 1)} or the mlp family"
            )
        chans = [_channels(input_shape)] + [arch.width] * arch.depth
        window = (3,) * len(spatial)
        shapes = [(*window, a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)]
    kernels = _truncated_normal_kernels(key, shapes, gain=2.0)
    return {
        "layers": [{"kernel": init_scale * k, "bias": jnp.zeros((k.shape[-1],), jnp.float32)}
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


def backbone_features(family: str | Program, params: dict, x: jax.Array) -> jax.Array:
    """Backbone features ``(batch, d_feat)`` of inputs ``x`` ``(batch, *input_shape)``. Pure.

    ``family`` is a built-in family's name, or an own backbone's
    :class:`~capjax.training.backbones.Program` (evaluation mode).
    """
    if isinstance(family, Program):
        return family.features(params, x)
    if family == "mlp":
        return stack_apply(params["layers"], x.reshape(x.shape[0], -1))
    h = x if x.ndim == 4 else x.reshape(x.shape[0], -1, 1)
    for layer in params["layers"]:
        h = _conv_block(h, layer)
    return h.reshape(h.shape[0], -1)


def feature_dim(arch: Architecture, input_shape: Sequence[int]) -> int:
    """``d_feat``, the size of the features the backbone gives the probe."""
    params = jax.eval_shape(lambda: init_backbone(jax.random.key(0), arch, input_shape))
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return int(jax.eval_shape(lambda p, x: backbone_features(arch.family, p, x), params, x).shape[1])


def dense(key: jax.Array, d_in: int, d_out: int) -> dict:
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
    net: str | Architecture | Program,
    probe_widths: tuple[int, ...],
    backbone: dict,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    seed: int | jax.Array,
) -> dict:
    """The fine-tuning model ``{"backbone", "probe", "head"}`` around ``backbone``'s params.

    ``net`` applies the backbone: a family, an :class:`Architecture`, or a program
    (:func:`backbone_features`). The probe comes from
    :data:`PROBE_SEED` (the same for every candidate); the head, a Dense
    ``probe_widths[-1] -> num_classes``, from the candidate's ``seed``, which may be
    traced, so that this vmaps over candidates.
    """
    net = net.family if isinstance(net, Architecture) else net
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    d_feat = int(jax.eval_shape(lambda b, x: backbone_features(net, b, x), backbone, x).shape[1])
    return {
        "backbone": backbone,
        "probe": jax.tree.map(jnp.asarray, shared_probe(d_feat, tuple(probe_widths))),
        "head": dense(candidate_key(seed, HEAD_STREAM), probe_widths[-1], num_classes),
    }


def apply_head(head: dict, h: jax.Array) -> jax.Array:
    """The Dense head: logits ``(batch, K)`` of the probe's output ``h``."""
    return h @ head["kernel"] + head["bias"]


def model_logits(family: str | Program, params: dict, x: jax.Array) -> jax.Array:
    """Logits ``(batch, K)`` of the fine-tuning model (backbone -> probe -> head). Pure."""
    h = apply_probe(params["probe"], backbone_features(family, params["backbone"], x))
    return apply_head(params["head"], h)


def train_logits(net: str | Program, params: dict, x: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
    """Logits in training mode and the params with the backbone's updated state. Pure.

    Built-in backbones have no mode or state; an own backbone's BatchNorm statistics
    move and its Dropout draws from ``key`` (uint32 ``(2,)``).
    """
    if not isinstance(net, Program):
        return model_logits(net, params, x), params
    feats, backbone = net.train_features(params["backbone"], x, key)
    return apply_head(params["head"], apply_probe(params["probe"], feats)), {**params, "backbone": backbone}


def finetune_optimizer(
    lr: float | jax.Array, weight_decay: float | jax.Array,
    optimizer: optax.GradientTransformation | None = None,
) -> optax.GradientTransformation:
    """AdamW (or ``optimizer``) with the probe frozen (:func:`capjax.freeze_probe`), for fine-tuning.

    The learning rate and weight decay live in AdamW's *state*
    (``optax.inject_hyperparams``), so ``init`` under ``jax.vmap`` with per-candidate
    arrays gives each candidate its own values, and ``update`` of any instance (e.g.
    ``finetune_optimizer(0.0, 0.0)``) reads them from the state. A user's ``optimizer``
    carries its own hyperparameters. An own backbone's non-trainable ``state`` is
    frozen too: training-mode calls update it, never the optimizer.
    """
    if optimizer is None:
        optimizer = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=weight_decay)
    return freeze_probe(freeze_probe(optimizer), probe_key=BACKBONE_STATE)


def train_epoch(
    loss: Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any]],
    tx: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    x: jax.Array,
    y: jax.Array,
    idx: jax.Array,
    key: jax.Array,
) -> tuple[Any, Any, jax.Array]:
    """One epoch of mini-batch training, a ``jax.lax.scan`` over the rows of ``idx``.

    Args:
      loss: ``loss(params, x_batch, y_batch, key) -> (scalar, params')``, where
        ``params'`` carries state the forward pass updated (BatchNorm statistics; the
        optimizer leaves it alone) and ``key`` is the step's uint32 ``(2,)`` key.
      tx: the optimizer.
      x, y: the whole training split, ``(n, ...)`` and ``(n,)``.
      idx: ``(n_batches, batch_size)`` example indices (:func:`capjax.data.batch_indices`).
      key: the epoch's uint32 ``(2,)`` key; step ``t`` gets it folded with ``t``.

    Returns:
      ``(params, opt_state, losses)`` with the loss of every step, ``(n_batches,)``.
    """

    def step(carry, inputs):
        p, s = carry
        t, rows = inputs
        k = jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(key), t))
        # integer leaves (an own backbone's random-stream counters and keys) get zero gradients
        (value, moved), grads = jax.value_and_grad(loss, has_aux=True, allow_int=True)(p, x[rows], y[rows], k)
        grads = jax.tree.map(lambda g, a: jnp.zeros_like(a) if g.dtype == jax.dtypes.float0 else g, grads, p)
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(moved, updates), s), value

    steps = jnp.arange(idx.shape[0], dtype=jnp.uint32)
    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (steps, idx))
    return params, opt_state, losses


# ---------------------------------------------------------------------------------------
# Pretraining, cached on disk


@functools.partial(jax.jit, static_argnums=(2, 3))
def _random_backbones(seeds: jax.Array, scales: jax.Array, arch: Architecture, input_shape: tuple):
    def one(seed, scale):
        key = candidate_key(seed, BACKBONE_STREAM)
        return init_backbone(key, arch, input_shape, init_scale=scale)

    return jax.vmap(one)(seeds, scales)


def random_backbones(
    candidates: Iterable[Candidate], input_shape: Sequence[int]
) -> dict[str, dict]:
    """Each candidate's randomly initialised backbone (its seed's backbone stream), NumPy.

    Candidates of one architecture are initialised by one compiled, vmapped function.
    An own backbone starts from the user's parameters instead.
    """
    candidates = check_candidates(candidates)
    shape = tuple(int(s) for s in input_shape)
    by_arch: dict[Architecture, list[Candidate]] = {}
    out = {}
    for c in candidates:
        if c.family == OWN:
            out[c.name] = c.backbone.tree()
        else:
            by_arch.setdefault(c.arch, []).append(c)
    for arch, members in by_arch.items():
        # Shape errors name a real candidate, not only the architecture compiled for.
        try:
            jax.eval_shape(lambda arch=arch: init_backbone(jax.random.key(0), arch, shape))
        except CapjaxInputError as err:
            raise CapjaxInputError(f"candidate {members[0].name}: {err}") from None
        stacked = jax.device_get(_random_backbones(
            np.array([c.seed for c in members], np.int32),
            np.array([c.init_scale for c in members], np.float32), arch, shape,
        ))
        for i, c in enumerate(members):
            out[c.name] = jax.tree.map(lambda leaf, i=i: leaf[i], stacked)
    return out


def _epoch_key(seed: jax.Array, stream: int, epoch: jax.Array) -> jax.Array:
    """A candidate's key of ``stream`` at ``epoch``: a function of the three only (resumable)."""
    return jax.random.fold_in(candidate_key(seed, stream), epoch)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def epoch_batches(
    seeds: jax.Array, epoch: int | jax.Array, num_examples: int, batch_size: int, stream: int
) -> jax.Array:
    """Every candidate's batch order for one epoch: ``(len(seeds), n_batches, batch_size)``.

    Row ``i`` is :func:`capjax.data.batch_indices` keyed by candidate ``seeds[i]``'s random
    stream ``stream`` folded with its epoch (``epoch``, or ``epoch[i]`` when candidates stand
    at different epochs): a function of the seed and the epoch only, so an interrupted run
    resumes with the same batches.
    """

    def one(seed, e):
        return batch_indices(_epoch_key(seed, stream, e), num_examples, batch_size)

    return jax.vmap(one)(seeds, jnp.broadcast_to(jnp.asarray(epoch, jnp.int32), jnp.shape(seeds)))


@functools.partial(jax.jit, static_argnums=2)
def epoch_keys(seeds: jax.Array, epoch: jax.Array, stream: int) -> jax.Array:
    """Every candidate's uint32 ``(2,)`` key for one epoch's random draws (e.g. Dropout): ``(len(seeds), 2)``.

    Like :func:`epoch_batches`, a function of the seed, the stream and the epoch only.
    """

    def one(seed, e):
        return jax.random.key_data(_epoch_key(seed, stream, e))

    return jax.vmap(one)(seeds, jnp.broadcast_to(jnp.asarray(epoch, jnp.int32), jnp.shape(seeds)))
