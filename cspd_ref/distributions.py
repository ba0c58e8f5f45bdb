"""Token distributions: diagonal Gaussian mixtures in float64 (docs/algorithms.md §2).

A ``GaussianMixture`` has parameters

* ``weights`` of shape ``(*batch, K)`` — non-negative, summing to 1 over K,
* ``means`` of shape ``(*batch, K, d)``,
* ``scales`` of shape ``(*batch, K, d)`` — standard deviations (not variances), positive,

and density ``p(x) = sum_k w_k prod_j N(x_j; mu_kj, s_kj^2)``. Following ``torch.distributions``,
``batch_shape`` indexes independent distributions and ``event_shape == (d,)``. Everything is
evaluated in log space: ``log_prob`` is a logsumexp over components and nothing exponentiates a
density before a ratio is formed.

The closed forms the statistical battery relies on:

* the projection ``a . x`` of a mixture is the 1-D mixture with means ``mu_k . a`` and scales
  ``sqrt(sum_j a_j^2 s_kj^2)`` (``project``);
* the CDF of a 1-D mixture is ``sum_k w_k Phi((x - mu_k) / s_k)`` (``cdf``);
* the conditional CDF of coordinate j given coordinates < j is
  ``sum_k pi_k(x_<j) Phi((x_j - mu_kj) / s_kj)`` with posterior weights
  ``pi_k ∝ w_k prod_{i<j} N(x_i; mu_ki, s_ki^2)`` (``conditional_cdf``); applying it to every j is
  the Rosenblatt transform, which maps samples of the mixture to iid U(0, 1) (``rosenblatt``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from cspd_ref.validation import (
    FloatArray,
    IntArray,
    as_float64,
    check_gaussian_parameters,
    check_mixture_parameters,
    require_generator,
    require_int,
)

__all__ = [
    "HALF_LOG_TWO_PI",
    "DiagGaussian",
    "GaussianMixture",
    "logsumexp",
    "require_mixture",
    "require_same_event",
]

#: ``log(2 pi) / 2``, the constant of every Gaussian log-density.
HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def logsumexp(values: FloatArray, axis: int = -1, keepdims: bool = False) -> FloatArray:
    """``log(sum(exp(values)))`` along ``axis``, stable; all ``-inf`` gives ``-inf``.

    (``scipy.special.logsumexp`` does the same with far more per-call overhead, which dominates
    the small batches of AR decoding.)
    """
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(values - peak), axis=axis, keepdims=True)) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


class GaussianMixture:
    """A (batch of) diagonal Gaussian mixture(s) in float64.

    Args:
        weights: ``(*batch, K)`` mixture weights, non-negative, summing to 1 within the
            rounding of their dtype (1e-9 for float64; ``validation.weight_sum_tolerance``).
            Float32/float16 weights are converted to float64 and divided by their sum, so
            the mixture is a probability law.
        means: ``(*batch, K, d)`` component means.
        scales: ``(*batch, K, d)`` component standard deviations, strictly positive.
        validate_args: check the arguments (docs/contract.md §4). Internal code that builds
            mixtures from already-validated parameters may pass False.

    Raises:
        ValueError: naming the argument, for NaN/inf, non-positive scales, weights that are
            negative or do not sum to 1, or shapes that do not agree.
    """

    weights: FloatArray
    means: FloatArray
    scales: FloatArray

    def __init__(self, weights: ArrayLike, means: ArrayLike, scales: ArrayLike, *,
                 validate_args: bool = True) -> None:
        if validate_args:
            w, m, s = check_mixture_parameters(weights, means, scales)
        else:
            w = np.asarray(weights, dtype=np.float64)
            m = np.asarray(means, dtype=np.float64)
            s = np.asarray(scales, dtype=np.float64)
        self.weights = w
        self.means = m
        self.scales = s

    # ----------------------------------------------------------------- shape information
    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of the batch of independent distributions (``weights.shape[:-1]``)."""
        return tuple(self.weights.shape[:-1])

    @property
    def dim(self) -> int:
        """Event dimension d."""
        return int(self.means.shape[-1])

    @property
    def n_components(self) -> int:
        """Number of mixture components K."""
        return int(self.weights.shape[-1])

    @property
    def is_single_gaussian(self) -> bool:
        """True when K == 1 (a ``DiagGaussian``)."""
        return self.n_components == 1

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch_shape={self.batch_shape}, K={self.n_components}, "
                f"d={self.dim})")

    # ----------------------------------------------------------------- batch manipulation
    def index_batch(self, index: Any) -> GaussianMixture:
        """The mixture(s) at ``index`` of the batch dimensions (numpy indexing)."""
        return GaussianMixture(self.weights[index], self.means[index], self.scales[index],
                               validate_args=False)

    def expand(self, batch_shape: tuple[int, ...]) -> GaussianMixture:
        """Broadcast to ``batch_shape`` (no copy of the parameters)."""
        k, d = self.n_components, self.dim
        return GaussianMixture(
            np.broadcast_to(self.weights, (*batch_shape, k)),
            np.broadcast_to(self.means, (*batch_shape, k, d)),
            np.broadcast_to(self.scales, (*batch_shape, k, d)),
            validate_args=False,
        )

    # ----------------------------------------------------------------- densities
    def component_log_prob(self, x: ArrayLike) -> FloatArray:
        """``log w_k + log N(x; mu_k, diag(s_k^2))`` for each component: shape ``(..., K)``.

        ``x`` has shape ``(*sample, *batch, d)`` (or anything that broadcasts to it).
        """
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        log_scales = np.log(self.scales)
        if self.batch_shape == () and x.ndim == 2:
            # One (n, d) pass per component without (n, K, d) temporaries: several times
            # faster for large n (the battery evaluates millions of rows).
            out = np.empty((x.shape[0], self.n_components))
            z = np.empty_like(x)
            for k in range(self.n_components):
                np.subtract(x, self.means[k], out=z)
                np.multiply(z, 1.0 / self.scales[k], out=z)
                out[:, k] = -0.5 * np.einsum("ij,ij->i", z, z) - (
                    log_scales[k].sum() + self.dim * HALF_LOG_TWO_PI)
            return out + log_w
        z = (x[..., None, :] - self.means) / self.scales
        per_coordinate = -0.5 * z * z - log_scales - HALF_LOG_TWO_PI
        return per_coordinate.sum(axis=-1) + log_w

    def log_prob(self, x: ArrayLike) -> FloatArray:
        """``log p(x) = logsumexp_k(log w_k + sum_j log N(x_j; mu_kj, s_kj^2))``.

        Args:
            x: ``(*sample, *batch, d)`` points.

        Returns:
            ``(*sample, *batch)`` log-densities (float64).
        """
        return np.asarray(logsumexp(self.component_log_prob(x), axis=-1), dtype=np.float64)

    # ----------------------------------------------------------------- sampling
    def component_index_from_uniforms(self, component_uniforms: ArrayLike) -> IntArray:
        """Inverse-CDF component choice: ``k = #{j < K-1 : u >= W_j}``, ``W`` the cumulative
        weights.

        A zero-weight component is never chosen. ``component_uniforms`` has shape
        ``(*sample, *batch)``.
        """
        u = np.asarray(component_uniforms, dtype=np.float64)
        boundaries = np.cumsum(self.weights, axis=-1)[..., :-1]
        return np.sum(u[..., None] >= boundaries, axis=-1).astype(np.int64)

    def sample_from_noise(self, component_uniforms: ArrayLike, normals: ArrayLike) -> FloatArray:
        """Samples as a pure function of explicit noise.

        ``x = mu_k + s_k * z`` with ``k`` chosen by inverse CDF from ``component_uniforms``.

        Args:
            component_uniforms: ``(*sample, *batch)`` uniforms in [0, 1).
            normals: ``(*sample, *batch, d)`` standard normals.

        Returns:
            ``(*sample, *batch, d)`` samples.
        """
        u = np.asarray(component_uniforms, dtype=np.float64)
        z = np.asarray(normals, dtype=np.float64)
        if z.shape != (*u.shape, self.dim):
            raise ValueError(f"normals: expected shape {(*u.shape, self.dim)}, got {z.shape}")
        k = self.component_index_from_uniforms(u)
        if self.batch_shape == ():
            return np.asarray(self.means[k] + self.scales[k] * z, dtype=np.float64)
        full = (*u.shape, self.n_components, self.dim)
        means = np.broadcast_to(self.means, full)
        scales = np.broadcast_to(self.scales, full)
        picked = k[..., None, None]
        mu = np.take_along_axis(means, picked, axis=-2)[..., 0, :]
        sd = np.take_along_axis(scales, picked, axis=-2)[..., 0, :]
        return mu + sd * z

    def sample(self, n: int, *, rng: np.random.Generator) -> FloatArray:
        """Draw ``n`` samples ``(n, *batch, d)``; the uniforms are drawn before the normals."""
        n = require_int(n, "n")
        rng = require_generator(rng)
        u = rng.random((n, *self.batch_shape))
        z = rng.standard_normal((n, *self.batch_shape, self.dim))
        return self.sample_from_noise(u, z)

    # ----------------------------------------------------------------- closed forms
    def cdf(self, values: ArrayLike) -> FloatArray:
        """CDF of a 1-D mixture: ``F(v) = sum_k w_k Phi((v - mu_k) / s_k)``.

        Args:
            values: scalars of shape ``(*sample, *batch)`` (no trailing event axis).

        Raises:
            ValueError: if the mixture is not 1-D (``d != 1``); project it first.
        """
        if self.dim != 1:
            raise ValueError(f"values: cdf is defined for 1-D mixtures, this one has d={self.dim}; "
                             "use project(direction) first")
        v = np.asarray(values, dtype=np.float64)
        z = (v[..., None] - self.means[..., 0]) / self.scales[..., 0]
        return np.clip(np.sum(self.weights * ndtr(z), axis=-1), 0.0, 1.0)

    def project(self, direction: ArrayLike) -> GaussianMixture:
        """Law of ``a . x`` for ``x`` from this mixture: a 1-D mixture (docs/algorithms.md §2).

        Means ``mu_k . a``, scales ``sqrt(sum_j a_j^2 s_kj^2)``, same weights. The direction is
        used as given (pass a unit vector for a "unit projection").
        """
        a = as_float64(direction, "direction", ndim=1)
        if a.shape[0] != self.dim:
            raise ValueError(f"direction: expected length {self.dim}, got {a.shape[0]}")
        if not np.any(a != 0):
            raise ValueError("direction: must not be the zero vector")
        means = (self.means @ a)[..., None]
        scales = np.sqrt((self.scales**2) @ (a**2))[..., None]
        return GaussianMixture(self.weights, means, scales, validate_args=False)

    def conditional_cdf(self, x: ArrayLike, j: int) -> FloatArray:
        """CDF of coordinate ``j`` given coordinates ``< j``, evaluated at ``x[..., j]``.

        ``sum_k pi_k Phi((x_j - mu_kj)/s_kj)``, ``pi_k ∝ w_k prod_{i<j} N(x_i; mu_ki, s_ki^2)``.
        """
        j = require_int(j, "j")
        if j >= self.dim:
            raise ValueError(f"j: must be < d={self.dim}, got {j}")
        return self.rosenblatt(x)[..., j]

    def rosenblatt(self, x: ArrayLike) -> FloatArray:
        """Rosenblatt transform: every coordinate's conditional CDF given the earlier ones.

        Maps samples of this mixture to iid U(0, 1) in every coordinate (docs/battery.md).

        Args:
            x: ``(*sample, *batch, d)``.

        Returns:
            ``(*sample, *batch, d)`` values in [0, 1].
        """
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_post = np.broadcast_to(np.log(self.weights),
                                       (*x.shape[:-1], self.n_components)).copy()  # (..., K)
        log_scales = np.log(self.scales)
        values = np.empty(x.shape)
        for j in range(self.dim):
            # Posterior weights given coordinates < j: a running sum of log terms, shifted by
            # its maximum over components at every step, so that no large term is ever
            # subtracted again (a cumulative sum minus the current term loses the earlier
            # terms to rounding when one coordinate's term is ~1e19).
            log_post -= np.max(log_post, axis=-1, keepdims=True)
            weights = np.exp(log_post)
            weights /= weights.sum(axis=-1, keepdims=True)
            z = (x[..., j, None] - self.means[..., j]) / self.scales[..., j]  # (..., K)
            values[..., j] = np.sum(weights * ndtr(z), axis=-1)
            log_post += -0.5 * z * z - log_scales[..., j]
        return np.clip(values, 0.0, 1.0)


