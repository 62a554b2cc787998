"""The :class:`Dataset` container: train / validation / test splits as read-only arrays.

Every split is checked once on construction (shapes, label range, finiteness), so the
code that trains on a dataset never re-validates it. :func:`holdout` carves a stratified
split, :func:`scaled` maps stored inputs to float32; both are shared by every source.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError, check_finite

SPLITS = ("train", "val", "test")
"""The three splits of every :class:`Dataset`, in field order."""


def frozen(a: np.ndarray) -> np.ndarray:
    # A read-only view, so the frozen dataclass (and cached sources) cannot be mutated in
    # place while the caller's own array stays writeable.
    view = a.view()
    view.flags.writeable = False
    return view


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification dataset split into train / validation / test.

    Attributes:
      x_train, x_val, x_test: float32 inputs of shape ``(n, *input_shape)``: either flat
        features ``(n, d)`` (e.g. MNIST-1D sequences, ``d = 40``) or NHWC images
        ``(n, H, W, C)`` with pixel values in ``[0, 1]``.
      y_train, y_val, y_test: int32 class indices of shape ``(n,)``, in ``[0, num_classes)``.
      num_classes: number of classes.
      name: short name of the source (e.g. ``"digits"``, the npz file stem, the tfds name).

    Arrays are converted on construction (x to float32, y to int32) and stored as
    read-only views. Construction checks shapes, label range and finiteness and raises
    :class:`~capjax.base.validation.CapjaxInputError` naming the offending split.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int | np.integer):
            raise CapjaxInputError(
                f"num_classes is {self.num_classes!r}; pass the number of classes as an int >= 2"
            )
        if self.num_classes < 2:
            raise CapjaxInputError(
                f"num_classes is {self.num_classes}; a classification dataset needs at least 2"
            )
        object.__setattr__(self, "num_classes", int(self.num_classes))
        for split in SPLITS:
            x, y = checked_pair(
                split, getattr(self, f"x_{split}"), getattr(self, f"y_{split}"), self.num_classes
            )
            object.__setattr__(self, f"x_{split}", frozen(x))
            object.__setattr__(self, f"y_{split}", frozen(y))
        for split in ("val", "test"):
            shape = getattr(self, f"x_{split}").shape[1:]
            if shape != self.input_shape:
                raise CapjaxInputError(
                    f"x_{split} examples have shape {shape} but x_train examples have shape "
                    f"{self.input_shape}; give every split the same per-example shape"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(d,)`` or ``(H, W, C)``."""
        return tuple(self.x_train.shape[1:])

    def flat(self) -> Dataset:
        """The same data with each example flattened to ``(prod(input_shape),)``, for MLPs."""
        if len(self.input_shape) == 1:
            return self
        flat = {f"x_{s}": getattr(self, f"x_{s}") for s in SPLITS}
        return dataclasses.replace(self, **{k: x.reshape(len(x), -1) for k, x in flat.items()})

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(getattr(self, f'y_{s}'))}" for s in SPLITS)
        return (
            f"Dataset(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, {sizes})"
        )


def checked_pair(
    split: str, x: Any, y: Any, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one split; return ``x`` as float32 ``(n, ...)`` and ``y`` as int32 ``(n,)``."""
    x, y = np.asarray(x), np.asarray(y)
    xn, yn = f"x_{split}", f"y_{split}"
    if x.dtype.kind not in "biuf":
        raise CapjaxInputError(
            f"{xn} has dtype {x.dtype}; inputs must be numeric: store them as float32 or uint8"
        )
    if x.ndim == 3:
        raise CapjaxInputError(
            f"{xn} has shape {x.shape}: rank 3 is ambiguous; add a channel axis (x[..., None]) "
            "for (n, H, W, 1) images, or reshape to (n, d) features"
        )
    if x.ndim not in (2, 4):
        raise CapjaxInputError(
            f"{xn} has shape {x.shape}; inputs must be (n, d) features or (n, H, W, C) images"
        )
    if len(x) == 0:
        raise CapjaxInputError(f"{xn} is empty; every split needs at least one example")
    if y.ndim == 2 and y.shape[0] == x.shape[0]:
        raise CapjaxInputError(
            f"{yn} has shape {y.shape}, which looks one-hot; store class indices (y.argmax(-1))"
        )
    if y.ndim != 1:
        raise CapjaxInputError(f"{yn} has shape {y.shape}; labels must be a 1-D array (n,)")
    if len(x) != len(y):
        raise CapjaxInputError(
            f"{xn} has {len(x)} examples but {yn} has {len(y)} labels; give both the same length"
        )
    if y.dtype.kind not in "iu":
        raise CapjaxInputError(
            f"{yn} has dtype {y.dtype}; labels must be integer class indices: "
            "store y.astype(np.int32) (after checking the values are whole numbers)"
        )
    if y.min() < 0:
        raise CapjaxInputError(
            f"{yn} has negative label {y.min()}; labels must be class indices 0..K-1: "
            "remap them with np.unique(y, return_inverse=True)"
        )
    if y.max() >= num_classes:
        raise CapjaxInputError(
            f"{yn} has label {y.max()} but num_classes is {num_classes}; labels must lie in "
            "[0, num_classes): fix the labels or raise num_classes"
        )
    check_finite(xn, x, "remove or impute those examples before loading")
    return x.astype(np.float32, copy=False), y.astype(np.int32, copy=False)


def holdout(
    x: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off a stratified ``fraction`` of ``(x, y)``; return ``kept_x, kept_y, out_x, out_y``.

    Examples are shuffled, grouped by class, and every ``1/fraction``-th one is held out,
    so each class loses its share to within one example and the total held out is
    ``floor(n * fraction)``. Both parts keep the original order.
    """
    n = len(y)
    order = rng.permutation(n)
    order = order[np.argsort(y[order], kind="stable")]
    pos = np.arange(n)
    take = np.floor((pos + 1) * fraction) > np.floor(pos * fraction)
    out = np.zeros(n, dtype=bool)
    out[order[take]] = True
    if out.all() or not out.any():
        raise CapjaxInputError(
            f"cannot hold out a {what} split of fraction {fraction:g} from {n} examples; "
            "use more examples (max_examples) or a different val_fraction"
        )
    return x[~out], y[~out], x[out], y[out]


def scaled(x: np.ndarray) -> np.ndarray:
    """float32 inputs; uint8 (8-bit pixels) are divided by 255 into [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32, copy=False)
