"""Datasets and deterministic mini-batching for capjax experiments.

:func:`load_dataset` turns a short spec string into a :class:`Dataset` with train,
validation and test splits held as read-only NumPy arrays:

* ``"digits"``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes).
* ``"mnist1d"``: MNIST-1D (5,000 sequences of length 40, 10 classes), generated locally.
* ``"npz:PATH"``: a user ``.npz`` file.
* ``"tfds:NAME"``: a TensorFlow Datasets dataset already prepared as array_record files,
  read without TensorFlow.

Nothing here downloads: every source is bundled, generated, or read from local disk.

Everywhere ``val_fraction`` means the fraction of the *training pool* held out as the
validation split, so the split sizes are the same whatever the source. Held-out splits
are stratified by class and depend only on ``seed``.

:func:`batch_indices` gives one epoch of shuffled mini-batch indices as an
``(n_batches, batch_size)`` array that a ``jax.lax.scan`` training loop can consume;
:func:`batches` is the plain Python iterator over the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from capjax.validation import CapjaxInputError, check_finite

SPEC_FORMS = '"digits", "mnist1d", "npz:PATH" or "tfds:NAME"'

#: Fraction of the digits images held out as the test split (the rest is the training pool).
DIGITS_TEST_FRACTION = 0.2

_SPLITS = ("train", "val", "test")
_NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
_TFDS_VAL_SPLITS = ("validation", "val", "valid")


def _frozen(a: np.ndarray) -> np.ndarray:
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
    :class:`~capjax.validation.CapjaxInputError` naming the offending split.
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
        for split in _SPLITS:
            x, y = _checked_pair(
                split, getattr(self, f"x_{split}"), getattr(self, f"y_{split}"), self.num_classes
            )
            object.__setattr__(self, f"x_{split}", _frozen(x))
            object.__setattr__(self, f"y_{split}", _frozen(y))
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
        flat = {f"x_{s}": getattr(self, f"x_{s}") for s in _SPLITS}
        return dataclasses.replace(self, **{k: x.reshape(len(x), -1) for k, x in flat.items()})

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(getattr(self, f'y_{s}'))}" for s in _SPLITS)
        return (
            f"Dataset(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, {sizes})"
        )


def _checked_pair(
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


def load_dataset(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_examples: int | None = None,
) -> Dataset:
    """Load a dataset by spec; nothing is downloaded.

    Specs:

    * ``"digits"``: scikit-learn's bundled ``load_digits`` as ``(8, 8, 1)`` NHWC images in
      ``[0, 1]`` (raw 0..16 intensities divided by 16). A stratified
      :data:`DIGITS_TEST_FRACTION` (20%) is the test split; ``val_fraction`` of the rest
      is the validation split. Defaults give 1151 / 287 / 359 train / val / test.
    * ``"mnist1d"``: MNIST-1D generated with ``mnist1d.data.make_dataset`` and the package
      defaults of ``get_dataset_args()`` (5,000 samples, ``train_split=0.8``,
      ``final_seq_length=40``, generator ``seed=42``, i.e. the canonical dataset, so
      ``seed`` here does not change the data, only the split). Inputs are ``(40,)``
      sequences, standardised by the generator to mean 0 and std 1. The 1,000 generated
      test sequences are the test split; ``val_fraction`` of the 4,000 training sequences
      is the validation split. Generation takes about 1.5 s and is cached per process.
    * ``"npz:PATH"``: a ``.npz`` file with ``x_train, y_train, x_test, y_test``, optionally
      ``x_val, y_val`` (otherwise ``val_fraction`` of the training split is held out) and
      an optional scalar ``num_classes`` (otherwise ``1 + `` the largest label). Inputs
      must be ``(n, d)`` or NHWC ``(n, H, W, C)``: a rank-3 ``(n, H, W)`` array is
      rejected rather than guessed, since it could equally be ``(n, L, C)`` sequences.
      uint8 inputs are divided by 255; other dtypes are cast to float32 unscaled.
    * ``"tfds:NAME"``: a TensorFlow Datasets dataset (``NAME`` is anything
      ``tfds.builder`` accepts, e.g. ``"mnist"`` or ``"name/config:1.0.0"``) already
      prepared in ``data_dir`` (default: tfds's own, ``$TFDS_DATA_DIR`` or
      ``~/tensorflow_datasets``) with ``file_format="array_record"``. It is read through
      tfds's random-access data source, which decodes to NumPy without TensorFlow. The
      builder's supervised keys (else the ``"image"`` and ``"label"`` features) give x
      and y; the label must be a ``ClassLabel``. uint8 images are divided by 255. Splits:
      ``train``; ``validation`` (or ``val``/``valid``) if present, else ``val_fraction``
      of the training pool; ``test`` if present, else a fraction ``val_fraction`` of the
      train split is held out as the test split before the validation split is carved
      from what remains. A dataset that is not prepared fails at once, naming the
      directory searched and the command that prepares it.

    Args:
      spec: one of the forms above.
      data_dir: tfds data directory (``tfds:`` specs only).
      val_fraction: fraction in (0, 1) of the training pool held out for validation when
        the source has no validation split.
      seed: seeds every subsample and held-out split (stratified by class).
      max_examples: if given, keep a seeded random subset of at most this many examples
        of each *source* split (before any held-out split is carved). For tfds only those
        examples are read and decoded, which keeps large datasets quick to load.

    Returns:
      The :class:`Dataset`.
    """
    if not isinstance(spec, str):
        raise CapjaxInputError(f"dataset spec {spec!r} is not a string; pass one of {SPEC_FORMS}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise CapjaxInputError(f"seed is {seed!r}; pass an int")
    if isinstance(val_fraction, bool) or not (
        isinstance(val_fraction, int | float) and 0 < val_fraction < 1
    ):
        raise CapjaxInputError(
            f"val_fraction is {val_fraction!r}; pass a fraction strictly between 0 and 1"
        )
    if max_examples is not None and (
        isinstance(max_examples, bool)
        or not isinstance(max_examples, int | np.integer)
        or max_examples < 2
    ):
        raise CapjaxInputError(
            f"max_examples is {max_examples!r}; pass None (all examples) or an int >= 2"
        )
    kind, _, arg = spec.partition(":")
    rng = np.random.default_rng(seed)
    if spec == "digits":
        return _load_digits(val_fraction, rng, max_examples)
    if spec == "mnist1d":
        return _load_mnist1d(val_fraction, rng, max_examples)
    if kind == "npz" and arg:
        return _load_npz(Path(arg), val_fraction, rng, max_examples)
    if kind == "tfds" and arg:
        return _load_tfds(arg, data_dir, val_fraction, rng, max_examples)
    raise CapjaxInputError(f"unknown dataset spec {spec!r}; use one of {SPEC_FORMS}")


def _holdout(
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


def _cap(
    x: np.ndarray, y: np.ndarray, max_examples: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of at most ``max_examples`` examples, in original order."""
    if max_examples is None or len(y) <= max_examples:
        return x, y
    keep = np.sort(rng.choice(len(y), size=max_examples, replace=False))
    return x[keep], y[keep]


