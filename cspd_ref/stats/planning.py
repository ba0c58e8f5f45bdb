"""Sample-size planning for the battery: sizes planned from the effect to detect
(docs/battery.md §4)."""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import stats

from cspd_ref.stats.arguments import require_in_closed_unit_interval, require_in_open_unit_interval
from cspd_ref.validation import require_int


def dkw_sample_size(epsilon: float, alpha: float) -> int:
    """Smallest ``n`` with ``2 exp(-2 n epsilon^2) <= alpha``: ``ceil(ln(2/alpha) / (2 eps^2))``.

    Maths: the Dvoretzky–Kiefer–Wolfowitz inequality with Massart's constant,
    ``P(sup_t |F_n(t) - F(t)| > eps) <= 2 exp(-2 n eps^2)``, holds for every n and every
    continuous F. With this n, a KS distance of ``eps`` between the sampled law and the target is
    exceeded by chance with probability at most ``alpha``; a sampler whose law is at KS distance
    ``2 eps`` from the target gives ``D_n > eps`` with probability at least ``1 - alpha``
    (triangle inequality), so it is flagged by a test with critical value ``<= eps``.

    Args:
        epsilon: KS distance in (0, 1].
        alpha: probability in (0, 1).

    Examples:
        >>> dkw_sample_size(0.01, 0.05)
        18445
    """
    epsilon = require_in_closed_unit_interval(epsilon, "epsilon")
    if epsilon <= 0.0:
        raise ValueError(f"epsilon: must be > 0, got {epsilon}")
    alpha = require_in_open_unit_interval(alpha, "alpha")
    return math.ceil(math.log(2.0 / alpha) / (2.0 * epsilon * epsilon))


def dkw_detectable_distance(n: int, alpha: float) -> float:
    """The DKW band half-width ``eps = sqrt(ln(2/alpha) / (2 n))`` (inverse of ``dkw_sample_size``).

    ``P(sup |F_n - F| > eps) <= alpha``: a KS statistic above ``eps`` is significant at level
    ``alpha`` (conservatively; the exact KS critical value is slightly smaller).

    Args:
        n: sample size >= 1.
        alpha: probability in (0, 1).

    Examples:
        >>> round(dkw_detectable_distance(10_000, 0.05), 6)
        0.013581
    """
    n = require_int(n, "n", minimum=1)
    alpha = require_in_open_unit_interval(alpha, "alpha")
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def ks_power_constant(alpha: float, power: float) -> float:
    """``sqrt(ln(2/alpha)/2) + sqrt(ln(2/(1 - power))/2)``: the one-sample KS distance detectable
    with probability ``power`` at level ``alpha`` is this over ``sqrt(n)``
    (``ks_detectable_distance``).

    Examples:
        >>> round(ks_power_constant(1e-4, 0.99), 6)
        3.852875
    """
    alpha = require_in_open_unit_interval(alpha, "alpha")
    power = require_in_open_unit_interval(power, "power")
    return (math.sqrt(math.log(2.0 / alpha) / 2.0)
            + math.sqrt(math.log(2.0 / (1.0 - power)) / 2.0))


def ks_detectable_distance(n: int, alpha: float, power: float) -> float:
    """KS distance that the exact one-sample KS test at level ``alpha`` flags with probability
    at least ``power`` at sample size ``n`` (a guarantee, not an approximation).

    Maths: the exact critical value is at most the DKW–Massart one, ``c = sqrt(ln(2/alpha)/(2n))``
    (``P(D_n > c) <= 2 exp(-2 n c^2)``). If the sampled law ``G`` is at KS distance ``delta``
    from the target ``F``, ``D_n >= delta - sup |F_n - G|`` and, by DKW under ``G``,
    ``sup |F_n - G| <= t = sqrt(ln(2/(1 - power))/(2n))`` with probability ``>= power``. So
    ``delta >= c + t`` is flagged with probability ``>= power``.

    Examples:
        >>> round(ks_detectable_distance(1_000_000, 1e-8, 0.99), 4)
        0.0047
    """
    n = require_int(n, "n", minimum=1)
    return ks_power_constant(alpha, power) / math.sqrt(n)


def ks_sample_size(epsilon: float, alpha: float, power: float) -> int:
    """Smallest ``n`` with ``ks_detectable_distance(n, alpha, power) <= epsilon``.

    Examples:
        >>> ks_sample_size(0.005, 1e-8, 0.99)
        890778
    """
    epsilon = require_in_closed_unit_interval(epsilon, "epsilon")
    if epsilon <= 0.0:
        raise ValueError(f"epsilon: must be > 0, got {epsilon}")
    root = ks_power_constant(alpha, power) / epsilon
    return math.ceil(root * root)