class DiagGaussian(GaussianMixture):
    """A diagonal Gaussian ``N(mean, diag(scale^2))``: the K = 1 ``GaussianMixture``.

    Args:
        mean: ``(*batch, d)``.
        scale: ``(*batch, d)`` standard deviations, strictly positive.
    """

    def __init__(self, mean: ArrayLike, scale: ArrayLike, *, validate_args: bool = True) -> None:
        if validate_args:
            m, s = check_gaussian_parameters(mean, scale)
        else:
            m = np.asarray(mean, dtype=np.float64)
            s = np.asarray(scale, dtype=np.float64)
        super().__init__(np.ones((*m.shape[:-1], 1)), m[..., None, :], s[..., None, :],
                         validate_args=False)

    @property
    def mean(self) -> FloatArray:
        """``(*batch, d)`` mean."""
        return self.means[..., 0, :]

    @property
    def scale(self) -> FloatArray:
        """``(*batch, d)`` standard deviation."""
        return self.scales[..., 0, :]


def require_mixture(value: Any, name: str) -> GaussianMixture:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a ``GaussianMixture``."""
    if not isinstance(value, GaussianMixture):
        raise ValueError(f"{name}: expected a cspd_ref.GaussianMixture, got {type(value).__name__}")
    return value


def require_same_event(draft: GaussianMixture, target: GaussianMixture) -> None:
    """Raise unless draft and target have the same event dimension and compatible batch shapes."""
    if draft.dim != target.dim:
        raise ValueError(f"target: event dimension {target.dim} differs from draft's {draft.dim}")
    try:
        np.broadcast_shapes(draft.batch_shape, target.batch_shape)
    except ValueError as exc:
        raise ValueError(f"target: batch shape {target.batch_shape} does not broadcast with "
                         f"draft's {draft.batch_shape}") from exc
