"""Tests for capjax.data: every dataset source, bad inputs, and deterministic batching."""

from __future__ import annotations

import contextlib
import json
import shutil
import time

import jax
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds
from hypothesis import given, settings
from hypothesis import strategies as st

from capjax.base.validation import CapjaxInputError
from capjax.data import DIGITS_TEST_FRACTION, Dataset, batch_indices, batches, holdout, load_dataset
from capjax.data.sources import _mnist1d_arrays


@contextlib.contextmanager
def _one_line_error(match: str):
    """Expect a CapjaxInputError whose message matches ``match`` and is a single line."""
    with pytest.raises(CapjaxInputError, match=match) as info:
        yield info
    assert "\n" not in str(info.value)


def _rows(*xs: np.ndarray) -> np.ndarray:
    """All examples of ``xs`` flattened and sorted, to compare splits as multisets."""
    flat = np.concatenate([x.reshape(len(x), -1) for x in xs])
    return flat[np.lexsort(flat.T[::-1])]


# ---------------------------------------------------------------------------------------
# digits


def test_digits_shapes_ranges_and_sizes():
    ds = load_dataset("digits")
    assert ds.input_shape == (8, 8, 1) and ds.num_classes == 10 and ds.name == "digits"
    for s in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{s}"), getattr(ds, f"y_{s}")
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape[1:] == (8, 8, 1) and y.shape == (len(x),)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
    n = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    assert n == 1797
    assert len(ds.y_test) == int(1797 * DIGITS_TEST_FRACTION)
    assert len(ds.y_val) == int((1797 - len(ds.y_test)) * 0.2)
    assert ds.flat().input_shape == (64,) and ds.flat().x_val.shape == (len(ds.y_val), 64)
    assert "train=1151" in repr(ds)


def test_digits_splits_partition_the_data_and_are_stratified():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", seed=3)
    full = load_digits()
    np.testing.assert_array_equal(
        _rows(ds.x_train, ds.x_val, ds.x_test), _rows(full.images[..., None] / 16.0)
    )
    total = np.bincount(full.target, minlength=10)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert np.all(np.abs(test_counts - total * DIGITS_TEST_FRACTION) < 1)


def test_digits_is_deterministic_in_seed():
    a, b, c = load_dataset("digits", seed=1), load_dataset("digits", seed=1), load_dataset(
        "digits", seed=2
    )
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_test, c.y_test)


def test_dataset_arrays_are_read_only():
    ds = load_dataset("digits")
    with pytest.raises(ValueError, match="read-only"):
        ds.x_train[0, 0, 0, 0] = 5.0


# ---------------------------------------------------------------------------------------
# mnist1d


@pytest.fixture(scope="module")
def mnist1d_and_rng_states():
    _mnist1d_arrays.cache_clear()
    before = np.random.get_state()[1].copy()
    ds = load_dataset("mnist1d")
    return ds, before, np.random.get_state()[1]


def test_mnist1d_shapes(mnist1d_and_rng_states):
    ds, _, _ = mnist1d_and_rng_states
    assert ds.input_shape == (40,) and ds.num_classes == 10
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (3200, 800, 1000)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int32
    assert abs(float(ds.x_train.mean())) < 0.1 and 0.8 < float(ds.x_train.std()) < 1.2
    assert ds.flat() is ds


def test_mnist1d_leaves_global_rng_alone(mnist1d_and_rng_states):
    _, before, after = mnist1d_and_rng_states
    np.testing.assert_array_equal(before, after)


def test_mnist1d_max_examples_caps_each_source_split(mnist1d_and_rng_states):
    ds = load_dataset("mnist1d", max_examples=500, seed=4)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (400, 100, 500)


# ---------------------------------------------------------------------------------------
# npz


def _npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return f"npz:{path}"


def _good_arrays(rng=None):
    rng = rng or np.random.default_rng(0)
    return dict(
        x_train=rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8),
        y_train=np.arange(50) % 5,
        x_test=rng.integers(0, 256, (20, 4, 4, 3), dtype=np.uint8),
        y_test=np.arange(20) % 5,
    )


