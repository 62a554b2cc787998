"""What a candidate is: a frozen, JSON-serialisable description of one model to fine-tune.

A :class:`Candidate` names a backbone (:class:`Architecture`: family, depth, width), its
pretraining (source and budget), its fine-tuning hyperparameters, the probe's widths and a
seed. Compiled functions are keyed on what they depend on, never on a whole candidate:
the model on its :class:`Architecture`, a vmapped group on its :class:`GroupKey`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from capjax.base.validation import CapjaxInputError
from capjax.capacitance.probe import DEFAULT_WIDTHS
from capjax.training.backbones import Backbone, Program

FAMILIES = ("mlp", "cnn")
"""The built-in backbone families (:mod:`capjax.training.model`)."""
OWN = "own"
"""The family of a candidate whose backbone is the user's (:mod:`capjax.training.backbones`)."""
SOURCES = ("none", "half", "flip", "randlabel")
"""Pretraining sources, all carved from the target's training split:

* ``none``: no pretraining (random initialisation; budget 0);
* ``half``: the examples of the first ``ceil(K / 2)`` classes;
* ``flip``: every example with its input reversed along each spatial axis (images
  rotated by 180 degrees, sequences reversed), same labels;
* ``randlabel``: every example with a random label (fixed draw), a negative-transfer source.
"""


class Architecture(NamedTuple):
    """A backbone's shape: what its compiled functions depend on (see :mod:`capjax.training.model`).

    Attributes:
      family: ``"mlp"`` or ``"cnn"``.
      depth: hidden layers (mlp) or conv blocks (cnn), >= 1.
      width: units per hidden layer (mlp) or channels per conv (cnn).
    """

    family: str
    depth: int
    width: int


class GroupKey(NamedTuple):
    """Candidates with equal keys have identical programs, parameter shapes and batch size.

    They train together in one vmapped step; ``lr``, ``weight_decay``, ``init_scale``,
    ``seed``, source and budget may differ within a group. Own backbones also need an
    equal :class:`~capjax.training.backbones.Program` and the same optimizer object
    (None: AdamW, whose learning rate and weight decay live in its state).
    """

    arch: Architecture
    probe_widths: tuple[int, ...]
    batch_size: int
    program: Program | None = None
    optimizer: optax.GradientTransformation | None = None

    @property
    def net(self) -> str | Program:
        """What applies the backbone: a built-in family's name, or an own backbone's program."""
        return self.arch.family if self.program is None else self.program


BACKBONE_STREAM, HEAD_STREAM, FINETUNE_STREAM, PRETRAIN_STREAM, DROPOUT_STREAM = range(5)
"""A candidate's independent random streams (see :func:`candidate_key`), all from its seed."""


def candidate_key(seed: jax.Array | int, stream: int) -> jax.Array:
    """The PRNG key of one of a candidate's random streams; traceable in ``seed``."""
    return jax.random.fold_in(jax.random.key(seed), stream)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise CapjaxInputError(f"{name} is {value!r}; pass an int >= {minimum}")
    return int(value)


def positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
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
      backbone: for family ``"own"`` only, the user's :class:`~capjax.training.backbones.Backbone`
        (its parameters are the starting point; depth is 1 and width its feature size).
      optimizer: an optax optimizer to fine-tune with instead of AdamW(``lr``,
        ``weight_decay``); the probe stays frozen either way.
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
    backbone: Backbone | None = None
    optimizer: optax.GradientTransformation | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name or "\\" in self.name:
            raise CapjaxInputError(
                f"candidate name {self.name!r} is not a usable file name; "
                "pass a non-empty name without slashes"
            )
        if self.family not in (*FAMILIES, OWN):
            raise CapjaxInputError(
                f"candidate {self.name}: family {self.family!r} is unknown; use one of {FAMILIES}, "
                "or pass your own backbone to capjax.select"
            )
        if (self.family == OWN) != isinstance(self.backbone, Backbone):
            raise CapjaxInputError(
                f"candidate {self.name}: family {self.family!r} with backbone {type(self.backbone).__name__}; "
                "a Backbone goes with family 'own' only (capjax.select builds them from your models)"
            )
        if self.family == OWN and self.source != "none":
            raise CapjaxInputError(
                f"candidate {self.name}: source {self.source!r} for your own backbone; its parameters are "
                "its pretraining: use source 'none'"
            )
        if self.optimizer is not None and not isinstance(self.optimizer, optax.GradientTransformation):
            raise CapjaxInputError(
                f"candidate {self.name}: optimizer is a {type(self.optimizer).__name__}; pass an optax "
                "GradientTransformation (e.g. optax.adam(1e-3)) or a learning rate"
            )
        if self.source not in SOURCES:
            raise CapjaxInputError(
                f"candidate {self.name}: source {self.source!r} is unknown; use one of {SOURCES}"
            )
        set_ = lambda field, v: object.__setattr__(self, field, v)  # noqa: E731
        for field in ("depth", "width", "batch_size"):
            set_(field, positive_int(f"candidate {self.name}: {field}", getattr(self, field)))
        set_("pretrain_epochs", positive_int(
            f"candidate {self.name}: pretrain_epochs", self.pretrain_epochs, minimum=0))
        set_("seed", positive_int(f"candidate {self.name}: seed", self.seed, minimum=0))
        if (self.source == "none") != (self.pretrain_epochs == 0):
            raise CapjaxInputError(
                f"candidate {self.name}: source {self.source!r} with pretrain_epochs "
                f"{self.pretrain_epochs}; use source 'none' exactly when pretrain_epochs is 0"
            )
        set_("lr", positive_float(f"candidate {self.name}: lr", self.lr))
        set_("init_scale", positive_float(f"candidate {self.name}: init_scale", self.init_scale))
        set_("weight_decay", positive_float(
            f"candidate {self.name}: weight_decay", self.weight_decay, allow_zero=True))
        widths = self.probe_widths
        if isinstance(widths, str | int) or not isinstance(widths, Sequence) or not widths:
            raise CapjaxInputError(
                f"candidate {self.name}: probe_widths is {widths!r}; pass a non-empty "
                "sequence of layer widths, e.g. (64, 32)"
            )
        set_("probe_widths", tuple(
            positive_int(f"candidate {self.name}: probe width", w) for w in widths))

    @property
    def arch(self) -> Architecture:
        """The backbone's :class:`Architecture`."""
        return Architecture(self.family, self.depth, self.width)

    @property
    def group_key(self) -> GroupKey:
        """The :class:`GroupKey` of the vmapped group this candidate trains in."""
        program = None if self.backbone is None else self.backbone.program
        return GroupKey(self.arch, self.probe_widths, self.batch_size, program, self.optimizer)

    @property
    def net(self) -> str | Program:
        """What applies the backbone (:attr:`GroupKey.net`)."""
        return self.group_key.net

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` inverts it for built-in families.

        An own backbone is given by its fingerprint, an optimizer by the fingerprint of
        its first update (:func:`optimizer_fingerprint`): enough to tell whether a
        sweep folder was run with the same ones.
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["probe_widths"] = list(self.probe_widths)
        out["backbone"] = None if self.backbone is None else self.backbone.fingerprint
        out["optimizer"] = None if self.optimizer is None else optimizer_fingerprint(self.optimizer)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        """Rebuild a candidate from :meth:`to_dict`'s output (e.g. read back from JSON)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if d.get("backbone") is not None or d.get("optimizer") is not None:
            raise CapjaxInputError(
                f"candidate {d.get('name')!r} holds your own backbone or optimizer, which JSON cannot carry; "
                "pass the candidates again from Python"
            )
        unknown = set(d) - fields
        if unknown:
            raise CapjaxInputError(
                f"candidate dict has unknown field(s) {sorted(unknown)}; known: {sorted(fields)}"
            )
        return cls(**d)


def optimizer_fingerprint(tx: optax.GradientTransformation) -> str:
    """A short hash of ``tx``'s first two updates of a fixed gradient on a fixed 3-vector.

    It tells optimizers apart by what they do (kind, learning rate, schedule start), not
    by object identity, so a rerun that builds the same optimizer again matches.
    """
    params = {"w": np.array([0.5, -1.0, 2.0], np.float32)}
    grads = {"w": np.array([0.1, -0.2, 0.3], np.float32)}
    state = tx.init(params)
    out = []
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
        out.append(np.asarray(updates["w"], np.float32))
    return hashlib.blake2b(np.concatenate(out).round(7).tobytes(), digest_size=8).hexdigest()


def check_candidates(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Return ``candidates`` as a list after checking they are Candidates with unique names."""
    candidates = list(candidates)
    if not candidates:
        raise CapjaxInputError("no candidates given; pass at least one Candidate")
    for c in candidates:
        if not isinstance(c, Candidate):
            raise CapjaxInputError(
                f"{c!r} is not a Candidate; build candidates with capjax.training.make_zoo (or Candidate(...))"
            )
    names = [c.name for c in candidates]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CapjaxInputError(
            f"candidate names {dupes} repeat; give every candidate a unique name"
        )
    return candidates
