"""Property tests: ``predict_final`` and ``rank`` give a documented error or a finite, valid result."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from capjax.base.validation import CapjaxInputError
from capjax.bayes import predict_final, rank

VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(-2, 2, width=32))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(1, 4).flatmap(lambda c: st.integers(1, 6).flatmap(
    lambda t: st.tuples(arrays(np.float64, (c, t), elements=VALUES), arrays(np.float64, (c, t), elements=VALUES)))))
def test_predict_final_is_an_error_or_valid_per_candidate(pair):
    signal, accuracy = pair
    try:
        p = predict_final(signal, accuracy, method="fast")
    except CapjaxInputError as err:
        assert "\n" not in str(err)
        return
    for c in range(len(signal)):
        if p.valid[c]:
            assert np.isfinite([p.mean[c], p.lower[c], p.upper[c]]).all() and p.lower[c] <= p.upper[c]
        else:
            assert np.isnan(p.mean[c]) and c in p.reasons
    r = rank(p)
    probs = np.asarray(r.p_best, float)
    assert np.all(probs[np.isfinite(probs)] >= 0)


@SETTINGS
@given(st.lists(st.lists(st.floats(0, 1), min_size=1, max_size=4), min_size=2, max_size=4))
def test_ragged_inputs_are_a_documented_error(rows):
    if len({len(r) for r in rows}) == 1:
        return
    try:
        predict_final(rows, rows)
    except CapjaxInputError as err:
        assert "rectangular" in str(err)
