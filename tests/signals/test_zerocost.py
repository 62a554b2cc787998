"""Zero-cost proxies on a tiny MLP against dense numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.signals.zerocost import grad_norm, jacov, mlp_preactivations, nwot, snip, synflow


def _mlp(params, x):
    """x -> Dense -> relu -> ... -> Dense, over a list of {"kernel", "bias"} layers."""
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
    return x @ params[-1]["kernel"] + params[-1]["bias"]


def _np_mlp(params, x):
    for layer in params[:-1]:
        x = np.maximum(x @ layer["kernel"] + layer["bias"], 0.0)
    return x @ params[-1]["kernel"] + params[-1]["bias"]


def _np_loss(params, x, y):
    logits = _np_mlp(params, x)
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def _setup(seed=0, widths=(4, 6, 3), n=5):
    rng = np.random.default_rng(seed)
    params = [
        {"kernel": rng.normal(size=(a, b)), "bias": rng.normal(size=b) * 0.1}
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    ]
    x = rng.normal(size=(n, widths[0]))
    y = rng.integers(0, widths[-1], size=n)
    return params, x, y


def _fd_grad(f, params, eps=1e-6):
    """Central finite differences of f(params) for every entry of every leaf."""
    grads = []
    for l, layer in enumerate(params):
        g = {}
        for name, value in layer.items():
            gv = np.zeros_like(value)
            for idx in np.ndindex(value.shape):
                plus = [dict(p) for p in params]
                minus = [dict(p) for p in params]
                plus[l][name] = value.copy()
                minus[l][name] = value.copy()
                plus[l][name][idx] += eps
                minus[l][name][idx] -= eps
                gv[idx] = (f(plus) - f(minus)) / (2 * eps)
            g[name] = gv
        grads.append(g)
    return grads


def _leaves(tree):
    return [layer[k] for layer in tree for k in ("kernel", "bias")]


def test_grad_norm_and_snip_match_finite_differences():
    params, x, y = _setup()
    grads = _fd_grad(lambda p: _np_loss(p, x, y), params)
    ref_norm = np.sqrt(sum(np.sum(g**2) for g in _leaves(grads)))
    pairs = zip(_leaves(grads), _leaves(params), strict=True)
    ref_snip = sum(np.sum(np.abs(g * w)) for g, w in pairs)
    with jax.enable_x64(True):
        both = jax.jit(lambda p, b: (grad_norm(_mlp, p, b), snip(_mlp, p, b)))(params, (x, y))
    np.testing.assert_allclose(both, [ref_norm, ref_snip], rtol=1e-6)


def test_synflow_matches_numpy_and_euler_identity():
    params, x, y = _setup(seed=1)
    abs_params = [{k: np.abs(v) for k, v in layer.items()} for layer in params]
    ones = np.ones((1, x.shape[1]))
    grads = _fd_grad(lambda p: _np_mlp(p, ones).sum(), abs_params)
    ref = sum(np.sum(g * w) for g, w in zip(_leaves(grads), _leaves(abs_params), strict=True))
    with jax.enable_x64(True):
        score = synflow(_mlp, params, (x, y))
        assert score.dtype == jnp.float64
        assert float(score) == pytest.approx(ref, rel=1e-6)
        # bias-free, depth 2: score = 2 * R by Euler's theorem for homogeneous functions
        no_bias = [{**layer, "bias": np.zeros_like(layer["bias"])} for layer in params]
        r = _np_mlp([{k: np.abs(v) for k, v in layer.items()} for layer in no_bias], ones).sum()
        assert float(synflow(_mlp, no_bias, (x, y))) == pytest.approx(2 * r, rel=1e-10)


def test_synflow_overflow_in_float32_says_to_enable_x64():
    deep = [{"kernel": np.full((8, 8), 1e10, np.float32), "bias": np.zeros(8, np.float32)}] * 4
    with pytest.raises(CapjaxInputError, match="enable_x64"):
        synflow(_mlp, deep, (np.ones((2, 8), np.float32), np.zeros(2, int)))
    with jax.enable_x64(True):
        assert np.isfinite(float(synflow(_mlp, deep, (np.ones((2, 8)), np.zeros(2, int)))))


def test_jacov_matches_numpy_correlation_eigenvalues():
    params, x, y = _setup(seed=2, widths=(6, 8, 3), n=4)
    # ReLU MLP: the input Jacobian of sum(logits) is W1 diag(relu'(z1)) W2 1 per example
    z1 = x @ params[0]["kernel"] + params[0]["bias"]
    jac = ((z1 > 0) * (params[1]["kernel"].sum(axis=1))) @ params[0]["kernel"].T
    eig = np.clip(np.linalg.eigvalsh(np.corrcoef(jac)), 0, None)
    ref = -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5))
    with jax.enable_x64(True):
        assert float(jacov(_mlp, params, (x, y))) == pytest.approx(ref, rel=1e-8)


def test_nwot_hand_checked_kernel():
    # one hidden layer of 3 ReLUs with identity-like weights: the codes are the signs of x
    params = [
        {"kernel": np.eye(3), "bias": np.zeros(3)},
        {"kernel": np.ones((3, 2)), "bias": np.zeros(2)},
    ]
    x = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
    y = np.zeros(3, int)
    # codes 111, 101, 001: K = N_A - Hamming = [[3, 2, 1], [2, 3, 2], [1, 2, 3]], det 8
    with jax.enable_x64(True):
        assert float(nwot(mlp_preactivations, params, (x, y))) == pytest.approx(np.log(8.0))
        x_dup = np.concatenate([x, x[:1]])
        assert float(nwot(mlp_preactivations, params, (x_dup, np.zeros(4, int)))) == -np.inf


def test_bad_inputs_name_the_fix():
    params, x, y = _setup()
    with pytest.raises(CapjaxInputError, match="integer class indices"):
        snip(_mlp, params, (x, y.astype(float)))
    with pytest.raises(CapjaxInputError, match="NaN"):
        grad_norm(_mlp, params, (np.full_like(x, np.nan), y))
    with pytest.raises(CapjaxInputError, match="dense stacks only"):
        mlp_preactivations([{"kernel": np.ones((3, 3, 1, 2))}], x)