def test_npz_uint8_images_with_carved_validation(tmp_path):
    arrays = _good_arrays()
    ds = load_dataset(_npz(tmp_path, "imgs.npz", **arrays), val_fraction=0.2)
    assert ds.name == "imgs" and ds.num_classes == 5 and ds.input_shape == (4, 4, 3)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (40, 10, 20)
    assert np.bincount(ds.y_val).tolist() == [2] * 5
    np.testing.assert_allclose(ds.x_test, arrays["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(
        _rows(ds.x_train, ds.x_val), _rows(arrays["x_train"] / 255.0), rtol=1e-6
    )


def test_npz_features_with_given_validation_and_num_classes(tmp_path):
    rng = np.random.default_rng(1)
    spec = _npz(
        tmp_path,
        x_train=rng.normal(size=(30, 7)),
        y_train=np.arange(30) % 3,
        x_val=rng.normal(size=(6, 7)),
        y_val=np.arange(6) % 3,
        x_test=rng.normal(size=(9, 7)),
        y_test=np.arange(9) % 3,
        num_classes=4,
    )
    ds = load_dataset(spec, max_examples=20)
    assert ds.num_classes == 4 and ds.input_shape == (7,)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (20, 6, 9)
    assert ds.x_train.dtype == np.float32


def _replace(**changes):
    arrays = _good_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    return arrays


NAN_IMAGES = np.full((50, 4, 4, 3), 0.5)
NAN_IMAGES[3, 1, 1, 0] = np.nan

BAD_NPZ = {
    "missing key": (_replace(y_test=None), r"lacks key\(s\) \['y_test'\].*it has .*x_test"),
    "float labels": (_replace(y_train=np.arange(50) % 5 + 0.5), "integer class indices"),
    "negative labels": (_replace(y_test=np.arange(20) % 5 - 1), "negative label -1.*remap"),
    "label out of range": (
        _replace(num_classes=np.array(3)),
        "y_train has label 4 but num_classes is 3",
    ),
    "bad num_classes": (_replace(num_classes=np.array([5, 5])), "scalar int"),
    "nan inputs": (_replace(x_train=NAN_IMAGES), "x_train holds 1 NaN/inf"),
    "inf inputs": (_replace(x_test=np.full((20, 4, 4, 3), np.inf)), "x_test holds 960 NaN/inf"),
    "rank 3 images": (
        _replace(x_train=np.zeros((50, 4, 4))),
        r"rank 3 is ambiguous.*x\[\.\.\., None\]",
    ),
    "rank 1 inputs": (_replace(x_train=np.zeros(50)), r"\(n, d\) features or \(n, H, W, C\)"),
    "rank 5 inputs": (_replace(x_train=np.zeros((50, 1, 1, 1, 1))), r"\(n, H, W, C\) images"),
    "length mismatch": (_replace(y_train=np.arange(49) % 5), "50 examples but y_train has 49"),
    "one-hot labels": (_replace(y_test=np.eye(5, dtype=int)[np.arange(20) % 5]), "one-hot"),
    "only x_val": (_replace(x_val=np.zeros((5, 4, 4, 3))), "only one of x_val / y_val"),
    "shape mismatch": (
        _replace(x_test=np.zeros((20, 4, 4, 1), np.uint8)),
        r"x_test examples have shape \(4, 4, 1\) but x_train",
    ),
    "string inputs": (_replace(x_train=np.array(["a"] * 50)), "inputs must be numeric"),
    "empty split": (
        _replace(x_test=np.zeros((0, 4, 4, 3), np.uint8), y_test=np.zeros(0, int)),
        "x_test is empty",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_npz_bad_input(tmp_path, case):
    arrays, match = BAD_NPZ[case]
    with _one_line_error(match):
        load_dataset(_npz(tmp_path, **arrays))


def test_npz_missing_file(tmp_path):
    with _one_line_error("does not exist; pass the path of an existing .npz"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


def test_npz_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file")
    with _one_line_error("cannot read .* as an .npz file.*np.savez"):
        load_dataset(f"npz:{path}")


def test_npz_too_small_to_carve_validation(tmp_path):
    arrays = _replace(x_train=np.zeros((2, 3)), y_train=np.array([0, 1]),
                      x_test=np.zeros((2, 3)), y_test=np.array([0, 1]))
    with _one_line_error("cannot hold out a validation split"):
        load_dataset(_npz(tmp_path, **arrays), val_fraction=0.2)


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=2, max_size=60),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**31 - 1),
)
def test_holdout_is_a_stratified_partition(labels, fraction, seed):
    y = np.array(labels)
    x = np.arange(len(y))
    n_out = int(np.floor(len(y) * fraction))
    if n_out in (0, len(y)):
        with _one_line_error("cannot hold out"):
            holdout(x, y, fraction, np.random.default_rng(seed), "test")
        return
    x_in, y_in, x_out, y_out = holdout(x, y, fraction, np.random.default_rng(seed), "test")
    assert sorted([*x_in, *x_out]) == list(range(len(y)))
    np.testing.assert_array_equal(y[x_in], y_in)
    np.testing.assert_array_equal(y[x_out], y_out)
    assert abs(len(x_out) - n_out) <= 1
    for c in np.unique(y):
        assert abs((y_out == c).sum() - (y == c).sum() * fraction) < 1 + 1e-9


# ---------------------------------------------------------------------------------------
# spec and argument errors


@pytest.mark.parametrize("spec", ["mnist", "npz:", "tfds:", "digits:extra", "", "hf:foo"])
def test_unknown_spec_lists_valid_forms(spec):
    with _one_line_error('unknown dataset spec.*"digits", "mnist1d", "npz:PATH" or "tfds:NAME"'):
        load_dataset(spec)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"val_fraction": 0.0}, "strictly between 0 and 1"),
        ({"val_fraction": 1.5}, "strictly between 0 and 1"),
        ({"max_examples": 0}, "int >= 2"),
        ({"max_examples": 2.5}, "int >= 2"),
        ({"seed": None}, "seed is None; pass an int"),
    ],
)
def test_bad_arguments(kwargs, match):
    with _one_line_error(match):
        load_dataset("digits", **kwargs)


