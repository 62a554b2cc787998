"""Transferability of features to a labelled task: LogME, H-score, TransRate (docs/method.md §4).

Each score reads a feature matrix ``features`` of shape (n_samples, d) -- e.g. the
penultimate activations of a candidate backbone on the target training set at epoch t --
and integer ``labels`` of shape (n_samples,), and returns one float where HIGHER =
features more transferable (predicted better), the convention of :mod:`capjax.scoring.metrics`.

Classes are the distinct values present in ``labels`` (absent class ids contribute
nothing). The computations are JAX; pass float64 arrays under ``jax.enable_x64`` for
reference-grade precision.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from capjax.base.validation import CapjaxInputError, check_finite


def _feature_matrix(features: Any) -> jax.Array:
    """Check features are a finite (n, d) matrix; return it as a float JAX array."""
    f = jnp.asarray(features)
    if f.ndim != 2:
        raise CapjaxInputError(
            f"features has shape {f.shape}; pass a (n_samples, d) matrix (flatten spatial "
            "dimensions or pool them first)"
        )
    if not jnp.issubdtype(f.dtype, jnp.floating):
        f = f.astype(jnp.result_type(float))
    check_finite("features", f, "features must be finite; check the forward pass")
    return f


SCALE_RANGE = 2.0**20
"""Features whose largest magnitude lies outside ``[1 / SCALE_RANGE, SCALE_RANGE]`` are
rescaled by a power of two before LogME and H-score (exact, and both are invariant to
the scale of the features), so extreme scales stay finite and normal ones do not move."""

TRANSRATE_MAX = 1e15
"""TransRate is not scale-invariant: features larger than this are refused."""


def _rescaled(f: jax.Array) -> jax.Array:
    """``f`` times a power of two that brings its largest magnitude near 1, if it is extreme."""
    top = float(jnp.max(jnp.abs(f)))
    if top == 0 or 1 / SCALE_RANGE <= top <= SCALE_RANGE:
        return f
    return f * jnp.asarray(2.0 ** -np.round(np.log2(top)), f.dtype)


def _features_and_labels(features: Any, labels: Any) -> tuple[jax.Array, np.ndarray, int]:
    """Validate inputs; return (features, labels re-indexed to 0..C-1, C)."""
    f = _feature_matrix(features)
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != f.shape[0]:
        raise CapjaxInputError(
            f"labels has shape {y.shape} for {f.shape[0]} feature rows; pass one integer "
            "class id per row, shape (n_samples,)"
        )
    if y.dtype.kind not in "iub":
        raise CapjaxInputError(
            f"labels has dtype {y.dtype}; pass integer class ids (not one-hot, not floats)"
        )
    classes, y = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise CapjaxInputError(
            f"labels hold {classes.size} class; transferability needs at least 2 classes"
        )
    return f, y, int(classes.size)


def _evidence_from_svd(
    s2: jax.Array,
    z: jax.Array,
    perp_sq: jax.Array,
    n: int,
    d: int,
    alpha: jax.Array,
    beta: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Log evidence of Bayesian linear regression, from the SVD of the features.

    Model (You et al. 2021, "LogME"; Bishop 2006 §3.5): ``y = F w + noise``,
    ``w ~ N(0, I/alpha)``, ``noise ~ N(0, 1/beta)``. With ``F = U S V^T``,
    ``sigma_i = s_i^2``, ``z = U^T y``:

      log p(y | F, alpha, beta) = n/2 log beta + d/2 log alpha - n/2 log 2pi
          - beta/2 ||F m - y||^2 - alpha/2 ||m||^2 - 1/2 sum_{i=1}^{d} log(alpha + beta sigma_i)

    with ``m = beta A^{-1} F^T y``, ``A = alpha I + beta F^T F`` (sigma_i = 0 for
    i > min(n, d)). In the SVD basis ``||m||^2 = sum (beta s_i z_i / (alpha + beta sigma_i))^2``
    and ``||F m - y||^2 = sum (alpha z_i / (alpha + beta sigma_i))^2 + ||y - U z||^2``.

    Args:
      s2: (r,) squared singular values of F (r = min(n, d)).
      z: (r,) projection U^T y.
      perp_sq: ||y - U U^T y||^2, the part of y no weight vector can reach.
      n, d: shape of F.
      alpha, beta: prior precision of the weights and noise precision (> 0).

    Returns:
      (log evidence in nats, ||m||^2, ||F m - y||^2).
    """
    denom = alpha + beta * s2
    m_sq = jnp.sum((beta * jnp.sqrt(s2) * z / denom) ** 2)
    res_sq = jnp.sum((alpha * z / denom) ** 2) + perp_sq
    log_det = jnp.sum(jnp.log(denom)) + (d - s2.shape[0]) * jnp.log(alpha)
    evidence = (
        0.5 * n * jnp.log(beta)
        + 0.5 * d * jnp.log(alpha)
        - 0.5 * n * jnp.log(2 * jnp.pi)
        - 0.5 * beta * res_sq
        - 0.5 * alpha * m_sq
        - 0.5 * log_det
    )
    return evidence, m_sq, res_sq


