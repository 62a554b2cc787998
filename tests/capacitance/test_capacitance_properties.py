"""Property tests: beta_eff is finite on finite inputs, or a documented error."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from capjax.base.validation import CapjaxInputError
from capjax.capacitance import beta_eff, init_probe


@settings(max_examples=20, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.just(5)), elements=st.floats(-1e3, 1e3, width=32)),
       st.sampled_from(["coupling", "hessian"]))
def test_beta_eff_is_finite_or_an_error(x, interaction):
    layers = init_probe(jax.random.key(0), 5, (4, 3))
    try:
        b = beta_eff(layers, jnp.asarray(x), lambda out: jnp.mean(out**2), interaction=interaction)
    except CapjaxInputError as err:
        assert "\n" not in str(err)
        return
    assert np.isfinite(float(b)) or np.isnan(float(b))