def test_dataset_rejects_bad_num_classes():
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int32)
    with _one_line_error("at least 2"):
        Dataset(x, y, x, y, x, y, num_classes=1, name="t")


# ---------------------------------------------------------------------------------------
# tfds, on small array_record datasets written here without TensorFlow


class CapjaxTestImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Grayscale 6x5 images, 3 classes; pixel (0, 0) holds the example id, the rest 40*label.

    Not registered with tfds, so loading it by name exercises the same read-only path as a
    dataset prepared elsewhere.
    """

    VERSION = tfds.core.Version("1.0.0")
    SPLITS = {"train": 30, "test": 12}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(6, 5, 1)),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        offsets = np.cumsum([0, *self.SPLITS.values()])
        return {
            split: self._generate_examples(int(start), n)
            for (split, n), start in zip(self.SPLITS.items(), offsets, strict=False)
        }

    def _generate_examples(self, start, n):
        for i in range(start, start + n):
            label = i % 3
            pixels = np.full((6, 5), 40 * label, dtype=np.uint8)
            pixels[0, 0] = i
            # PIL images, not arrays: tfds encodes arrays with TensorFlow, PIL images without.
            yield i, {"image": PIL.Image.fromarray(pixels), "label": label}


class CapjaxTestVectors(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """float32 feature vectors (4,), 2 classes; train and validation splits, no test split."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "features": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                    "target": tfds.features.ClassLabel(num_classes=2),
                }
            ),
            supervised_keys=("features", "target"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(0, 40),
            "validation": self._generate_examples(40, 8),
        }

    def _generate_examples(self, start, n):
        for i in range(start, start + n):
            yield i, {"features": np.full(4, i, np.float32), "target": i % 2}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    for builder in (CapjaxTestImages, CapjaxTestVectors):
        builder(data_dir=root, file_format="array_record").download_and_prepare()
    return root


def test_tfds_images_end_to_end(tfds_dir):
    assert list((tfds_dir / "capjax_test_images" / "1.0.0").glob("*.array_record-*"))
    ds = load_dataset("tfds:capjax_test_images", data_dir=tfds_dir, val_fraction=0.2)
    assert ds.name == "capjax_test_images" and ds.num_classes == 3
    assert ds.input_shape == (6, 5, 1) and ds.x_train.dtype == np.float32
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (24, 6, 12)
    pixels = {s: np.rint(getattr(ds, f"x_{s}") * 255).astype(int) for s in ("train", "val", "test")}
    ids = {s: p[:, 0, 0, 0] for s, p in pixels.items()}
    assert sorted(np.concatenate([ids["train"], ids["val"]])) == list(range(30))
    assert sorted(ids["test"]) == list(range(30, 42))
    for s, p in pixels.items():
        y = getattr(ds, f"y_{s}")
        np.testing.assert_array_equal(y, ids[s] % 3)
        np.testing.assert_array_equal(p[:, 1, 1, 0], 40 * y)
    again = load_dataset("tfds:capjax_test_images", data_dir=tfds_dir, val_fraction=0.2)
    np.testing.assert_array_equal(again.x_val, ds.x_val)


def test_tfds_max_examples_caps_each_stored_split(tfds_dir):
    ds = load_dataset("tfds:capjax_test_images", data_dir=tfds_dir, max_examples=10, seed=5)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (8, 2, 10)


