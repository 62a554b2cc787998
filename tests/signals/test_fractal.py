"""Box-counting dimension on shapes of known dimension; counts against brute force."""

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.signals.fractal import (
    box_counting_dimension,
    box_counts,
    dyadic_scales,
    fractal_dimension,
    fractal_features,
    roughness,
    segment_dimensions,
)


def _sierpinski(n):
    """Pascal's triangle mod 2 on an n x n grid (n a power of 2): dimension log 3 / log 2."""
    i, j = np.indices((n, n))
    return (i & j) == 0


@pytest.mark.parametrize(
    "image,dim",
    [
        (np.ones((64, 64), bool), 2.0),
        (np.eye(64, dtype=bool), 1.0),
        (np.pad(np.ones((1, 64), bool), ((20, 43), (0, 0))), 1.0),
        (_sierpinski(64), np.log(3) / np.log(2)),
    ],
    ids=["square", "diagonal", "row", "sierpinski"],
)
def test_dimension_of_known_shapes(image, dim):
    assert float(box_counting_dimension(image)) == pytest.approx(dim, abs=1e-4)


def test_box_counts_match_brute_force_on_ragged_image():
    rng = np.random.default_rng(0)
    image = rng.random((13, 22)) > 0.8
    scales = dyadic_scales(image.shape)
    assert scales == (1, 2, 4)  # up to half the shorter side
    ref = [
        sum(image[r : r + s, c : c + s].any() for r in range(0, 13, s) for c in range(0, 22, s))
        for s in scales
    ]
    np.testing.assert_array_equal(box_counts(image, scales), ref)


def test_weight_matrix_dimension_segments_and_features():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(64, 32))
    weights[:, :16] = 5.0  # left half saturates the image: filled
    weights[:, 16:] = 0.0
    weights[:32, 16:][_sierpinski(16).repeat(2, 0)[:, :16]] = 5.0
    dims = np.asarray(segment_dimensions(weights, (16, 16)))
    assert dims.shape == (4, 2)
    np.testing.assert_allclose(dims[:, 0], 2.0, atol=1e-4)
    assert np.isnan(dims[2:, 1]).all()  # empty tiles
    assert 1.0 < dims[0, 1] < 2.0

    kernel = rng.normal(size=(3, 3, 4, 8))  # read as a (36, 8) image
    assert 1.0 < float(fractal_dimension(kernel)) <= 2.0
    ra = np.mean(np.abs(kernel - kernel.mean()))
    np.testing.assert_allclose(roughness(kernel), ra, rtol=1e-5)
    feats = np.asarray(fractal_features([{"kernel": kernel}, {"kernel": rng.normal(size=(8, 3))}]))
    assert feats.shape == (4,)
    assert np.isnan(feats[2])  # an 8 x 3 head is too narrow for three box sizes


def test_bad_inputs_name_the_fix():
    with pytest.raises(CapjaxInputError, match="at least 4 pixels"):
        box_counting_dimension(np.ones((3, 10), bool))
    with pytest.raises(CapjaxInputError, match="smaller segment"):
        segment_dimensions(np.ones((8, 8)), (16, 16))
    assert np.isnan(box_counting_dimension(np.zeros((8, 8), bool)))
