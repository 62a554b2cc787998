"""Property tests: ``select``'s argument checks give a fraction in (0, 1] or a one-line error naming the flag."""

from hypothesis import given, settings
from hypothesis import strategies as st

from capjax.base.validation import CapjaxInputError
from capjax.workflows.select import parse_budget


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True),
                 st.builds(lambda v: f"{v}%", st.floats(allow_nan=True, allow_infinity=True))))
def test_budget_is_a_fraction_or_names_the_flag(text):
    try:
        fraction = parse_budget(text)
    except CapjaxInputError as err:
        assert str(err).startswith("--budget ") and "\n" not in str(err)
        return
    assert 0 < fraction <= 1
