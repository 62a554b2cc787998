"""Property tests: transferability scores give a documented error or a finite value, at any scale."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from capjax.base.validation import CapjaxInputError
from capjax.signals import h_score, logme, transrate

SETTINGS = settings(max_examples=25, deadline=None)


@SETTINGS
@given(arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 5)),
              elements=st.floats(-1e6, 1e6)),
       st.integers(0, 2**31 - 1), st.sampled_from([1.0, 1e-30, 1e30]))
def test_scores_are_an_error_or_finite(features, seed, scale):
    labels = np.random.default_rng(seed).integers(0, 3, len(features))
    for score in (logme, h_score, transrate):
        try:
            value = score(features * scale, labels)
        except CapjaxInputError as err:
            assert "\n" not in str(err)
            continue
        assert np.isfinite(value), score.__name__


@pytest.mark.parametrize("scale", [1e-30, 1e-12, 1e12, 1e19, 1e30])
def test_logme_and_h_score_do_not_depend_on_the_scale(scale):
    rng = np.random.default_rng(0)
    f = rng.normal(size=(60, 6)).astype(np.float32)
    y = np.arange(60) % 3
    assert logme(f * scale, y) == pytest.approx(logme(f, y), rel=1e-5)
    assert h_score(f * scale, y) == pytest.approx(h_score(f, y), rel=1e-5)
    if scale > 1e15:
        with pytest.raises(CapjaxInputError, match="TransRate depends on their scale"):
            transrate(f * scale, y)
