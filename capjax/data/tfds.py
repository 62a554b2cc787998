"""TensorFlow Datasets read without TensorFlow: prepared array_record splits, random access.

tensorflow-datasets is imported only when a ``tfds:`` spec is loaded. A dataset that is
not prepared fails at once, naming the directory searched and the command that prepares
it; nothing is downloaded.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.data.dataset import SPLITS, Dataset, holdout, scaled

_TFDS_VAL_SPLITS = ("validation", "val", "valid")


def load_tfds(
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
        x_train, y_train, x_test, y_test = holdout(x, y, val_fraction, rng, "test")
        splits["train"], splits["test"] = (x_train, y_train), (x_test, y_test)
    if "val" not in splits:
        x, y = splits["train"]
        x_train, y_train, x_val, y_val = holdout(x, y, val_fraction, rng, "validation")
        splits["train"], splits["val"] = (x_train, y_train), (x_val, y_val)
    return Dataset(
        *(a for s in SPLITS for a in splits[s]), num_classes=label.num_classes, name=name
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
    return scaled(x), y
