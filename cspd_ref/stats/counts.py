"""Count checks for speculative sampling: acceptances ~ Binomial, residual trials ~ Geometric.

In exact speculative sampling a draft ``x ~ q`` is accepted with probability
``min(1, p(x)/q(x))``, so the number of accepted rows out of ``n`` is Binomial(n, 1 - TV(p, q)).
A rejected row is resampled from the residual ``max(0, p - q) / TV`` by rejection from proposals
that succeed with probability TV each, so its trial count is Geometric(TV) on {1, 2, ...}
(docs/algorithms.md §3, docs/battery.md §3).

The TV distance is a float64 numerical value: exact (closed form, 1-D crossings) or a Monte
Carlo estimate with a *guaranteed* confidence interval ``[tv_lo, tv_hi]`` that misses the true TV
with probability at most ``miss_probability`` (``cspd_ref.theory.tv_bounds``, empirical
Bernstein). Both tests return the largest p-value over the interval, plus ``miss_probability``:

    ``P(p <= a) <= P(TV outside the interval) + P(p_max <= a - miss | TV inside) <= a``,

so the p-value is valid at every level, the TV's uncertainty included (no sigma margin).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cspd_ref.stats.arguments import require_in_closed_unit_interval
from cspd_ref.stats.details import AcceptanceDetails, TrialsDetails
from cspd_ref.stats.ks import ks_pvalue
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, require_generator, require_int


def require_tv_interval(tv: float, tv_interval: tuple[float, float] | None,
                        miss_probability: float) -> tuple[float, float, float, float]:
    """Validate ``tv``, the interval (default ``[tv, tv]``) and the miss probability; returns
    ``(tv, lower, upper, miss_probability)``.

    Examples:
        >>> require_tv_interval(0.3, None, 0.0)
        (0.3, 0.3, 0.3, 0.0)
        >>> require_tv_interval(0.3, (0.31, 0.4), 1e-6)
        Traceback (most recent call last):
        ...
        ValueError: tv_interval: must contain tv = 0.3, got (0.31, 0.4)
    """
    tv = require_in_closed_unit_interval(tv, "tv")
    if tv_interval is None:
        lo, hi = tv, tv
    else:
        try:
            lo_raw, hi_raw = tv_interval
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tv_interval: expected (lower, upper), got {tv_interval!r}") from exc
        lo = require_in_closed_unit_interval(lo_raw, "tv_interval")
        hi = require_in_closed_unit_interval(hi_raw, "tv_interval")
        if not lo <= tv <= hi:
            raise ValueError(f"tv_interval: must contain tv = {tv}, got ({lo}, {hi})")
    miss = require_in_closed_unit_interval(miss_probability, "miss_probability")
    return tv, lo, hi, miss


def binomial_two_sided_pvalue(k: int, n: int, p: float) -> float:
    """Exact equal-tailed two-sided binomial p-value ``min(1, 2 min(P(X <= k), P(X >= k)))``.

    ``X ~ Binomial(n, p)``. This is the p-value dual to the Clopper–Pearson interval. As a
    function of ``p`` it is non-decreasing on ``[0, k/n]`` and non-increasing on ``[k/n, 1]`` with
    value 1 at ``p = k/n``: ``P(X <= k)`` decreases and ``P(X >= k)`` increases in ``p``, so the
    minimum is quasi-concave, and at ``p = k/n`` the mean ``k`` is a median of X.

    Examples:
        >>> binomial_two_sided_pvalue(9, 10, 0.5)  # 2 P(X >= 9)
        0.021484375
        >>> binomial_two_sided_pvalue(5, 10, 0.5)
        1.0
    """
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0
    lower = float(stats.binom.cdf(k, n, p))
    upper = float(stats.binom.sf(k - 1, n, p))
    return float(min(1.0, 2.0 * min(lower, upper)))


def acceptance_binomial_test(n_accepted: int, n: int, tv: float, *,
                             tv_interval: tuple[float, float] | None = None,
                             miss_probability: float = 0.0) -> CheckResult:
    """Exact binomial test of the acceptance count, valid over the TV's confidence interval.

    Null hypothesis: ``n_accepted ~ Binomial(n, 1 - TV)`` with TV the true total-variation
    distance, which lies in ``tv_interval`` except with probability ``miss_probability``.

    Assumptions: the ``n`` rows are independent (each accepted with the same probability); the
    interval was computed independently of the sampler's output.

    Maths: for a fixed acceptance probability ``a`` the p-value is the exact equal-tailed
    two-sided one, ``min(1, 2 min(P(X <= k), P(X >= k)))``, ``X ~ Binomial(n, a)``. It is
    non-decreasing in ``a`` up to the observed rate ``k/n`` and non-increasing after it (see
    ``binomial_two_sided_pvalue``), so its maximum over ``[1 - tv_hi, 1 - tv_lo]`` is attained at
    the point of the interval closest to ``k/n``. The reported p-value is that maximum plus
    ``miss_probability`` (valid at every level, see the module docstring). TV = 0 means every
    row must be accepted (p-value 1 if so, else 0); TV = 1 means none may be.

    Args:
        n_accepted: number of accepted rows ``k``, ``0 <= k <= n``.
        n: number of rows, ``n >= 1``.
        tv: the TV value (or estimate) in [0, 1], used for reporting.
        tv_interval: ``(lower, upper)`` containing ``tv``; default ``(tv, tv)`` (exact TV).
        miss_probability: probability that the interval misses the true TV (0 when exact).

    Returns:
        ``CheckResult`` named ``"acceptance_binomial"``, ``statistic = k / n``, with
        ``AcceptanceDetails`` (``expected_rate``, ``rate_interval``, ``rate_at_max``, ``z``: the
        normal-approximation z-score at ``1 - tv``, for reports, ``tv_interval``,
        ``miss_probability``).

    Raises:
        ValueError: non-integer or out-of-range counts, ``tv`` outside [0, 1] or NaN, an
            interval not containing ``tv``, a bad ``miss_probability``.

    Examples:
        >>> acceptance_binomial_test(9, 10, 0.5).pvalue  # 2 P(X >= 9), X ~ Binomial(10, 1/2)
        0.021484375
        >>> acceptance_binomial_test(650, 1000, 0.3, tv_interval=(0.28, 0.36)).pvalue
        1.0
    """
    n = require_int(n, "n", minimum=1)
    k = require_int(n_accepted, "n_accepted", minimum=0)
    if k > n:
        raise ValueError(f"n_accepted: must be <= n = {n}, got {k}")
    tv, tv_lo, tv_hi, miss = require_tv_interval(tv, tv_interval, miss_probability)
    rate_lo, rate_hi = 1.0 - tv_hi, 1.0 - tv_lo
    observed = k / n
    rate_at_max = min(max(observed, rate_lo), rate_hi)
    pvalue = min(1.0, binomial_two_sided_pvalue(k, n, rate_at_max) + miss)
    expected = 1.0 - tv
    spread = math.sqrt(n * expected * (1.0 - expected))
    z = (k - n * expected) / spread if spread > 0.0 else (0.0 if k == n * expected else math.inf)
    floor = min(binomial_two_sided_pvalue(0, n, rate_hi), binomial_two_sided_pvalue(n, n, rate_lo))
    return CheckResult(
        name="acceptance_binomial",
        statistic=observed,
        pvalue=pvalue,
        n=n,
        compared=f"{k} accepted of {n} vs Binomial(n, 1 - TV), TV in [{tv_lo:.6g}, {tv_hi:.6g}]",
        null="the acceptance count is Binomial(n, 1 - TV) (TV inside its confidence interval "
             "except with probability miss_probability)",
        min_pvalue=min(pvalue, floor + miss),
        details=AcceptanceDetails(expected_rate=expected, rate_interval=(rate_lo, rate_hi),
                                  rate_at_max=rate_at_max, z=z, tv_interval=(tv_lo, tv_hi),
                                  miss_probability=miss),
    )


def geometric_cdf(k: FloatArray, tv: float) -> FloatArray:
    """``F(k) = P(T <= k) = 1 - (1 - tv)^k`` for ``T ~ Geometric(tv)`` on {1, 2, ...}.

    Computed as ``-expm1(k log1p(-tv))`` (accurate for tiny ``tv``, no overflow for huge ``k``);
    ``F(0) = 0`` and, for ``tv == 1``, ``F(k) = 1`` for every ``k >= 1``.

    Examples:
        >>> import numpy as np
        >>> geometric_cdf(np.array([0.0, 1.0, 2.0]), 0.5)
        array([0.  , 0.5 , 0.75])
    """
    if tv >= 1.0:
        return np.where(k >= 1.0, 1.0, 0.0)
    return np.asarray(-np.expm1(k * math.log1p(-tv)), dtype=np.float64)


def geometric_randomized_pit(trials: FloatArray, tv: float, v: FloatArray) -> FloatArray:
    """Randomized PIT ``U = F(k - 1) + V (F(k) - F(k - 1))`` of Geometric(tv) counts ``k``.

    For ``k ~ Geometric(tv)`` and ``V ~ U(0, 1)`` independent, ``U`` is exactly U(0, 1).

    Examples:
        >>> import numpy as np
        >>> geometric_randomized_pit(np.array([1.0, 2.0]), 0.5, np.array([0.5, 0.5]))
        array([0.25 , 0.625])
    """
    below = geometric_cdf(trials - 1.0, tv)
    at = geometric_cdf(trials, tv)
    return np.clip(below + v * (at - below), 0.0, 1.0)


def geometric_trials_test(trials: ArrayLike, tv: float, *,
                          tv_interval: tuple[float, float] | None = None,
                          miss_probability: float = 0.0,
                          rng: np.random.Generator) -> CheckResult:
    """KS test of residual trial counts against Geometric(TV) via a randomized PIT, valid over
    the TV's confidence interval.

    Null hypothesis: the trial counts are iid Geometric(TV) on {1, 2, ...} (success probability
    TV per proposal), TV the true value, inside ``tv_interval`` except with probability
    ``miss_probability``.

    Assumptions: the rejected rows are independent; ``rng`` is independent of the trials and the
    interval of the sampler's output.

    Maths: ``F(k; TV) = 1 - (1 - TV)^k``. With ``V_i ~ U(0, 1)`` from ``rng``,
    ``U_i(TV) = (1 - V_i) F(k_i - 1; TV) + V_i F(k_i; TV)`` is *exactly* iid U(0, 1) at the true
    TV (randomized probability integral transform of a discrete law). Every ``U_i`` is
    non-decreasing in TV (a convex combination of CDF values, each non-decreasing in TV), hence
    so is every order statistic; so for TV in ``[lo, hi]``, ``D+(TV) = max_i (i/r - U_(i)(TV))
    >= D+(hi)`` and ``D-(TV) >= D-(lo)``. The statistic ``D = max(D+(hi), D-(lo))`` is therefore
    at most the KS statistic at the true TV, and ``P(D_r >= D) + miss_probability`` (exact
    ``kstwo`` law) is a valid p-value — conservative by construction, no grid. Impossible data
    get p-value 0: TV = 0 admits no rejected row, TV = 1 no count above 1.

    Args:
        trials: ``(r,)`` integer trial counts >= 1, one per rejected row, ``r >= 1``.
        tv: the TV value (or estimate) in [0, 1].
        tv_interval: ``(lower, upper)`` containing ``tv``; default ``(tv, tv)``.
        miss_probability: probability that the interval misses the true TV.
        rng: source of the PIT randomization ``V`` (keyword-only).

    Returns:
        ``CheckResult`` named ``"geometric_trials"``, ``statistic = D``, with
        ``TrialsDetails`` (``tv_interval``, ``mean_trials``, ``miss_probability``, ``d_plus``
        at ``hi`` and ``d_minus`` at ``lo``, or a ``note`` for impossible data).

    Raises:
        ValueError: empty or non-integer ``trials``, values < 1, bad ``tv``/interval,
            ``rng`` not a Generator.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> geometric_trials_test(rng.geometric(0.3, size=400), 0.3, rng=rng).pvalue > 0.01
        True
    """
    k = _require_trials(trials)
    tv, tv_lo, tv_hi, miss = require_tv_interval(tv, tv_interval, miss_probability)
    rng = require_generator(rng)
    r = k.shape[0]
    mean_trials = float(k.mean())
    compared = (f"{r} residual trial counts vs Geometric(TV), TV in [{tv_lo:.6g}, {tv_hi:.6g}] "
                "(randomized PIT + exact KS)")
    null = ("the trial counts are iid Geometric(TV) on {1, 2, ...} (TV inside its confidence "
            "interval except with probability miss_probability)")
    v = np.asarray(rng.random(r), dtype=np.float64)
    if tv_hi <= 0.0 or (tv_lo >= 1.0 and np.any(k > 1.0)):
        note = ("TV = 0 admits no rejected rows" if tv_hi <= 0.0 else
                "TV = 1: every first proposal succeeds")
        return CheckResult(name="geometric_trials", statistic=1.0, pvalue=min(1.0, miss), n=r,
                           compared=compared, null=null, min_pvalue=min(1.0, miss),
                           details=TrialsDetails(tv_interval=(tv_lo, tv_hi),
                                                 mean_trials=mean_trials,
                                                 miss_probability=miss, note=note))
    i = np.arange(1, r + 1, dtype=np.float64)
    u_hi = np.sort(geometric_randomized_pit(k, tv_hi, v))
    u_lo = np.sort(geometric_randomized_pit(k, max(tv_lo, 0.0), v))
    d_plus = float(np.max(i / r - u_hi))
    d_minus = float(np.max(u_lo - (i - 1.0) / r))
    d = min(1.0, max(d_plus, d_minus, 0.0))
    return CheckResult(name="geometric_trials", statistic=d,
                       pvalue=min(1.0, ks_pvalue(d, r) + miss), n=r, compared=compared,
                       null=null, min_pvalue=miss,
                       details=TrialsDetails(tv_interval=(tv_lo, tv_hi), mean_trials=mean_trials,
                                             miss_probability=miss, d_plus=d_plus,
                                             d_minus=d_minus))


def _require_trials(trials: ArrayLike) -> FloatArray:
    try:
        raw = np.asarray(trials)
    except Exception as exc:
        raise ValueError(f"trials: cannot be read as an array ({exc})") from exc
    if raw.ndim != 1:
        raise ValueError(f"trials: expected a 1-D array, got shape {raw.shape}")
    if raw.shape[0] < 1:
        raise ValueError("trials: is empty (no rejected rows); skip this check")
    if raw.dtype == np.bool_:
        raise ValueError("trials: expected integers, got booleans")
    if np.issubdtype(raw.dtype, np.floating):
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise ValueError("trials: expected integer counts")
    elif not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"trials: expected integers, got dtype {raw.dtype}")
    if np.any(raw < 1):
        raise ValueError("trials: counts must be >= 1")
    return raw.astype(np.float64)