def test_tfds_validation_split_kept_and_test_carved(tfds_dir):
    ds = load_dataset("tfds:capjax_test_vectors", data_dir=str(tfds_dir), val_fraction=0.25)
    assert ds.input_shape == (4,) and ds.num_classes == 2
    assert sorted(ds.x_val[:, 0].astype(int)) == list(range(40, 48))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (30, 8, 10)
    seen = np.concatenate([ds.x_train[:, 0], ds.x_test[:, 0]]).astype(int)
    assert sorted(seen) == list(range(40))
    np.testing.assert_array_equal(ds.y_test, ds.x_test[:, 0].astype(int) % 2)


def test_tfds_unknown_name_fails_fast(tmp_path):
    start = time.monotonic()
    with _one_line_error(
        f"nor prepared under {tmp_path}.*tfds build capjax_no_such_set --data_dir {tmp_path} "
        "--file_format array_record"
    ):
        load_dataset("tfds:capjax_no_such_set", data_dir=tmp_path)
    assert time.monotonic() - start < 5


def test_tfds_registered_but_unprepared_fails_fast(tmp_path):
    start = time.monotonic()
    with _one_line_error(
        f"'mnist' is not prepared in data_dir {tmp_path}.*"
        f"tfds build mnist --data_dir {tmp_path} --file_format array_record"
    ):
        load_dataset("tfds:mnist", data_dir=tmp_path)
    assert time.monotonic() - start < 5


def test_tfds_without_random_access_format(tfds_dir, tmp_path):
    shutil.copytree(tfds_dir / "capjax_test_vectors", tmp_path / "capjax_test_vectors")
    info_path = tmp_path / "capjax_test_vectors" / "1.0.0" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["fileFormat"] = "tfrecord"
    info_path.write_text(json.dumps(info))
    with _one_line_error("stored as tfrecord, which has no random access.*array_record"):
        load_dataset("tfds:capjax_test_vectors", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------
# batching


# Few distinct sizes: every new (n, batch_size) compiles, which dominates the run time.
@settings(max_examples=20, deadline=None)
@given(
    n=st.sampled_from([1, 7, 23]),
    batch_size=st.sampled_from([1, 4, 8]),
    drop=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_batch_indices_is_a_shuffled_epoch(n, batch_size, drop, seed):
    if drop and batch_size > n:
        return
    idx = np.asarray(batch_indices(seed, n, batch_size, drop_remainder=drop))
    n_batches = n // batch_size if drop else -(-n // batch_size)
    assert idx.shape == (n_batches, batch_size) and idx.dtype == np.int32
    flat = idx.ravel()
    assert flat.min() >= 0 and flat.max() < n
    head = flat[: min(n, flat.size)]
    assert len(set(head.tolist())) == len(head)
    if not drop:
        assert set(flat.tolist()) == set(range(n))


def test_batch_indices_determinism_keys_and_jit():
    key = jax.random.key(7)
    a = batch_indices(key, 50, 8)
    np.testing.assert_array_equal(a, batch_indices(7, 50, 8))
    np.testing.assert_array_equal(a, batch_indices(np.int64(7), 50, 8))
    assert not np.array_equal(a, batch_indices(8, 50, 8))
    jitted = jax.jit(batch_indices, static_argnums=(1, 2))
    np.testing.assert_array_equal(jitted(key, 50, 8), a)
    np.testing.assert_array_equal(jax.jit(lambda s: batch_indices(s, 50, 8))(7), a)
    legacy = batch_indices(jax.random.PRNGKey(7), 50, 8)
    assert legacy.shape == (6, 8)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 5, 8), {}, "batch_size 8 exceeds the 5 examples"),
        ((0, 5, 0), {}, "batch_size is 0; pass a positive int"),
        ((0, 0, 1), {}, "num_examples is 0"),
        ((1.5, 5, 2), {}, "pass an int seed or jax.random.key"),
        ((True, 5, 2), {}, "key_or_seed is a bool"),
    ],
)
def test_batch_indices_bad_input(args, kwargs, match):
    with _one_line_error(match):
        batch_indices(*args, **kwargs)


def test_batches_pairs_inputs_with_labels():
    x = np.arange(23)[:, None] * np.ones((1, 3))
    y = np.arange(23)
    got = list(batches(x, y, 5, key_or_seed=1))
    assert len(got) == 4
    for xb, yb in got:
        assert xb.shape == (5, 3) and yb.shape == (5,)
        np.testing.assert_array_equal(xb[:, 0], yb)
    assert len(list(batches(x, y, 5, key_or_seed=1, drop_remainder=False))) == 5
    with _one_line_error("x has 23 examples but y has 22"):
        batches(x, y[:-1], 5, key_or_seed=1)