def _max_evidence(
    s2: jax.Array, z: jax.Array, perp_sq: jax.Array, n: int, d: int, tol: float, max_iter: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """MacKay's fixed point for (alpha, beta); returns (evidence, alpha, beta).

    ``gamma = sum_i beta sigma_i / (alpha + beta sigma_i)``, ``alpha <- gamma / ||m||^2``,
    ``beta <- (n - gamma) / ||F m - y||^2``, from alpha = beta = 1.

    It stops when the evidence changes by at most ``tol * max(1, |evidence|)``, after
    ``max_iter`` updates, or when an update would leave the finite range. The last rule
    matters when d >= n: the features then fit y exactly, the evidence is maximised in
    the limit beta -> inf, and beta grows without bound while the evidence converges.
    """

    def update(state):
        alpha, beta, evidence, _, it = state
        _, m_sq, res_sq = _evidence_from_svd(s2, z, perp_sq, n, d, alpha, beta)
        gamma = jnp.sum(beta * s2 / (alpha + beta * s2))
        new_alpha = gamma / m_sq
        new_beta = (n - gamma) / res_sq
        new_evidence, _, _ = _evidence_from_svd(s2, z, perp_sq, n, d, new_alpha, new_beta)
        ok = jnp.isfinite(new_evidence) & (new_alpha > 0) & (new_beta > 0)
        moving = jnp.abs(new_evidence - evidence) > tol * jnp.maximum(1.0, jnp.abs(evidence))
        keep = functools.partial(jnp.where, ok)
        return (
            keep(new_alpha, alpha),
            keep(new_beta, beta),
            keep(new_evidence, evidence),
            ok & moving,
            it + 1,
        )

    def not_done(state):
        *_, going, it = state
        return going & (it < max_iter)

    one = jnp.ones((), s2.dtype)
    start_evidence, _, _ = _evidence_from_svd(s2, z, perp_sq, n, d, one, one)
    alpha, beta, evidence, _, _ = jax.lax.while_loop(
        not_done, update, (one, one, start_evidence, jnp.array(True), 0)
    )
    return evidence, alpha, beta


def _left_singular(f: Any) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors ``(n, r)`` and squared singular values ``(r,)`` of ``f``, float64.

    Computed on the host with LAPACK: when ``n < d`` (wide features, e.g. a flattened conv
    map on a small probe batch) from ``eigh`` of the ``(n, n)`` Gram matrix ``f f^T``, which
    costs ``O(n^2 d)``; otherwise from the thin SVD. (XLA's CPU eigensolvers are one to two
    orders of magnitude slower than LAPACK at these sizes, and these scores are host-side.)
    """
    f = np.asarray(f, dtype=np.float64)
    n, d = f.shape
    if n < d:
        s2, u = np.linalg.eigh(f @ f.T)
        return u, np.clip(s2, 0.0, None)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    return u, s * s


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _max_evidence_columns(
    u: jax.Array, s2: jax.Array, targets: jax.Array, n: int, d: int, tol: float, max_iter: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Max evidence, alpha, beta for each column of targets (n, k), from one decomposition of F."""
    z = u.T @ targets  # (r, k)
    # ||y - U z||^2 summed directly, not as ||y||^2 - ||z||^2, which cancels to noise
    # when U spans (almost) all of y and beta is large.
    perp_sq = jnp.sum((targets - u @ z) ** 2, axis=0)  # (k,)
    return jax.vmap(
        lambda zk, pk: _max_evidence(s2, zk, pk, n, d, tol, max_iter), in_axes=(1, 0)
    )(z, perp_sq)


def _evidence_columns(f: jax.Array, targets: jax.Array, tol: float, max_iter: int):
    u, s2 = _left_singular(f)
    return _max_evidence_columns(
        jnp.asarray(u, f.dtype), jnp.asarray(s2, f.dtype), targets, *f.shape, tol, max_iter
    )


def max_evidence(
    features: Any, target: Any, *, tol: float = 1e-7, max_iter: int = 100
) -> tuple[float, float, float]:
    """Evidence of Bayesian linear regression of ``target`` on ``features``, maximised.

    ``max_{alpha, beta} log p(target | features, alpha, beta)`` for the model
    ``target = features @ w + noise``, ``w ~ N(0, I/alpha)``, ``noise ~ N(0, 1/beta)``,
    by MacKay's fixed point (docs/method.md §4; You et al. 2021). LogME of a regression target is
    this value divided by n.

    Args:
      features: (n, d) float feature matrix.
      target: (n,) real-valued target.
      tol, max_iter: stopping rule of the fixed point (see :func:`logme`).

    Returns:
      (log evidence in nats, alpha, beta) at the fixed point.
    """
    f = _feature_matrix(features)
    t = jnp.asarray(target, dtype=f.dtype)
    if t.shape != (f.shape[0],):
        raise CapjaxInputError(
            f"target has shape {t.shape} for {f.shape[0]} feature rows; pass target (n,)"
        )
    check_finite("target", t)
    evidence, alpha, beta = _evidence_columns(f, t[:, None], tol, max_iter)
    return float(evidence[0]), float(alpha[0]), float(beta[0])


def logme(features: Any, labels: Any, *, tol: float = 1e-7, max_iter: int = 100) -> float:
    """LogME: per-sample log maximum evidence of a linear model on the features (docs/method.md §4).

    For each class k, the target is the one-hot column ``y_k`` (n,); the evidence
    ``log p(y_k | F, alpha_k, beta_k)`` (see :func:`max_evidence`) is maximised over
    (alpha_k, beta_k) by MacKay's fixed point (You et al. 2021, Alg. 1), and

      ``LogME = (1/C) sum_k max_{alpha,beta} log p(y_k | F, alpha, beta) / n``.

    One SVD of F serves every class and every iteration. Units: nats per sample. The
    evidence does not depend on the scale of F, so extreme scales are first brought near
    1 by a power of two (:data:`SCALE_RANGE`).

    Args:
      features: (n, d) float feature matrix.
      labels: (n,) integer class ids.
      tol: the fixed point stops when the evidence changes by at most
        ``tol * max(1, |evidence|)``.
      max_iter: cap on fixed-point updates per class.
    """
    f, y, n_classes = _features_and_labels(features, labels)
    f = _rescaled(f)
    targets = jax.nn.one_hot(jnp.asarray(y), n_classes, dtype=f.dtype)
    evidence, _, _ = _evidence_columns(f, targets, tol, max_iter)
    return float(jnp.mean(evidence) / f.shape[0])


def h_score(features: Any, labels: Any) -> float:
    """H-score (Bao et al. 2019): ``tr(cov(f)^+ cov(E[f | y]))`` (docs/method.md §4).

    ``cov(f)`` is the (d, d) feature covariance and ``cov(E[f | y])`` the covariance,
    over samples, of each sample's class-mean feature, i.e.
    ``sum_k (n_k/n) (mu_k - mu)(mu_k - mu)^T``. The pseudo-inverse handles d > n and
    collinear features. Dimensionless; at most min(d, C - 1).

    Args:
      features: (n, d) float feature matrix.
      labels: (n,) integer class ids.
    """
    f, y, n_classes = _features_and_labels(features, labels)
    return float(_h_score(_rescaled(f), jnp.asarray(y), n_classes))


def _h_score(f: jax.Array, y: jax.Array, n_classes: int) -> float:
    # With Z = centred = U S V^T and B = sqrt(n_k / n) mu_k stacked (C, d):
    # tr(pinv(Z^T Z / n) B^T B) = n ||S^-2 U^T Z B^T||_F^2 over the kept singular values,
    # so only the smaller Gram matrix is ever decomposed.
    eps = np.finfo(np.asarray(f).dtype).eps  # the pinv cutoff follows the input's precision
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y)
    n, d = f.shape
    centred = f - f.mean(axis=0)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    class_means = np.stack([centred[y == k].mean(axis=0) if counts[k] else np.zeros(d) for k in range(n_classes)])
    b = class_means * np.sqrt(counts / n)[:, None]  # (C, d)
    u, s2 = _left_singular(centred)
    # The cutoff of numpy's hermitian pinv on cov_f = Z^T Z / n.
    keep = s2 > s2.max() * 10 * max(n, d) * eps
    proj = u[:, keep].T @ (centred @ b.T)  # (r_kept, C)
    return float(n * np.sum((proj / s2[keep][:, None]) ** 2))


