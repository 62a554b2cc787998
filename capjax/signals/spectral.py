"""Heavy-tail exponent of each layer's eigenvalue spectrum (docs/method.md §4), native JAX.

The metric WeightWatcher made popular (Martin & Mahoney 2021): for a weight matrix W of
shape (N, M) with N >= M, the empirical spectral density (ESD) is the distribution of
the eigenvalues of ``X = W^T W / N``, i.e. ``lambda_i = s_i^2 / N`` for the singular
values s_i of W. Its upper tail is fitted by a power law ``p(lambda) ~ lambda^-alpha``
for ``lambda >= lambda_min``, with ``lambda_min`` chosen by Clauset, Shalizi & Newman
(2009): the candidate minimising the Kolmogorov-Smirnov distance between the tail and
the fitted law, and alpha by maximum likelihood at that ``lambda_min``.

Reading the score: a smaller alpha (heavier tail, roughly 2..6) goes with
better-trained layers; a random, untrained matrix follows Marchenko-Pastur and gives a
large alpha. capjax's scorer wants higher = better, so pass ``-mean_alpha(params)``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from capjax.base.validation import CapjaxInputError, check_finite


class PowerLawFit(NamedTuple):
    """Power-law fit of an eigenvalue tail.

    Attributes:
      alpha: MLE exponent of ``p(x) ~ x^-alpha`` on the tail (NaN when not fitted).
      xmin: start of the tail.
      ks: Kolmogorov-Smirnov distance between the tail and the fitted law.
      n_tail: number of eigenvalues >= xmin.
    """

    alpha: jax.Array
    xmin: jax.Array
    ks: jax.Array
    n_tail: jax.Array


KS_SIDES = ("both", "lower")
"""Conventions of the KS distance: ``"both"`` sides of each step of the empirical CDF (the
default: the exact supremum over the tail), or its ``"lower"`` side at the data points only,
as the ``powerlaw`` package, and so WeightWatcher, computes it."""


def fit_power_law(eigenvalues: Any, *, min_tail: int = 10, ks: str = "both") -> PowerLawFit:
    """Clauset et al. (2009) power-law fit of the upper tail of ``eigenvalues`` (docs/method.md §4).

    Non-positive values are ignored. For every candidate ``xmin = x_(i)`` (the sorted
    positive eigenvalues) leaving at
    least ``min_tail`` points in the tail ``x >= xmin`` (m points):

      ``alpha_i = 1 + m / sum_{x >= xmin} log(x / xmin)``                 (MLE)
      ``D_i = max_{x >= xmin} |F_emp(x) - (1 - (x / xmin)^(1 - alpha_i))|`` (KS)

    and the fit is the candidate with the smallest D. By default (``ks="both"``) the KS
    statistic takes both sides of each step of the empirical CDF, ``i/m`` and
    ``(i+1)/m``: the true supremum of ``|F_emp - F|``. ``ks="lower"`` reads only ``i/m`` at
    each point, the convention of WeightWatcher 0.7.7's default fit and of ``powerlaw``
    1.5's ``Fit``; with ``min_tail=2`` (they try every xmin but the largest) it reproduces
    their alpha. The one-sided distance is smaller at the steps it skips, so it can pick
    another xmin, and so another alpha, than the exact one (docs/method.md §4).
    O(n^2) work, O(n * 256) memory.

    Args:
      eigenvalues: (n,) non-negative eigenvalues (any scale: alpha is scale-free).
      min_tail: fewest tail points a candidate xmin may leave; too short a tail lets the
        KS distance pick a few extreme points by chance.
      ks: ``"both"`` or ``"lower"`` (:data:`KS_SIDES`).

    Returns:
      :class:`PowerLawFit`; all NaN when fewer than ``min_tail`` eigenvalues are > 0.
    """
    if ks not in KS_SIDES:
        raise CapjaxInputError(f"ks is {ks!r}; pass one of {KS_SIDES}")
    x = jnp.asarray(eigenvalues)
    if x.ndim != 1:
        raise CapjaxInputError(f"eigenvalues has shape {x.shape}; pass a 1-D spectrum")
    # Zeros never enter a tail, so padding with them changes nothing; it lets layers of
    # different widths share one compiled fit per power-of-two size.
    size = 1 << max(int(x.shape[0]) - 1, 1).bit_length()
    return _fit_power_law(jnp.pad(x, (0, size - x.shape[0])), min_tail, ks == "both")


@functools.partial(jax.jit, static_argnums=(1, 2))
def _fit_power_law(x: jax.Array, min_tail: int, both: bool) -> PowerLawFit:
    x = jnp.sort(x)
    n = x.shape[0]
    positive = x > 0
    log_x = jnp.log(jnp.where(positive, x, 1.0))
    # suffix[i] = sum_{j >= i} log x_j, so each candidate's MLE is O(1).
    suffix = jnp.cumsum(log_x[::-1])[::-1]
    idx = jnp.arange(n)
    m = n - idx
    log_sum = suffix - m * log_x
    alpha = 1.0 + m / log_sum
    # A candidate needs a positive xmin, enough tail, and a tail that is not all ties.
    valid = positive & (m >= min_tail) & (log_sum > 0)

    def ks(i: jax.Array) -> jax.Array:
        in_tail = idx >= i
        cdf = 1.0 - jnp.exp((1.0 - alpha[i]) * (log_x - log_x[i]))
        upper = (idx - i + 1) / m[i]
        lower = (idx - i) / m[i]
        gap = jnp.maximum(jnp.abs(upper - cdf), jnp.abs(cdf - lower)) if both else jnp.abs(cdf - lower)
        return jnp.max(jnp.where(in_tail, gap, 0.0))

    dist = jnp.where(valid, jax.lax.map(ks, idx, batch_size=256), jnp.inf)
    best = jnp.argmin(dist)
    found = valid.any()
    nan = jnp.full((), jnp.nan, x.dtype)
    return PowerLawFit(
        alpha=jnp.where(found, alpha[best], nan),
        xmin=jnp.where(found, x[best], nan),
        ks=jnp.where(found, dist[best], nan),
        n_tail=jnp.where(found, m[best], 0),
    )


def esd(weight: Any) -> jax.Array:
    """Eigenvalues of ``W^T W / N`` for a 2-D weight W (N, M), N = max(N, M); shape (min(N, M),).

    Conv kernels (kh, kw, c_in, c_out) and other >2-D kernels are first reshaped to
    (prod of leading dims, last dim), i.e. (kh * kw * c_in, c_out).
    """
    w = jnp.asarray(weight)
    if w.ndim < 2:
        raise CapjaxInputError(
            f"weight has shape {w.shape}; the ESD needs a matrix (ndim >= 2), not a bias"
        )
    w = w.reshape(-1, w.shape[-1])
    s = jnp.linalg.svd(w, compute_uv=False)
    return s * s / max(w.shape)


def layer_alphas(params: Any, *, min_tail: int = 10, ks: str = "both") -> dict[str, float]:
    """Power-law alpha of every weight matrix in a parameter pytree (docs/method.md §4).

    Every leaf with ndim >= 2 (dense kernels, conv kernels reshaped as in :func:`esd`,
    embeddings) is fitted; biases and norm scales are skipped. A layer with fewer than
    ``min_tail`` positive eigenvalues gets NaN (too small to have a tail).

    Args:
      params: pytree of arrays, e.g. a Flax ``params`` dict.
      min_tail, ks: see :func:`fit_power_law`; ``ks="lower", min_tail=2`` gives
        WeightWatcher's alphas.

    Returns:
      {pytree path (``jax.tree_util.keystr``): alpha}, in tree order.
    """
    check_finite("params", params, "alpha is undefined for NaN weights; check the run")
    alphas = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if np.ndim(leaf) >= 2:
            fit = fit_power_law(esd(leaf), min_tail=min_tail, ks=ks)
            alphas[jax.tree_util.keystr(path)] = float(fit.alpha)
    if not alphas:
        raise CapjaxInputError(
            "params holds no leaf with ndim >= 2; pass the model's parameter pytree "
            "(with its kernels), not only biases"
        )
    return alphas


def mean_alpha(params: Any, *, min_tail: int = 10) -> float:
    """Mean of :func:`layer_alphas` over the layers that could be fitted (docs/method.md §4).

    Lower = predicted better; negate it for :mod:`capjax.scoring.metrics`. NaN when no layer has
    ``min_tail`` positive eigenvalues.
    """
    values = np.array(list(layer_alphas(params, min_tail=min_tail).values()))
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
