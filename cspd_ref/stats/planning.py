"""Sample-size planning for the battery (SPEC §5: sizes planned from the effect to detect)."""

from __future__ import annotations

import math

from scipy import stats

from cspd_ref.stats._checks import require_nonnegative, require_open_unit, require_unit_interval
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
    """
    epsilon = require_unit_interval(epsilon, "epsilon")
    if epsilon <= 0.0:
        raise ValueError(f"epsilon: must be > 0, got {epsilon!r}")
    alpha = require_open_unit(alpha, "alpha")
    return math.ceil(math.log(2.0 / alpha) / (2.0 * epsilon * epsilon))


def dkw_detectable_distance(n: int, alpha: float) -> float:
    """The DKW band half-width ``eps = sqrt(ln(2/alpha) / (2 n))`` (inverse of ``dkw_sample_size``).

    ``P(sup |F_n - F| > eps) <= alpha``: a KS statistic above ``eps`` is significant at level
    ``alpha`` (conservatively; the exact KS critical value is slightly smaller).

    Args:
        n: sample size >= 1.
        alpha: probability in (0, 1).
    """
    n = require_int(n, "n", minimum=1)
    alpha = require_open_unit(alpha, "alpha")
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def binomial_detectable_difference(n: int, p: float, alpha: float, power: float, *,
                                   p_stderr: float = 0.0) -> float:
    """Smallest shift of the acceptance rate that ``acceptance_binomial_test`` detects.

    Maths (normal approximation, documented as such): the two-sided level-``alpha`` test of
    ``Binomial(n, p)`` detects a true rate ``p + delta`` with probability ``power`` when
    ``delta = (z_{1-alpha/2} + z_{power}) sqrt(p (1 - p) / n)`` (the variance is taken at ``p``
    under both hypotheses; accurate when ``n p (1 - p)`` is large and ``delta`` small). Because
    ``acceptance_binomial_test`` is conservative over ``p ± 5 p_stderr``, ``5 p_stderr`` is
    added. For ``p`` in {0, 1} the approximation gives 0 (any deviation is detected exactly).

    Args:
        n: number of rows >= 1.
        p: expected acceptance rate ``1 - TV`` in [0, 1].
        alpha: level in (0, 1).
        power: desired power in (0, 1).
        p_stderr: standard error of the expected rate (that of the TV estimate).

    Returns:
        ``delta`` >= 0, on the acceptance-rate scale.
    """
    n = require_int(n, "n", minimum=1)
    p = require_unit_interval(p, "p")
    alpha = require_open_unit(alpha, "alpha")
    power = require_open_unit(power, "power")
    p_stderr = require_nonnegative(p_stderr, "p_stderr")
    z = float(stats.norm.isf(alpha / 2.0) + stats.norm.ppf(power))
    return z * math.sqrt(p * (1.0 - p) / n) + 5.0 * p_stderr
