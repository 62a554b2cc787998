import jax
import numpy as np
import pytest

import capjax
from capjax.base.sharding import candidate_mesh, map_candidates
from tests._stacks import ce_loss, random_batch, random_stack


def _candidates(n):
    stacks = [random_stack(s, [6, 5, 4], dtype=np.float32) for s in range(n)]
    heads = [random_stack(100 + s, [4, 3], dtype=np.float32)[0] for s in range(n)]
    batches = [random_batch(s, 16, 6, 3, dtype=np.float32) for s in range(n)]
    stack = lambda items: jax.tree.map(lambda *xs: np.stack(xs), *items)
    return (
        stacks,
        heads,
        batches,
        stack(stacks),
        stack(heads),
        stack([b[0] for b in batches]),
        stack([b[1] for b in batches]),
    )


def one(layers, head, x, y):
    return capjax.beta_eff(layers, x, ce_loss(head, y), interaction="hessian")


@pytest.mark.parametrize("n", [8, 5])
def test_loop_vmap_and_sharded_agree(n):
    assert len(jax.devices()) == 8, "conftest sets 8 simulated CPU devices"
    stacks, heads, batches, S, H, X, Y = _candidates(n)
    loop = np.array([one(s, h, b[0], b[1]) for s, h, b in zip(stacks, heads, batches)])
    vmapped = np.asarray(jax.jit(jax.vmap(one))(S, H, X, Y))
    sharded = np.asarray(map_candidates(one, S, H, X, Y, mesh=candidate_mesh()))
    np.testing.assert_allclose(vmapped, loop, rtol=1e-4)
    np.testing.assert_allclose(sharded, loop, rtol=1e-4)
    assert sharded.shape == (n,)