def ks2_detectable_distance(n: int, alpha: float, power: float) -> float:
    """KS distance flagged with probability ``>= power`` by the exact two-sample KS test of
    ``n`` sampler values against ``n`` reference values at level ``alpha``.

    Maths: under the null ``D_{n,n} <= sup|F_x - F| + sup|F_y - F|``, so by DKW the critical
    value is at most ``c = sqrt(2 ln(4/alpha) / n)``; under an alternative at distance
    ``delta``, ``D >= delta - sup|F_x - G| - sup|F_y - F|``, both terms below
    ``t = sqrt(ln(4/(1 - power)) / (2n))`` with probability ``>= power``: ``delta >= c + 2t``.

    Examples:
        >>> round(ks2_detectable_distance(1_000_000, 1e-8, 0.99), 4)
        0.0098
    """
    n = require_int(n, "n", minimum=1)
    alpha = require_in_open_unit_interval(alpha, "alpha")
    power = require_in_open_unit_interval(power, "power")
    return (math.sqrt(2.0 * math.log(4.0 / alpha))
            + 2.0 * math.sqrt(math.log(4.0 / (1.0 - power)) / 2.0)) / math.sqrt(n)


def binomial_detectable_deviation(n: int, rate_interval: tuple[float, float], alpha: float,
                                  power: float) -> float:
    """Smallest shift of the acceptance rate (beyond the expected-rate interval) that the
    two-sided exact binomial test at level ``alpha`` flags with probability ``>= power``
    (exact binomial tails, no normal approximation).

    Maths: above the interval ``[lo, hi]`` the test rejects when ``2 P_hi(X >= k) <= alpha``,
    i.e. ``k >= k_hi``; a true rate ``r`` has power ``P_r(X >= k_hi)``, increasing in ``r``; the
    smallest ``r`` with power ``>= power`` is found by bisection. Likewise below ``lo``. The
    larger of the two shifts ``r - hi`` and ``lo - r`` is returned (``inf`` when no rate can
    reach the power).

    Examples:
        >>> round(binomial_detectable_deviation(1_000_000, (0.73, 0.73), 1e-8, 0.99), 4)
        0.0036
    """
    n = require_int(n, "n", minimum=1)
    alpha = require_in_open_unit_interval(alpha, "alpha")
    power = require_in_open_unit_interval(power, "power")
    lo, hi = (require_in_closed_unit_interval(v, "rate_interval") for v in rate_interval)
    shifts = []
    if hi < 1.0:
        k_hi = int(stats.binom.isf(alpha / 2.0, n, hi)) + 1  # P_hi(X >= k_hi) <= alpha / 2
        shifts.append(_bisect_rate(lambda r: float(stats.binom.sf(k_hi - 1, n, r)), hi, 1.0,
                                   power) - hi)
    if lo > 0.0:
        k_lo = int(stats.binom.ppf(alpha / 2.0, n, lo)) - 1  # P_lo(X <= k_lo) <= alpha / 2
        if k_lo < 0:
            shifts.append(math.inf)
        else:
            shifts.append(lo - _bisect_rate(lambda r: float(stats.binom.cdf(k_lo, n, r)), lo,
                                            0.0, power))
    return max(shifts) if shifts else 0.0


def _bisect_rate(power_at: Callable[[float], float], start: float, end: float,
                 power: float) -> float:
    """The rate between ``start`` and ``end`` where ``power_at`` first reaches ``power``."""
    if power_at(end) < power:
        return math.inf if end > start else -math.inf
    a, b = start, end
    for _ in range(60):
        mid = 0.5 * (a + b)
        if power_at(mid) >= power:
            b = mid
        else:
            a = mid
    return b


def atom_detectable_mass(n: int, alpha: float, power: float, cell_probability: float,
                         safety_factor: float = 4.0) -> float:
    """Smallest point mass ``m`` that ``atom_check`` flags with probability ``>= power`` at
    level ``alpha``, for an atom on a value whose rounding cell has probability at most
    ``cell_probability`` under the target (exact binomial tails).

    Maths: the check's p-value for ``t`` copies of a value with cell probability ``c`` is
    ``binom.sf(t - 1, n, safety c) / c`` (see ``atom_check``); it decreases in ``t``, so the
    check fires once ``t >= t_min``, the smallest such count at ``c = cell_probability`` (an
    upper bound on the cell probability makes ``t_min`` an upper bound too). An atom of mass
    ``m`` puts ``Binomial(n, m)`` rows there (plus the cell's own share, ignored: it only helps);
    the smallest ``m`` with ``P(Binomial(n, m) >= t_min) >= power`` is found by bisection.

    Examples:
        >>> round(atom_detectable_mass(1_000_000, 1e-8, 0.99, 1e-9), 6)
        1.3e-05
    """
    n = require_int(n, "n", minimum=1)
    alpha = require_in_open_unit_interval(alpha, "alpha")
    power = require_in_open_unit_interval(power, "power")
    c = require_in_closed_unit_interval(cell_probability, "cell_probability")
    if c <= 0.0:
        raise ValueError(f"cell_probability: must be > 0, got {cell_probability}")
    c_hi = min(1.0, safety_factor * c)
    log_alpha_c = math.log(alpha) + math.log(c)
    lo, hi = 2, n  # smallest t with log sf(t - 1) <= log(alpha c)
    if float(stats.binom.logsf(hi - 1, n, c_hi)) > log_alpha_c:
        return math.inf
    while lo < hi:
        mid = (lo + hi) // 2
        if float(stats.binom.logsf(mid - 1, n, c_hi)) <= log_alpha_c:
            hi = mid
        else:
            lo = mid + 1
    t_min = lo
    return _bisect_rate(lambda m: float(stats.binom.sf(t_min - 1, n, m)), 0.0, 1.0, power)