def coding_rate(z: Any, eps: float = 1e-4) -> float:
    """Rate-distortion coding rate ``R(Z, eps) = 1/2 log det(I_d + Z^T Z / (n eps))``.

    Evaluated from the singular values of Z, ``1/2 sum_i log(1 + s_i^2 / (n eps))``,
    which also serves n < d. (Ma et al. 2007; as used by TransRate, where ``eps`` plays
    the role of the squared distortion.)

    Args:
      z: (n, d) features.
      eps: distortion, > 0.
    """
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    # Sylvester: det(I_d + Z^T Z c) = det(I_n + Z Z^T c); decompose the smaller Gram.
    gram = z @ z.T if n < d else z.T @ z
    s2 = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    return float(0.5 * np.sum(np.log1p(s2 / (n * eps))))


def transrate(features: Any, labels: Any, eps: float = 1e-4) -> float:
    """TransRate (Huang et al. 2022): ``R(Z, eps) - (1/C) sum_k R(Z_k, eps)`` (docs/method.md §4).

    Z are the features centred over all samples and Z_k the rows of class k; R is
    :func:`coding_rate`. The class term is the plain average over classes, as in the
    authors' released code (equal to the class-frequency weighting for balanced data).
    Units: nats. Not scale-invariant: compare candidates on comparably scaled features;
    features above :data:`TRANSRATE_MAX` are refused.

    Args:
      features: (n, d) float feature matrix.
      labels: (n,) integer class ids.
      eps: distortion of the coding rate, > 0.
    """
    if not eps > 0:
        raise CapjaxInputError(f"eps={eps}; the coding-rate distortion must be > 0")
    f, y, n_classes = _features_and_labels(features, labels)
    top = float(jnp.max(jnp.abs(f)))
    if top > TRANSRATE_MAX:
        raise CapjaxInputError(
            f"features reach {top:.3g}; TransRate depends on their scale and overflows there: rescale them "
            f"(e.g. divide by their standard deviation) below {TRANSRATE_MAX:g}"
        )
    z = f - f.mean(axis=0)
    # Classes have different sizes, so this is a host loop; each Gram is (n_k, n_k).
    per_class = [coding_rate(z[np.flatnonzero(y == k)], eps) for k in range(n_classes)]
    return float(coding_rate(z, eps) - sum(per_class) / n_classes)
