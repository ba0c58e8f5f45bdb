"""Count checks for speculative sampling: acceptances ~ Binomial, residual trials ~ Geometric.

In exact speculative sampling a draft ``x ~ q`` is accepted with probability
``min(1, p(x)/q(x))``, so the number of accepted rows out of ``n`` is Binomial(n, 1 - TV(p, q)).
A rejected row is resampled from the residual ``max(0, p - q) / TV`` by rejection from proposals
that succeed with probability TV each, so its trial count is Geometric(TV) on {1, 2, ...}
(SPEC §2, §5).

The TV distance is itself a float64 numerical estimate (quadrature in 1-D, importance-sampled
Monte Carlo otherwise) with a standard error ``tv_stderr``. Both tests are made conservative
over the uncertainty interval ``[tv - 5 se, tv + 5 se] ∩ [0, 1]``: the reported p-value is the
largest p-value over that interval, so that an imprecise TV cannot cause a false alarm (as long
as the true TV lies in the interval, which a 5-sigma interval makes all but certain).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cspd_ref.stats._checks import require_nonnegative, require_unit_interval
from cspd_ref.stats.ks import _ks_from_sorted_uniforms
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, require_generator, require_int

#: Half-width of the TV uncertainty interval, in standard errors.
TV_INTERVAL_SIGMAS = 5.0
#: Number of evenly spaced TV values scanned by ``geometric_trials_test`` (plus the centre and
#: the maximum-likelihood value when they fall inside the interval).
TV_GRID_POINTS = 17


def tv_interval(tv: float, tv_stderr: float) -> tuple[float, float]:
    """``[tv - 5 se, tv + 5 se] ∩ [0, 1]``."""
    half = TV_INTERVAL_SIGMAS * tv_stderr
    return max(0.0, tv - half), min(1.0, tv + half)


def binomial_two_sided_pvalue(k: int, n: int, p: float) -> float:
    """Exact equal-tailed two-sided binomial p-value ``min(1, 2 min(P(X <= k), P(X >= k)))``.

    ``X ~ Binomial(n, p)``. This is the p-value dual to the Clopper–Pearson interval. As a
    function of ``p`` it is non-decreasing on ``[0, k/n]`` and non-increasing on ``[k/n, 1]`` with
    value 1 at ``p = k/n``: ``P(X <= k)`` decreases and ``P(X >= k)`` increases in ``p``, so the
    minimum is quasi-concave, and at ``p = k/n`` the mean ``k`` is a median of X.
    """
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0
    lower = float(stats.binom.cdf(k, n, p))
    upper = float(stats.binom.sf(k - 1, n, p))
    return float(min(1.0, 2.0 * min(lower, upper)))


def acceptance_binomial_test(n_accepted: int, n: int, tv: float,
                             tv_stderr: float = 0.0) -> CheckResult:
    """Exact binomial test of the acceptance count, conservative over the TV uncertainty.

    Null hypothesis: ``n_accepted ~ Binomial(n, 1 - TV)`` for some TV in
    ``[tv - 5 tv_stderr, tv + 5 tv_stderr] ∩ [0, 1]``.

    Assumptions: the ``n`` rows are independent (each accepted with the same probability); the
    true TV lies in the interval.

    Maths: for a fixed acceptance probability ``a`` the p-value is the exact equal-tailed
    two-sided one, ``min(1, 2 min(P(X <= k), P(X >= k)))``, ``X ~ Binomial(n, a)``. It is
    non-decreasing in ``a`` up to the observed rate ``k/n`` and non-increasing after it (see
    ``binomial_two_sided_pvalue``), so its maximum over the interval ``[1 - tv_hi, 1 - tv_lo]``
    is attained at the point of the interval closest to ``k/n`` (and equals 1 when ``k/n`` is
    inside). That maximum is reported: a test that is valid for every TV in the interval.
    Edge cases follow from the same formula: TV = 0 means every row must be accepted (p-value
    1 if so, else 0); TV = 1 means none may be.

    Args:
        n_accepted: number of accepted rows ``k``, ``0 <= k <= n``.
        n: number of rows, ``n >= 1``.
        tv: total-variation distance between draft and target, in [0, 1].
        tv_stderr: standard error of ``tv`` (0 when exact).

    Returns:
        ``CheckResult`` named ``"acceptance_binomial"``, ``statistic = k / n``; details
        ``expected_rate``, ``rate_interval``, ``rate_at_max`` (where the maximum is attained),
        ``z`` (normal-approximation z-score at ``1 - tv``).

    Raises:
        ValueError: non-integer or out-of-range counts, ``tv`` outside [0, 1] or NaN,
            ``tv_stderr`` negative or NaN.
    """
    n = require_int(n, "n", minimum=1)
    k = require_int(n_accepted, "n_accepted", minimum=0)
    if k > n:
        raise ValueError(f"n_accepted: must be <= n = {n}, got {k}")
    tv = require_unit_interval(tv, "tv")
    tv_stderr = require_nonnegative(tv_stderr, "tv_stderr")
    tv_lo, tv_hi = tv_interval(tv, tv_stderr)
    rate_lo, rate_hi = 1.0 - tv_hi, 1.0 - tv_lo
    observed = k / n
    rate_at_max = min(max(observed, rate_lo), rate_hi)
    pvalue = binomial_two_sided_pvalue(k, n, rate_at_max)
    expected = 1.0 - tv
    spread = math.sqrt(n * expected * (1.0 - expected))
    z = (k - n * expected) / spread if spread > 0.0 else (0.0 if k == n * expected else math.inf)
    return CheckResult(
        name="acceptance_binomial",
        statistic=observed,
        pvalue=pvalue,
        n=n,
        compared=f"{k} accepted of {n} vs Binomial(n, 1 - TV), TV = {tv:.6g} ± {tv_stderr:.2g}",
        null="the acceptance count is Binomial(n, 1 - TV) for some TV in the 5-sigma interval "
             "of the TV estimate",
        details={"expected_rate": expected, "rate_interval": (rate_lo, rate_hi),
                 "rate_at_max": rate_at_max, "z": z, "tv_interval": (tv_lo, tv_hi)},
    )


def geometric_cdf(k: FloatArray, tv: float) -> FloatArray:
    """``F(k) = P(T <= k) = 1 - (1 - tv)^k`` for ``T ~ Geometric(tv)`` on {1, 2, ...}.

    Computed as ``-expm1(k log1p(-tv))`` (accurate for tiny ``tv``, no overflow for huge ``k``);
    ``F(0) = 0`` and, for ``tv == 1``, ``F(k) = 1`` for every ``k >= 1``.
    """
    if tv >= 1.0:
        return np.where(k >= 1.0, 1.0, 0.0)
    return np.asarray(-np.expm1(k * math.log1p(-tv)), dtype=np.float64)


def geometric_randomized_pit(trials: FloatArray, tv: float, v: FloatArray) -> FloatArray:
    """Randomized PIT ``U = F(k - 1) + V (F(k) - F(k - 1))`` of Geometric(tv) counts ``k``.

    For ``k ~ Geometric(tv)`` and ``V ~ U(0, 1)`` independent, ``U`` is exactly U(0, 1).
    """
    below = geometric_cdf(trials - 1.0, tv)
    at = geometric_cdf(trials, tv)
    return np.clip(below + v * (at - below), 0.0, 1.0)


def geometric_trials_test(trials: ArrayLike, tv: float, tv_stderr: float = 0.0, *,
                          rng: np.random.Generator) -> CheckResult:
    """KS test of residual trial counts against Geometric(TV) via a randomized PIT.

    Null hypothesis: the trial counts are iid Geometric(TV) on {1, 2, ...} (success probability
    TV per proposal) for some TV in ``[tv - 5 tv_stderr, tv + 5 tv_stderr] ∩ [0, 1]``.

    Assumptions: the rejected rows are independent; the true TV lies in the interval; ``rng`` is
    independent of the trials.

    Maths: ``F(k) = 1 - (1 - TV)^k = -expm1(k log1p(-TV))``. With ``V_i ~ U(0, 1)`` drawn from
    ``rng``, ``U_i = F(k_i - 1) + V_i P(T = k_i)`` is *exactly* iid U(0, 1) under the null (the
    randomized probability integral transform of a discrete law), so the exact one-sample KS test
    of the ``U_i`` against U(0, 1) is an exact test. The same ``V`` is used for every TV
    considered; the p-value is the maximum over a grid of TV values in the interval (17 evenly
    spaced points including both endpoints, plus the central ``tv`` and the maximum-likelihood
    value ``1 / mean(k)`` when inside). The maximum over the whole interval would be conservative
    for every TV in it; the grid maximum approximates it from below, with the MLE point making
    the approximation tight where it matters. Impossible data get p-value 0 exactly: TV = 0
    admits no rejected row at all, TV = 1 no count above 1.

    Args:
        trials: ``(r,)`` integer trial counts >= 1, one per rejected row, ``r >= 1``.
        tv: TV distance in [0, 1].
        tv_stderr: standard error of ``tv``.
        rng: source of the PIT randomization ``V`` (keyword-only).

    Returns:
        ``CheckResult`` named ``"geometric_trials"``, ``statistic`` = KS ``D`` at the TV giving the
        largest p-value; details ``tv_at_max``, ``tv_interval``, ``mean_trials``.

    Raises:
        ValueError: empty or non-integer ``trials``, values < 1, bad ``tv``/``tv_stderr``,
            ``rng`` not a Generator.
    """
    k = _require_trials(trials)
    tv = require_unit_interval(tv, "tv")
    tv_stderr = require_nonnegative(tv_stderr, "tv_stderr")
    rng = require_generator(rng)
    tv_lo, tv_hi = tv_interval(tv, tv_stderr)
    mean_trials = float(k.mean())
    grid = set(np.linspace(tv_lo, tv_hi, TV_GRID_POINTS).tolist()) | {tv}
    mle = 1.0 / mean_trials
    if tv_lo <= mle <= tv_hi:
        grid.add(mle)
    candidates = sorted(value for value in grid if value > 0.0)
    v = np.asarray(rng.random(k.shape[0]), dtype=np.float64)
    compared = (f"{k.shape[0]} residual trial counts vs Geometric(TV), TV = {tv:.6g} ± "
                f"{tv_stderr:.2g} (randomized PIT + exact KS)")
    null = ("the trial counts are iid Geometric(TV) on {1, 2, ...} for some TV in the 5-sigma "
            "interval of the TV estimate")
    details: dict[str, Any] = {"tv_interval": (tv_lo, tv_hi), "mean_trials": mean_trials}
    if not candidates:  # the interval is {0}: a rejected row is impossible
        details.update(tv_at_max=0.0, note="TV = 0 admits no rejected rows")
        return CheckResult(name="geometric_trials", statistic=1.0, pvalue=0.0, n=k.shape[0],
                           compared=compared, null=null, details=details)
    results = []
    for value in candidates:
        if value >= 1.0 and np.any(k > 1.0):  # TV = 1: every first proposal succeeds
            results.append(CheckResult(name="geometric_trials", statistic=1.0, pvalue=0.0,
                                       n=k.shape[0], compared=compared, null=null,
                                       details={"d_plus": math.nan, "d_minus": math.nan}))
            continue
        u = np.sort(geometric_randomized_pit(k, value, v))
        results.append(_ks_from_sorted_uniforms(u, u, name="geometric_trials",
                                                compared=compared, null=null))
    best = int(np.argmax([result.pvalue for result in results]))
    details.update(tv_at_max=candidates[best], d_plus=results[best].details["d_plus"],
                   d_minus=results[best].details["d_minus"], tv_grid_size=len(candidates))
    return CheckResult(name="geometric_trials", statistic=results[best].statistic,
                       pvalue=results[best].pvalue, n=k.shape[0], compared=compared, null=null,
                       details=details)


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
