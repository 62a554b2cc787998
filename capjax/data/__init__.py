"""Datasets and deterministic mini-batching (numpy and jax only; tfds on demand)."""

from capjax.data.batching import batch_indices, batches
from capjax.data.dataset import SPLITS, Dataset, holdout, scaled
from capjax.data.sources import DIGITS_TEST_FRACTION, SPEC_FORMS, load_dataset
from capjax.data.tfds import load_tfds

__all__ = [
    "DIGITS_TEST_FRACTION",
    "SPEC_FORMS",
    "SPLITS",
    "Dataset",
    "batch_indices",
    "batches",
    "holdout",
    "load_dataset",
    "load_tfds",
    "scaled",
]
