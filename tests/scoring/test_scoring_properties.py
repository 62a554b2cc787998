"""Property tests: Kendall tau is in [-1, 1] (or NaN for constant input) or a documented error."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from capjax.base.validation import CapjaxInputError
from capjax.scoring import kendall_tau


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 8).flatmap(lambda n: st.tuples(
    st.lists(st.floats(allow_nan=True, width=32), min_size=n, max_size=n),
    st.lists(st.floats(-0.5, 1.5), min_size=n, max_size=n))))
def test_kendall_tau_is_an_error_or_in_range(pair):
    pred, true = pair
    try:
        tau = kendall_tau(pred, true)
    except CapjaxInputError as err:
        assert "\n" not in str(err)
        return
    assert np.isnan(tau) or -1 - 1e-12 <= tau <= 1 + 1e-12