def _load_digits(
    val_fraction: float, rng: np.random.Generator, max_examples: int | None
) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images[..., None] / 16.0).astype(np.float32)
    x, y = _cap(x, bunch.target, max_examples, rng)
    x_pool, y_pool, x_test, y_test = _holdout(x, y, DIGITS_TEST_FRACTION, rng, "test")
    x_train, y_train, x_val, y_val = _holdout(x_pool, y_pool, val_fraction, rng, "validation")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=10, name="digits")


@functools.cache
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The canonical MNIST-1D arrays ``(x, y, x_test, y_test)``, generated once per process."""
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset reseeds Python's and NumPy's global generators; restore them so loading
    # data does not silently change the caller's random streams.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return tuple(  # type: ignore[return-value]
        _frozen(np.asarray(raw[k], dtype=dt))
        for k, dt in (("x", np.float32), ("y", np.int32), ("x_test", np.float32),
                      ("y_test", np.int32))
    )


def _load_mnist1d(
    val_fraction: float, rng: np.random.Generator, max_examples: int | None
) -> Dataset:
    x, y, x_test, y_test = _mnist1d_arrays()
    x, y = _cap(x, y, max_examples, rng)
    x_test, y_test = _cap(x_test, y_test, max_examples, rng)
    x_train, y_train, x_val, y_val = _holdout(x, y, val_fraction, rng, "validation")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=10, name="mnist1d")


def _load_npz(
    path: Path, val_fraction: float, rng: np.random.Generator, max_examples: int | None
) -> Dataset:
    if not path.is_file():
        raise CapjaxInputError(
            f"npz file {str(path)!r} does not exist; pass the path of an existing .npz as npz:PATH"
        )
    save_hint = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise CapjaxInputError(
            f"cannot read {str(path)!r} as an .npz file ({type(err).__name__}); {save_hint}"
        ) from None
    missing = [k for k in _NPZ_REQUIRED if k not in arrays]
    if missing:
        raise CapjaxInputError(
            f"{str(path)!r} lacks key(s) {missing} (it has {sorted(arrays)}); it needs "
            f"{list(_NPZ_REQUIRED)}, optionally x_val, y_val, num_classes: {save_hint}"
        )
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise CapjaxInputError(
            f"{str(path)!r} has only one of x_val / y_val; store both, or neither to carve "
            "the validation split from the training split"
        )
    splits = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in _SPLITS if f"x_{s}" in arrays}
    for s, (x, y) in splits.items():
        # Label checks that must precede inferring num_classes from the largest label.
        _checked_pair(s, x, y, num_classes=np.iinfo(np.int64).max)
    num_classes = _npz_num_classes(path, arrays, splits)
    splits = {s: _cap(_scaled(x), y, max_examples, rng) for s, (x, y) in splits.items()}
    if "val" not in splits:
        x, y = splits["train"]
        x_train, y_train, x_val, y_val = _holdout(x, y, val_fraction, rng, "validation")
        splits["train"], splits["val"] = (x_train, y_train), (x_val, y_val)
    return Dataset(
        *(a for s in _SPLITS for a in splits[s]), num_classes=num_classes, name=path.stem
    )


def _npz_num_classes(
    path: Path, arrays: Mapping[str, np.ndarray], splits: Mapping[str, tuple[Any, np.ndarray]]
) -> int:
    largest = max(int(y.max()) for _, y in splits.values())
    if "num_classes" not in arrays:
        return max(largest + 1, 2)
    stored = arrays["num_classes"]
    if stored.shape != () or stored.dtype.kind not in "iu":
        raise CapjaxInputError(
            f"num_classes in {str(path)!r} is {stored!r}; store it as a scalar int "
            "(np.savez(..., num_classes=10)) or leave it out to infer it from the labels"
        )
    return int(stored)


def _scaled(x: np.ndarray) -> np.ndarray:
    """float32 inputs; uint8 (8-bit pixels) are divided by 255 into [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32, copy=False)


