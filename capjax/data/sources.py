"""Load a dataset from a short spec string; nothing is downloaded.

* ``"digits"``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes).
* ``"mnist1d"``: MNIST-1D (5,000 sequences of length 40, 10 classes), generated locally.
* ``"npz:PATH"``: a user ``.npz`` file.
* ``"tfds:NAME"``: a TensorFlow Datasets dataset already prepared as array_record files,
  read without TensorFlow (:mod:`capjax.data.tfds`).

Everywhere ``val_fraction`` means the fraction of the *training pool* held out as the
validation split, so the split sizes are the same whatever the source. Held-out splits
are stratified by class and depend only on ``seed``.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.data.dataset import SPLITS, Dataset, checked_pair, frozen, holdout, scaled
from capjax.data.tfds import load_tfds

SPEC_FORMS = '"digits", "mnist1d", "npz:PATH" or "tfds:NAME"'

#: Fraction of the digits images held out as the test split (the rest is the training pool).
DIGITS_TEST_FRACTION = 0.2

_NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def load_dataset(
    spec: str | Mapping[str, Any] | Dataset,
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
      an optional scalar ``num_classes`` (otherwise ``1 + `` the largest training label). Inputs
      must be ``(n, d)`` or NHWC ``(n, H, W, C)``: a rank-3 ``(n, H, W)`` array is
      rejected rather than guessed, since it could equally be ``(n, L, C)`` sequences.
      uint8 inputs are divided by 255; other dtypes are cast to float32 unscaled.
    * a mapping of arrays, the keys of an npz file (above); its name is ``"arrays"``.
      A :class:`Dataset` is returned as it is.
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
    if isinstance(spec, Dataset):
        return spec
    if not isinstance(spec, str | Mapping):
        raise CapjaxInputError(
            f"data is a {type(spec).__name__}; pass a capjax.Dataset, a mapping of arrays (x_train, y_train, "
            f"x_test, y_test) or one of {SPEC_FORMS}"
        )
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
    rng = np.random.default_rng(seed)
    if isinstance(spec, Mapping):
        return _from_mapping(spec, "the data mapping", "arrays", val_fraction, rng, max_examples)
    kind, _, arg = spec.partition(":")
    if spec == "digits":
        return _load_digits(val_fraction, rng, max_examples)
    if spec == "mnist1d":
        return _load_mnist1d(val_fraction, rng, max_examples)
    if kind == "npz" and arg:
        return _load_npz(Path(arg), val_fraction, rng, max_examples)
    if kind == "tfds" and arg:
        return load_tfds(arg, data_dir, val_fraction, rng, max_examples)
    raise CapjaxInputError(f"unknown dataset spec {spec!r}; use one of {SPEC_FORMS}")


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
    x_pool, y_pool, x_test, y_test = holdout(x, y, DIGITS_TEST_FRACTION, rng, "test")
    x_train, y_train, x_val, y_val = holdout(x_pool, y_pool, val_fraction, rng, "validation")
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
        frozen(np.asarray(raw[k], dtype=dt))
        for k, dt in (("x", np.float32), ("y", np.int32), ("x_test", np.float32),
                      ("y_test", np.int32))
    )


def _load_mnist1d(
    val_fraction: float, rng: np.random.Generator, max_examples: int | None
) -> Dataset:
    x, y, x_test, y_test = _mnist1d_arrays()
    x, y = _cap(x, y, max_examples, rng)
    x_test, y_test = _cap(x_test, y_test, max_examples, rng)
    x_train, y_train, x_val, y_val = holdout(x, y, val_fraction, rng, "validation")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=10, name="mnist1d")


def _load_npz(
    path: Path, val_fraction: float, rng: np.random.Generator, max_examples: int | None
) -> Dataset:
    if not path.is_file():
        raise CapjaxInputError(
            f"npz file {str(path)!r} does not exist; pass the path of an existing .npz as npz:PATH"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise CapjaxInputError(
            f"cannot read {str(path)!r} as an .npz file ({type(err).__name__}); {_NPZ_HINT}"
        ) from None
    return _from_mapping(arrays, repr(str(path)), path.stem, val_fraction, rng, max_examples)


_NPZ_HINT = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"


def _from_mapping(
    arrays: Mapping[str, Any], where: str, name: str, val_fraction: float, rng: np.random.Generator,
    max_examples: int | None,
) -> Dataset:
    """A Dataset from ``x_train, y_train, x_test, y_test`` (optionally ``x_val, y_val``, ``num_classes``)."""
    missing = [k for k in _NPZ_REQUIRED if k not in arrays]
    if missing:
        raise CapjaxInputError(
            f"{where} lacks key(s) {missing} (it has {sorted(arrays)}); it needs "
            f"{list(_NPZ_REQUIRED)}, optionally x_val, y_val, num_classes"
        )
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise CapjaxInputError(
            f"{where} has only one of x_val / y_val; give both, or neither to carve "
            "the validation split from the training split"
        )
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    splits = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in SPLITS if f"x_{s}" in arrays}
    for s, (x, y) in splits.items():
        # Label checks that must precede inferring num_classes from the largest label.
        checked_pair(s, x, y, num_classes=np.iinfo(np.int64).max)
    num_classes = _npz_num_classes(where, arrays, splits)
    splits = {s: _cap(scaled(x), y, max_examples, rng) for s, (x, y) in splits.items()}
    if "val" not in splits:
        x, y = splits["train"]
        x_train, y_train, x_val, y_val = holdout(x, y, val_fraction, rng, "validation")
        splits["train"], splits["val"] = (x_train, y_train), (x_val, y_val)
    return Dataset(
        *(a for s in SPLITS for a in splits[s]), num_classes=num_classes, name=name
    )


def _npz_num_classes(
    where: str, arrays: Mapping[str, np.ndarray], splits: Mapping[str, tuple[Any, np.ndarray]]
) -> int:
    if "num_classes" not in arrays:
        # the training labels define the classes: a larger test label is an error, not a class
        return max(int(splits["train"][1].max()) + 1, 2)
    stored = arrays["num_classes"]
    if stored.shape != () or stored.dtype.kind not in "iu":
        raise CapjaxInputError(
            f"num_classes in {where} is {stored!r}; store it as a scalar int "
            "(e.g. num_classes=10) or leave it out to infer it from the training labels"
        )
    return int(stored)
