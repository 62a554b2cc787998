"""Your own models as candidates: a mapping of names to backbones, or to :class:`Model` specs.

:func:`own_candidates` turns ``{name: backbone or Model}`` into checked
:class:`~capjax.training.spec.Candidate` objects of family ``"own"``. A backbone is what
:func:`capjax.training.backbones.as_backbone` takes: an ``nnx.Module``, a Linen
``(module, variables)`` pair, or a pure ``(apply_fn, params)`` pair. capjax puts the
frozen probe and a new head on top (docs/method.md §2.3) and fine-tunes the backbone.

Every candidate trains for the same full epochs; a :class:`Model` sets its own
optimizer (or learning rate) and batch size, defaults otherwise.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import optax

from capjax.base.validation import CapjaxInputError
from capjax.capacitance.probe import DEFAULT_WIDTHS
from capjax.data.dataset import Dataset
from capjax.training.backbones import Backbone, as_backbone, check_backbone
from capjax.training.spec import OWN, Candidate, check_candidates

DEFAULT_LR = 1e-3
DEFAULT_BATCH = 64
CHECK_BATCH = 4
"""Training examples each backbone is tried on before any training."""


@dataclasses.dataclass(frozen=True)
class Model:
    """A backbone with its own fine-tuning settings.

    Attributes:
      backbone: an ``nnx.Module``, a Linen ``(module, variables)`` pair or a pure
        ``(apply_fn, params)`` pair (features ``(batch, d)``).
      lr: AdamW's learning rate (default :data:`DEFAULT_LR`); not with ``optimizer``.
      optimizer: an optax optimizer instead of AdamW; not with ``lr``. Candidates
        sharing one optimizer *object* and program train in one vmapped group.
      batch_size: fine-tuning batch size (default :data:`DEFAULT_BATCH`).
      weight_decay: AdamW's decoupled weight decay (with ``lr`` only).
    """

    backbone: Any
    lr: float | None = None
    optimizer: optax.GradientTransformation | None = None
    batch_size: int | None = None
    weight_decay: float = 0.0


def _pairs(models: Any) -> list[tuple[str, Any]]:
    if isinstance(models, Mapping):
        return [(str(k), v) for k, v in models.items()]
    if isinstance(models, Iterable) and not isinstance(models, str | bytes):
        pairs = list(models)
        if all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            return pairs
    raise CapjaxInputError(
        f"candidates is a {type(models).__name__}; pass a mapping {{name: backbone}} (an nnx.Module, a Linen "
        "(module, variables) pair, an (apply_fn, params) pair, or capjax.Model(backbone, lr=..., batch_size=...))"
    )


def own_candidate(name: str, model: Any, dataset: Dataset, *, seed: int = 0,
                  probe_widths: tuple[int, ...] = DEFAULT_WIDTHS) -> Candidate:
    """One checked candidate of family ``"own"`` from a backbone or a :class:`Model`."""
    what = f"candidate {name!r}"
    spec = model if isinstance(model, Model) else Model(model)
    if spec.lr is not None and spec.optimizer is not None:
        raise CapjaxInputError(f"{what} gives both lr and optimizer; pass one (the optimizer holds its own rate)")
    if spec.optimizer is not None and spec.weight_decay:
        raise CapjaxInputError(f"{what} gives weight_decay with an optimizer; put the decay in the optimizer")
    backbone: Backbone = as_backbone(spec.backbone, what)
    d = check_backbone(backbone, dataset.x_train[:CHECK_BATCH], what)
    return Candidate(
        name=name, family=OWN, depth=1, width=d, lr=DEFAULT_LR if spec.lr is None else spec.lr,
        weight_decay=spec.weight_decay, batch_size=DEFAULT_BATCH if spec.batch_size is None else spec.batch_size,
        probe_widths=tuple(probe_widths), seed=seed, data=dataset.name, backbone=backbone,
        optimizer=spec.optimizer,
    )


def own_candidates(models: Any, dataset: Dataset, *, seed: int = 0,
                   probe_widths: tuple[int, ...] | None = None) -> list[Candidate]:
    """Checked candidates from ``{name: backbone or Model}`` (or ``[(name, ...), ...]``).

    Each backbone is run on :data:`CHECK_BATCH` training examples in both modes before
    anything trains, so a backbone that fails, returns other than ``(batch, d)``, or gives
    NaN is a one-line error naming it; repeated names are one too (:func:`check_candidates`),
    and a batch larger than the training split when the sweep starts. Candidates are seeded
    ``seed, seed + 1, ...`` in order (the head's initialisation, batch order, Dropout).
    """
    pairs = _pairs(models)
    widths = probe_widths or DEFAULT_WIDTHS
    out = [own_candidate(n, m, dataset, seed=seed + i, probe_widths=widths) for i, (n, m) in enumerate(pairs)]
    return check_candidates(out)


def is_own(candidates: Iterable[Candidate]) -> bool:
    """Whether any candidate's backbone is the user's."""
    return any(c.family == OWN for c in candidates)


def import_candidates(spec: str) -> Any:
    """What ``FUNCTION()`` returns in the Python file of ``spec = "PATH.py:FUNCTION"`` (``build`` by default).

    For ``capjax select --candidates``: the function returns your candidates, the
    mapping :func:`own_candidates` takes.
    """
    path, _, function = str(spec).rpartition(":") if ":" in str(spec) else (str(spec), "", "build")
    function = function or "build"
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise CapjaxInputError(f"--candidates {spec!r}: {path!r} is not a Python file; pass PATH.py:FUNCTION")
    module_spec = importlib.util.spec_from_file_location(f"capjax_candidates_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - the user's file: report its error in one line
        why = f"{type(err).__name__}: {err}"
        raise CapjaxInputError(f"--candidates {spec!r}: importing {path} failed ({why}); fix that file") from None
    build = getattr(module, function, None)
    if not callable(build):
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        raise CapjaxInputError(
            f"--candidates {spec!r}: {path} defines no function {function!r}; name one of {defined} after the colon"
        )
    return build()