def _load_tfds(
    name: str,
    data_dir: str | os.PathLike[str] | None,
    val_fraction: float,
    rng: np.random.Generator,
    max_examples: int | None,
) -> Dataset:
    # Imported here: tensorflow_datasets is only needed for tfds specs.
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import constants

    root = os.fspath(data_dir) if data_dir is not None else constants.get_default_data_dir()
    prepare = f"tfds build {name} --data_dir {root} --file_format array_record"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise CapjaxInputError(
            f"tfds dataset {name!r} is neither a registered tfds builder nor prepared under "
            f"{root}; check the name (tfds.list_builders()) or prepare it with: {prepare}"
        ) from None
    if not builder.is_prepared():
        raise CapjaxInputError(
            f"tfds dataset {name!r} is not prepared in data_dir {root} (looked in "
            f"{builder.data_dir}); prepare it once (needs network, and TensorFlow for most "
            f"builders) with: {prepare}"
        )
    x_key, y_key = _tfds_keys(name, builder.info)
    label = builder.info.features[y_key]
    if not isinstance(label, tfds.features.ClassLabel):
        raise CapjaxInputError(
            f"tfds dataset {name!r} label feature {y_key!r} is a {type(label).__name__}, not a "
            "ClassLabel; capjax needs a classification dataset"
        )
    feature = builder.info.features[x_key]
    if None in tuple(feature.shape) or np.dtype(feature.np_dtype).kind not in "biuf":
        raise CapjaxInputError(
            f"tfds dataset {name!r} input feature {x_key!r} has shape {feature.shape} and dtype "
            f"{feature.np_dtype}; capjax needs fixed-shape numeric inputs (pick such a dataset)"
        )
    available = list(builder.info.splits.keys())
    if "train" not in available:
        raise CapjaxInputError(
            f"tfds dataset {name!r} has splits {available} but no 'train' split; "
            "pick a dataset with a train split"
        )
    stored = {"train": "train"}
    val_split = next((s for s in _TFDS_VAL_SPLITS if s in available), None)
    if val_split is not None:
        stored["val"] = val_split
    if "test" in available:
        stored["test"] = "test"
    splits = {}
    for ours, theirs in stored.items():
        try:
            source = builder.as_data_source(split=theirs)
        except NotImplementedError:
            raise CapjaxInputError(
                f"tfds dataset {name!r} in {builder.data_dir} is stored as "
                f"{builder.info.file_format.value}, which has no random access; delete that "
                f"directory and re-prepare it with: {prepare}"
            ) from None
        splits[ours] = _read_source(source, x_key, y_key, max_examples, rng)
    if "test" not in splits:
        x, y = splits["train"]
        x_train, y_train, x_test, y_test = _holdout(x, y, val_fraction, rng, "test")
        splits["train"], splits["test"] = (x_train, y_train), (x_test, y_test)
    if "val" not in splits:
        x, y = splits["train"]
        x_train, y_train, x_val, y_val = _holdout(x, y, val_fraction, rng, "validation")
        splits["train"], splits["val"] = (x_train, y_train), (x_val, y_val)
    return Dataset(
        *(a for s in _SPLITS for a in splits[s]), num_classes=label.num_classes, name=name
    )


