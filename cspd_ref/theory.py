"""Theory: TV distance, acceptance, groups per pass, speed-up (docs/algorithms.md §5.3, §6).

Conventions (as everywhere in cspd): the draft comes before the target in every signature
(``tv_distance(draft, target)``, like ``speculative_sample(draft, target, ...)``), and a random
generator is keyword-only (``*, rng=``), as in scipy. In the formulas ``p`` is the target's
density and ``q`` the draft's.

``P(accept) = 1 - TV(p, q)`` with ``TV = ∫ max(0, p - q) = ½ ∫ |p - q|``.

* Equal-scale single Gaussians: ``TV = 2 Phi(delta / 2) - 1``, delta the Mahalanobis distance
  (``tv_equal_scale_gaussians``).
* 1-D mixtures: the densities cross where ``log p = log q``; between consecutive crossings
  the sign of ``p - q`` is constant, so ``TV = sum over {p > q} intervals of
  (P(b) - P(a)) - (Q(b) - Q(a))`` with the closed-form mixture CDFs (``density_crossings_1d``).
* Otherwise: importance-sampled Monte Carlo with the balanced proposal ``m = (p + q) / 2``:
  ``TV = E_m[|p - q| / (p + q)] = E_m[|tanh((log p - log q) / 2)|]``, an average of values in
  [0, 1], reported with its standard error.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

from cspd_ref.distributions import GaussianMixture, require_mixture, require_same_event
from cspd_ref.validation import FloatArray, as_float64, require_generator, require_int

DEFAULT_MC_SAMPLES = 200_000
GRID_POINTS_PER_COMPONENT = 400
MC_CHUNK = 65536


@dataclass(frozen=True)
class TVEstimate:
    """A TV distance with its numerical error.

    Attributes:
        value: the estimate of ``TV(p, q)``.
        stderr: its standard error (0 for closed forms; ~1e-12 for 1-D crossings).
        method: ``"closed_form" | "crossings_1d" | "monte_carlo"``.

    Examples:
        >>> TVEstimate(0.25, 0.0, "closed_form").value
        0.25
    """

    value: float
    stderr: float
    method: str


def tv_equal_scale_gaussians(mean_draft: FloatArray, mean_target: FloatArray,
                             scale: FloatArray) -> float:
    """``TV(N(mu_q, S^2), N(mu_p, S^2)) = 2 Phi(delta/2) - 1``, ``delta = ||S^{-1}(mu_p - mu_q)||``
    (``mu_q`` the draft's mean, ``mu_p`` the target's, ``S`` their common diagonal scale).

    Computed as ``erf(delta / (2 sqrt 2))`` to keep precision when delta is small.

    Examples:
        >>> import numpy as np
        >>> tv = tv_equal_scale_gaussians(np.array([0.0]), np.array([2.0]), np.array([1.0]))
        >>> round(tv, 6)  # 2 Phi(1) - 1
        0.682689
    """
    delta = float(np.linalg.norm((np.asarray(mean_target) - np.asarray(mean_draft))
                                 / np.asarray(scale)))
    return math.erf(delta / (2.0 * math.sqrt(2.0)))


def density_crossings_1d(draft: GaussianMixture, target: GaussianMixture) -> FloatArray:
    """Points where ``log p(x) = log q(x)`` for 1-D mixtures (sorted; ``p`` the target, ``q`` the
    draft).

    A grid dense around every component (``GRID_POINTS_PER_COMPONENT`` points over
    ``mu ± 12 s`` plus a wide coarse grid) brackets the sign changes of ``log p - log q``;
    ``brentq`` refines each to machine precision.

    Examples:
        >>> from cspd_ref import DiagGaussian
        >>> density_crossings_1d(DiagGaussian([0.0], [2.0]), DiagGaussian([0.0], [1.0])).round(4)
        array([-1.3596,  1.3596])
    """
    p, q = target, draft
    centres = np.concatenate([p.means[:, 0], q.means[:, 0]])
    widths = np.concatenate([p.scales[:, 0], q.scales[:, 0]])
    local = (centres[:, None] + widths[:, None]
             * np.linspace(-12.0, 12.0, GRID_POINTS_PER_COMPONENT)[None, :]).ravel()
    lo = float(np.min(centres - 40 * widths))
    hi = float(np.max(centres + 40 * widths))
    grid = np.unique(np.concatenate([local, np.linspace(lo, hi, 4000)]))

    def diff(x: float | FloatArray) -> FloatArray:
        xs = np.atleast_1d(np.asarray(x, dtype=np.float64))[:, None]
        return p.log_prob(xs) - q.log_prob(xs)

    values = diff(grid)
    sign = np.sign(values)
    roots: list[float] = []
    for i in np.flatnonzero(sign[:-1] * sign[1:] < 0):
        roots.append(brentq(lambda x: float(diff(x)[0]), grid[i], grid[i + 1], xtol=1e-14,
                            rtol=4 * np.finfo(float).eps))
    roots.extend(grid[sign == 0].tolist())
    return np.array(sorted(roots))


def tv_crossings_1d(draft: GaussianMixture, target: GaussianMixture) -> float:
    """Exact-to-rounding TV of 1-D mixtures from the density crossings and the mixture CDFs.

    Examples:
        >>> from cspd_ref import DiagGaussian, GaussianMixture
        >>> target = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])
        >>> round(tv_crossings_1d(DiagGaussian([0.0], [1.0]), target), 6)
        0.265705
    """
    p, q = target, draft
    roots = density_crossings_1d(draft, target)
    edges = np.concatenate([[-np.inf], roots, [np.inf]])
    total = 0.0
    for a, b in itertools.pairwise(edges):
        if np.isfinite(a) and np.isfinite(b):
            mid = 0.5 * (a + b)
        elif np.isfinite(b):
            mid = b - 1.0 - abs(b)
        elif np.isfinite(a):
            mid = a + 1.0 + abs(a)
        else:
            mid = 0.0
        x = np.array([[mid]])
        if (p.log_prob(x) - q.log_prob(x))[0] > 0:
            total += mixture_mass(p, a, b) - mixture_mass(q, a, b)
    return float(min(1.0, max(0.0, total)))


def mixture_mass(m: GaussianMixture, a: float, b: float) -> float:
    """``P(a < X < b)`` for a 1-D mixture, using upper tails where they are more precise.

    Examples:
        >>> from cspd_ref import DiagGaussian
        >>> round(mixture_mass(DiagGaussian([0.0], [1.0]), -1.0, 1.0), 6)
        0.682689
    """
    mu, s, w = m.means[:, 0], m.scales[:, 0], m.weights
    za, zb = (a - mu) / s, (b - mu) / s
    lower = ndtr(zb) - ndtr(za)
    upper = ndtr(-za) - ndtr(-zb)
    per = np.where(za > 0, upper, lower)
    return float(np.sum(w * per))


def tv_integrand_samples(draft: GaussianMixture, target: GaussianMixture, *,
                         rng: np.random.Generator,
                         n_samples: int) -> tuple[FloatArray, FloatArray]:
    """``f = |tanh((log p - log q) / 2)|`` at ``n_samples // 2`` draws from the target ``p``
    and the rest from the draft ``q`` (the two strata of the balanced proposal
    ``m = (p + q) / 2``); values in [0, 1]. Returns ``(f at the target draws, f at the draft
    draws)``.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref import DiagGaussian
        >>> fp, fq = tv_integrand_samples(DiagGaussian([0.0], [1.0]), DiagGaussian([1.0], [1.0]),
        ...                               rng=np.random.default_rng(0), n_samples=11)
        >>> fp.shape, fq.shape, bool(np.all((fp >= 0) & (fp <= 1)))
        ((5,), (6,), True)
    """
    p, q = target, draft
    half = n_samples // 2
    xs = np.concatenate([p.sample(half, rng=rng), q.sample(n_samples - half, rng=rng)])
    f = np.empty(n_samples)
    for start in range(0, n_samples, MC_CHUNK):
        chunk = xs[start:start + MC_CHUNK]
        f[start:start + MC_CHUNK] = np.abs(np.tanh(0.5 * (p.log_prob(chunk) - q.log_prob(chunk))))
    return f[:half], f[half:]


def tv_monte_carlo(draft: GaussianMixture, target: GaussianMixture, *,
                   rng: np.random.Generator, n_samples: int = DEFAULT_MC_SAMPLES) -> TVEstimate:
    """Importance-sampled MC: ``TV = E_m[|tanh((log p - log q)/2)|]``, ``m = (p + q)/2``.

    Half the samples come from the target p and half from the draft q (a stratified draw from
    m); the standard error is the stratified one (for a guaranteed interval use ``tv_bounds``).

    Examples:
        >>> import numpy as np
        >>> from cspd_ref import DiagGaussian
        >>> est = tv_monte_carlo(DiagGaussian([0.0, 0.0], [1.0, 1.0]),
        ...                      DiagGaussian([2.0, 0.0], [1.0, 1.0]),
        ...                      rng=np.random.default_rng(0), n_samples=20_000)
        >>> abs(est.value - 0.682689) < 5 * est.stderr, est.method  # exact: 2 Phi(1) - 1
        (True, 'monte_carlo')
    """
    n_samples = require_int(n_samples, "n_samples", minimum=4)
    fp, fq = tv_integrand_samples(draft, target, rng=rng, n_samples=n_samples)
    value = 0.5 * (fp.mean() + fq.mean())
    stderr = 0.5 * math.sqrt(fp.var(ddof=1) / fp.size + fq.var(ddof=1) / fq.size)
    return TVEstimate(value=float(value), stderr=float(stderr), method="monte_carlo")


def tv_method(draft: GaussianMixture, target: GaussianMixture) -> str:
    """Which TV method applies: ``"closed_form"`` (equal-scale single Gaussians),
    ``"crossings_1d"`` (d = 1) or ``"monte_carlo"``.

    Raises:
        ValueError: mismatched dimensions or batched mixtures.

    Examples:
        >>> from cspd_ref import DiagGaussian
        >>> tv_method(DiagGaussian([0.0, 0.0], [1.0, 1.0]), DiagGaussian([1.0, 0.0], [1.0, 1.0]))
        'closed_form'
        >>> tv_method(DiagGaussian([0.0, 0.0], [1.0, 1.0]), DiagGaussian([1.0, 0.0], [2.0, 1.0]))
        'monte_carlo'
    """
    require_mixture(draft, "draft")
    require_mixture(target, "target")
    require_same_event(draft, target)
    p, q = target, draft
    if p.batch_shape != () or q.batch_shape != ():
        raise ValueError("target: tv_distance takes single mixtures (batch shape ())")
    if p.is_single_gaussian and q.is_single_gaussian and np.array_equal(p.scales, q.scales):
        return "closed_form"
    if p.dim == 1:
        return "crossings_1d"
    return "monte_carlo"


def tv_distance(draft: GaussianMixture, target: GaussianMixture, *,
                rng: np.random.Generator | None = None,
                n_samples: int = DEFAULT_MC_SAMPLES) -> TVEstimate:
    """``TV(p, q) = ∫ max(0, p - q)`` in float64 (``p`` the target, ``q`` the draft), by the most
    exact method available.

    Equal-scale single Gaussians: closed form. 1-D: density crossings + CDFs. Otherwise
    Monte Carlo (``rng`` required) with its standard error.

    Raises:
        ValueError: for mismatched dimensions, batched mixtures, or a missing ``rng`` when
            Monte Carlo is needed.

    Examples:
        >>> from cspd_ref import DiagGaussian, GaussianMixture
        >>> target = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])
        >>> tv_distance(DiagGaussian([0.0], [1.0]), target)
        TVEstimate(value=0.265705..., stderr=1e-12, method='crossings_1d')
    """
    method = tv_method(draft, target)
    if method == "closed_form":
        value = tv_equal_scale_gaussians(draft.means[0], target.means[0], target.scales[0])
        return TVEstimate(value=value, stderr=0.0, method="closed_form")
    if method == "crossings_1d":
        return TVEstimate(value=tv_crossings_1d(draft, target), stderr=1e-12,
                          method="crossings_1d")
    if rng is None:
        raise ValueError("rng: a numpy.random.Generator is required for the Monte Carlo TV "
                         f"estimate (d = {target.dim}, not equal-scale Gaussians)")
    return tv_monte_carlo(draft, target, rng=require_generator(rng), n_samples=n_samples)


@dataclass(frozen=True)
class TVBounds:
    """A guaranteed interval for ``TV(p, q)``.

    Attributes:
        value: the point value (exact, or the Monte Carlo estimate).
        lower, upper: the interval; it contains the true TV except with probability
            ``miss_probability``.
        miss_probability: 0 for the exact methods.
        method: ``"closed_form" | "crossings_1d" | "monte_carlo"``.
        n_samples: Monte Carlo draws (0 for the exact methods).

    Examples:
        >>> TVBounds(0.3, 0.25, 0.4, 1e-3, "monte_carlo", 1000).half_width
        0.10000000000000003
    """

    value: float
    lower: float
    upper: float
    miss_probability: float
    method: str
    n_samples: int = 0

    @property
    def half_width(self) -> float:
        """``max(value - lower, upper - value)``."""
        return max(self.value - self.lower, self.upper - self.value)


#: Bound on the float64 error of the 1-D crossings TV (root finding to 1e-14 and ``ndtr``,
#: both accurate to a few ulps; the bound leaves four orders of magnitude of slack).
CROSSINGS_ERROR_BOUND = 1e-10


def empirical_bernstein_half_width(values: FloatArray, delta: float, value_range: float = 1.0,
                                   ) -> float:
    """One-sided empirical Bernstein deviation (Maurer & Pontil 2009, Theorem 4).

    For iid ``Z_i`` in an interval of length ``R`` and ``n >= 2``, with probability at least
    ``1 - delta``: ``E Z - mean(Z) <= sqrt(2 V ln(2/delta) / n) + 7 R ln(2/delta) / (3 (n - 1))``,
    ``V`` the unbiased sample variance. Valid for every n (non-asymptotic).

    Examples:
        >>> import numpy as np
        >>> round(empirical_bernstein_half_width(np.full(100, 0.5), 0.01), 6)  # V = 0
        0.124876
    """
    n = values.shape[0]
    log_term = math.log(2.0 / delta)
    variance = float(values.var(ddof=1))
    return math.sqrt(2.0 * variance * log_term / n) + 7.0 * value_range * log_term / (3.0 * (n - 1))


def tv_bounds(draft: GaussianMixture, target: GaussianMixture, *, miss_probability: float,
              rng: np.random.Generator | None = None,
              n_samples: int = DEFAULT_MC_SAMPLES) -> TVBounds:
    """A guaranteed interval for ``TV(p, q)``: exact where possible, else Monte Carlo with an
    empirical-Bernstein interval.

    Maths: equal-scale single Gaussians have the closed form (interval of width 0); 1-D mixtures
    the crossings method (error below ``CROSSINGS_ERROR_BOUND``). Otherwise the stratified
    estimator of ``tv_monte_carlo``: ``TV = (E_p f + E_q f) / 2`` with
    ``f = |tanh((log p - log q) / 2)|`` in [0, 1]. The pairs ``g_i = (f(X_i) + f(Y_i)) / 2``,
    ``X_i ~ p``, ``Y_i ~ q``, are iid in [0, 1] with mean TV; a two-sided empirical Bernstein
    interval (``miss_probability / 2`` per side) contains the true TV with probability at least
    ``1 - miss_probability``, for every sample size.

    Args:
        draft, target: single mixtures of the same dimension (``q`` and ``p``).
        miss_probability: in (0, 1); ignored by the exact methods.
        rng: required when Monte Carlo is needed (keyword-only).
        n_samples: Monte Carlo draws (half from each of p and q), ``>= 4``.

    Raises:
        ValueError: as ``tv_distance``; ``miss_probability`` outside (0, 1).

    Examples:
        >>> import numpy as np
        >>> from cspd_ref import GaussianMixture
        >>> target = GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]])
        >>> draft = GaussianMixture([1.0], [[0.5, 0.0]], [[1.5, 1.0]])
        >>> b = tv_bounds(draft, target, miss_probability=1e-6, rng=np.random.default_rng(0),
        ...               n_samples=100_000)
        >>> b.lower < b.value < b.upper, b.method
        (True, 'monte_carlo')
    """
    miss = float(miss_probability)
    if not 0.0 < miss < 1.0:
        raise ValueError(f"miss_probability: must lie in (0, 1), got {miss_probability}")
    method = tv_method(draft, target)
    if method != "monte_carlo":
        v = tv_distance(draft, target).value
        err = 0.0 if method == "closed_form" else CROSSINGS_ERROR_BOUND
        return TVBounds(v, max(0.0, v - err), min(1.0, v + err), 0.0, method)
    if rng is None:
        raise ValueError("rng: a numpy.random.Generator is required for the Monte Carlo TV "
                         f"bounds (d = {target.dim}, not equal-scale Gaussians)")
    n_samples = require_int(n_samples, "n_samples", minimum=4)
    fp, fq = tv_integrand_samples(draft, target, rng=require_generator(rng),
                                  n_samples=2 * (n_samples // 2))
    pairs = 0.5 * (fp + fq)
    value = float(pairs.mean())
    half = empirical_bernstein_half_width(pairs, miss / 2.0)
    return TVBounds(value, max(0.0, value - half), min(1.0, value + half), miss, "monte_carlo",
                    n_samples)


def expected_acceptance(draft: GaussianMixture, target: GaussianMixture, *,
                        rng: np.random.Generator | None = None,
                        n_samples: int = DEFAULT_MC_SAMPLES) -> TVEstimate:
    """``P(accept) = 1 - TV(p, q)`` with the TV's standard error (arguments as ``tv_distance``).

    Examples:
        >>> from cspd_ref import DiagGaussian
        >>> expected_acceptance(DiagGaussian([0.0], [1.0]), DiagGaussian([2.0], [1.0]))
        TVEstimate(value=0.317310..., stderr=0.0, method='closed_form')
    """
    tv = tv_distance(draft, target, rng=rng, n_samples=n_samples)
    return TVEstimate(value=1.0 - tv.value, stderr=tv.stderr, method=tv.method)


def require_rate(a: float, name: str) -> float:
    """Validate a probability in [0, 1] (``name`` starts the error message).

    Examples:
        >>> require_rate(0.25, "a")
        0.25
    """
    value = float(as_float64(a, name, ndim=0))
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must lie in [0, 1], got {value}")
    return value


def expected_groups_per_pass(a: float, gamma: int) -> float:
    """``E[groups per target pass] = sum_{i=0}^{gamma} a^i = (1 - a^(gamma+1)) / (1 - a)``
    (bonus group included; Leviathan et al. 2023). ``a = 1`` gives ``gamma + 1``.

    Examples:
        >>> expected_groups_per_pass(0.5, 3)  # 1 + 1/2 + 1/4 + 1/8
        1.875
    """
    a = require_rate(a, "a")
    gamma = require_int(gamma, "gamma", minimum=1)
    if a == 1.0:
        return float(gamma + 1)
    return float(-math.expm1((gamma + 1) * math.log(a)) / (1.0 - a)) if a > 0 else 1.0


def expected_speedup(a: float, gamma: int, cost_ratio: float) -> float:
    """``(1 - a^(gamma+1)) / ((1 - a)(gamma c + 1))``: groups per unit of target-pass cost when
    one round costs one target pass plus ``gamma`` draft passes of relative cost ``c``.

    Examples:
        >>> round(expected_speedup(0.5, 3, 0.1), 6)  # 1.875 / 1.3
        1.442308
    """
    c = float(as_float64(cost_ratio, "cost_ratio", ndim=0))
    if c < 0:
        raise ValueError(f"cost_ratio: must be >= 0, got {c}")
    return expected_groups_per_pass(a, gamma) / (gamma * c + 1.0)
