import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError, check_accuracy, check_finite


def test_percentages_are_named_and_rounding_slips_are_not():
    with pytest.raises(CapjaxInputError, match="look like percentages.*divide by 100"):
        check_accuracy("acc", [50.0, 87.5])
    with pytest.raises(CapjaxInputError, match=r"values in \[0.5, 1.02\]") as err:
        check_accuracy("acc", [0.5, 1.02])
    assert "percent" not in str(err.value)
    np.testing.assert_array_equal(check_accuracy("acc", [0.5, np.nan]), [0.5, np.nan])


def test_check_finite_names_the_leaf():
    with pytest.raises(CapjaxInputError, match=r"weights\['w'\] holds 1 NaN/inf"):
        check_finite("weights", {"w": np.array([1.0, np.inf])})