def _tfds_keys(name: str, info: Any) -> tuple[str, str]:
    """The (input, label) feature names: the supervised keys, else ``image``/``label``."""
    keys = info.supervised_keys
    if (
        isinstance(keys, tuple | list)
        and len(keys) == 2
        and all(isinstance(k, str) and k in info.features for k in keys)
    ):
        return keys[0], keys[1]
    if "image" in info.features and "label" in info.features:
        return "image", "label"
    raise CapjaxInputError(
        f"tfds dataset {name!r} has features {sorted(info.features.keys())} and no "
        "(input, label) supervised keys; capjax needs an 'image' and a 'label' feature"
    )


def _read_source(
    source: Any, x_key: str, y_key: str, max_examples: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Decode (a seeded subset of) a random-access tfds split into ``(x, y)`` arrays."""
    n = len(source)
    if max_examples is None or n <= max_examples:
        index = np.arange(n)
    else:
        index = np.sort(rng.choice(n, size=max_examples, replace=False))
    examples = source.__getitems__(index.tolist())
    x = np.stack([np.asarray(ex[x_key]) for ex in examples])
    y = np.asarray([ex[y_key] for ex in examples], dtype=np.int64)
    return _scaled(x), y


def _as_key(key_or_seed: Any) -> jax.Array:
    """A PRNG key from an int seed (Python, NumPy or traced scalar) or a key (typed or raw)."""
    if isinstance(key_or_seed, bool):
        raise CapjaxInputError("key_or_seed is a bool; pass an int seed or jax.random.key(seed)")
    if isinstance(key_or_seed, int | np.integer):
        return jax.random.key(int(key_or_seed))
    dtype, shape = getattr(key_or_seed, "dtype", None), np.shape(key_or_seed)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return key_or_seed
    if dtype == np.uint32 and shape == (2,):
        return key_or_seed  # legacy raw key from jax.random.PRNGKey
    if dtype is not None and np.dtype(dtype).kind in "iu" and shape == ():
        return jax.random.key(key_or_seed)
    raise CapjaxInputError(
        f"key_or_seed has dtype {dtype} and shape {shape}; pass an int seed or jax.random.key(seed)"
    )


def batch_indices(
    key_or_seed: Any, num_examples: int, batch_size: int, *, drop_remainder: bool = True
) -> jax.Array:
    """One epoch of shuffled mini-batch indices.

    Pure and jit-friendly (``num_examples``, ``batch_size`` and ``drop_remainder`` are
    static): the same key always gives the same epoch. For epoch ``e`` of a run, pass
    ``jax.random.fold_in(key, e)``; scan a training step over the rows.

    Args:
      key_or_seed: a ``jax.random.key`` (or legacy ``PRNGKey``), or an integer seed.
      num_examples: number of examples ``n`` to draw indices from.
      batch_size: examples per batch.
      drop_remainder: if True, the last ``n % batch_size`` examples of the permutation are
        left out of this epoch (``n // batch_size`` batches). If False, the permutation
        wraps around to fill the last batch (``ceil(n / batch_size)`` batches), so a few
        examples appear twice in the epoch.

    Returns:
      int32 array of shape ``(n_batches, batch_size)`` of indices into ``[0, n)``.
    """
    for label, value in (("num_examples", num_examples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise CapjaxInputError(f"{label} is {value!r}; pass a positive int")
    if drop_remainder and batch_size > num_examples:
        raise CapjaxInputError(
            f"batch_size {batch_size} exceeds the {num_examples} examples, leaving no full batch; "
            "pass a smaller batch_size or drop_remainder=False"
        )
    n_batches = (num_examples // batch_size if drop_remainder
                 else math.ceil(num_examples / batch_size))
    perm = jax.random.permutation(_as_key(key_or_seed), num_examples)
    return jnp.resize(perm, n_batches * batch_size).reshape(n_batches, batch_size).astype(
        jnp.int32
    )


def batches(
    x: Any, y: Any, batch_size: int, *, key_or_seed: Any, drop_remainder: bool = True
) -> Iterator[tuple[Any, Any]]:
    """Iterate over one shuffled epoch of ``(x_batch, y_batch)`` pairs.

    The batches are ``x[i], y[i]`` for each row ``i`` of :func:`batch_indices`, so they
    share its determinism and ``drop_remainder`` semantics.

    Args:
      x: inputs of shape ``(n, ...)`` (NumPy or JAX array).
      y: labels of shape ``(n,)``.
      batch_size: examples per batch.
      key_or_seed: a ``jax.random.key`` or an integer seed for this epoch's shuffle.
      drop_remainder: see :func:`batch_indices`.

    Returns:
      An iterator of ``(x_batch, y_batch)`` with shapes ``(batch_size, ...)`` and
      ``(batch_size,)``.
    """
    if len(x) != len(y):
        raise CapjaxInputError(
            f"x has {len(x)} examples but y has {len(y)}; pass arrays of the same length"
        )
    rows = np.asarray(
        batch_indices(key_or_seed, len(x), batch_size, drop_remainder=drop_remainder)
    )
    return ((x[r], y[r]) for r in rows)
