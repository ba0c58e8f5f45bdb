"""Kolmogorov–Smirnov checks: exact one-sample KS (with a rounding band), projections, exact
two-sample KS (docs/battery.md §3).

A d-dimensional law is compared with a target through one-dimensional projections ``a . x``: for
a diagonal Gaussian mixture the law of ``a . X`` is again a mixture with a closed-form CDF
(``GaussianMixture.project``), so each projection gets an *exact* one-sample test. By the
Cramér–Wold theorem two laws are equal iff all their one-dimensional projections are. The
directions must not depend on the samples (``directions.case_directions`` chooses them from the
case, ``random_unit_directions`` at random); the p-values of several directions are dependent
and are combined with a family-wise correction (``fwer``).

Rounded output. A sampler's values are an exact draw ``Y`` rounded to its dtype: ``|x - Y| <= t``
with ``t`` about one unit in the last place. ``ks_one_sample`` accepts such a per-value bound
``tolerance`` and returns a p-value that is valid (conservative) for every ``Y`` within it; with
``tolerance = 0`` it is the classical exact test.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from cspd_ref.distributions import GaussianMixture, require_mixture
from cspd_ref.stats.arguments import require_matrix
from cspd_ref.stats.details import KSDetails, TwoSampleKSDetails
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, as_float64, require_generator, require_int

#: Tolerance for CDF values slightly outside [0, 1] or slightly decreasing (rounding).
CDF_TOLERANCE = 1e-12

ONE_SAMPLE_NULL = "the values are iid from the continuous law with the reference CDF"


def ks_min_pvalue(n: int) -> float:
    """The infimum of the one-sample KS p-value at sample size ``n``: 0. ``D`` approaches 1 as
    every value moves beyond the CDF's extremes, and ``P(D_n >= d) -> 0`` as ``d -> 1`` for every
    ``n >= 1`` (for ``n = 1``, ``P(D_1 >= d) = 2 (1 - d)``).

    Examples:
        >>> ks_min_pvalue(10)
        0.0
    """
    require_int(n, "n", minimum=1)
    return 0.0


def ks_one_sample(values_1d: ArrayLike, cdf: Callable[[FloatArray], ArrayLike], *,
                  tolerance: ArrayLike | None = None, name: str = "ks_one_sample",
                  compared: str = "sample vs reference CDF",
                  null: str = ONE_SAMPLE_NULL) -> CheckResult:
    """Exact one-sample Kolmogorov–Smirnov test against a fully specified continuous CDF,
    valid for values known only up to a rounding band.

    Null hypothesis: ``values_1d[i] = Y_i + e_i`` with ``Y_i`` iid from the continuous law with
    CDF ``cdf`` and ``|e_i| <= tolerance[i]`` (``e_i`` arbitrary, e.g. rounding to the sampler's
    dtype). With ``tolerance`` None or 0 this is the classical null ``values iid from cdf``.

    Assumptions: the CDF is continuous and fixed in advance (not fitted to these data); the
    ``Y_i`` are independent.

    Maths: for the unobserved ``Y``, ``D+(Y) = sup_s (G_Y(s) - F(s))`` and
    ``D-(Y) = sup_s (F(s) - G_Y(s))``, ``G`` an empirical CDF. Since
    ``lo_i = x_i - t_i <= Y_i <= x_i + t_i = hi_i``, ``G_hi <= G_Y <= G_lo`` everywhere, so
    ``D+(Y) >= D+(hi) = max_i (i/n - F(hi_(i)))`` and ``D-(Y) >= D-(lo) = max_i (F(lo_(i)) -
    (i-1)/n)``. The statistic ``D = max(D+(hi), D-(lo))`` is at most ``D(Y)``, so its p-value
    ``P(D_n >= D)`` from the exact law of the KS statistic (``scipy.stats.kstwo``, Simard &
    L'Ecuyer) is at least that of ``Y``: valid at every level, ``P(p <= a) <= a``. The band costs
    power where ``F`` rises within ``t`` of a value: it lowers ``D`` by at most
    ``max_i (F(hi_i) - F(lo_i))``.

    Args:
        values_1d: ``(n,)`` finite values, ``n >= 1``.
        cdf: vectorised CDF, non-decreasing, values in [0, 1].
        tolerance: ``(n,)`` (or scalar) non-negative bounds on each value's rounding error.
        name, compared, null: the result's labels.

    Returns:
        ``CheckResult`` with ``statistic = D`` and ``KSDetails`` (``d_plus``, ``d_minus``,
        ``statistic_location``, ``max_tolerance``).

    Raises:
        ValueError: ``values_1d`` not 1-D / empty / non-finite; a bad ``tolerance``; ``cdf`` not
            callable or returning values of the wrong shape, outside [0, 1], NaN, or decreasing.

    Examples:
        >>> import numpy as np
        >>> from scipy.special import ndtr
        >>> x = np.random.default_rng(0).standard_normal(1000)
        >>> result = ks_one_sample(x, ndtr)
        >>> result.pvalue > 0.01, result.min_pvalue < 1e-300
        (True, True)
    """
    values = as_float64(values_1d, "values_1d", ndim=1)
    n = values.shape[0]
    if n < 1:
        raise ValueError("values_1d: needs at least one value")
    if not callable(cdf):
        raise ValueError(f"cdf: expected a callable, got {type(cdf).__name__}")
    t = np.zeros(n) if tolerance is None else np.broadcast_to(
        as_float64(tolerance, "tolerance"), (n,))
    if np.any(t < 0.0):
        raise ValueError("tolerance: must be >= 0")
    i = np.arange(1, n + 1, dtype=np.float64)
    if np.any(t > 0.0):
        lo = np.sort(values - t)
        hi = np.sort(values + t)
    else:
        lo = hi = np.sort(values)
    u_hi = _cdf_values(cdf, hi)
    u_lo = u_hi if hi is lo else _cdf_values(cdf, lo)
    gaps_plus = i / n - u_hi
    gaps_minus = u_lo - (i - 1.0) / n
    k_plus = int(np.argmax(gaps_plus))
    k_minus = int(np.argmax(gaps_minus))
    d_plus, d_minus = float(gaps_plus[k_plus]), float(gaps_minus[k_minus])
    d = min(1.0, max(d_plus, d_minus, 0.0))
    location = float(hi[k_plus] if d_plus >= d_minus else lo[k_minus])
    return CheckResult(name=name, statistic=d, pvalue=ks_pvalue(d, n), n=n, compared=compared,
                       null=null, min_pvalue=ks_min_pvalue(n),
                       details=KSDetails(d_plus=d_plus, d_minus=d_minus,
                                         statistic_location=location,
                                         max_tolerance=float(t.max())))


#: Above this n, tails with ``sqrt(n) d >= DKW_TAIL_START`` use the DKW–Massart bound.
DKW_TAIL_N = 5000
DKW_TAIL_START = 1.0


def ks_pvalue(d: float, n: int) -> float:
    """``P(D_n >= d)`` for the one-sample KS statistic, or a tight upper bound on it.

    Exact (``scipy.stats.kstwo``, Simard & L'Ecuyer) except in the tail of large samples
    (``n > 5000`` and ``sqrt(n) d >= 1``), where scipy's exact evaluation takes seconds at
    ``n = 10^6``: there the Dvoretzky–Kiefer–Wolfowitz bound with Massart's constant,
    ``2 exp(-2 n d^2)``, which holds for every n once ``exp(-2 n d^2) <= 1/2``, is returned. It is
    never below the exact tail (the p-value stays valid, conservatively) and exceeds it by less
    than 2% there (checked against ``kstwo`` at n = 2 x 10^4 .. 4 x 10^6).

    Examples:
        >>> import math
        >>> round(ks_pvalue(0.5, 10), 6)  # exact (kstwo)
        0.007777
        >>> ks_pvalue(0.002, 10**6) == 2 * math.exp(-8.0)  # the DKW tail
        True
    """
    if n > DKW_TAIL_N and math.sqrt(n) * d >= DKW_TAIL_START:
        return float(min(1.0, 2.0 * math.exp(-2.0 * n * d * d)))
    return float(np.clip(stats.kstwo.sf(d, n), 0.0, 1.0))


def _cdf_values(cdf: Callable[[FloatArray], ArrayLike], ordered: FloatArray) -> FloatArray:
    u = np.asarray(cdf(ordered), dtype=np.float64)
    if u.shape != ordered.shape:
        raise ValueError(f"cdf: returned shape {u.shape} for input shape {ordered.shape}")
    if not np.all(np.isfinite(u)):
        raise ValueError("cdf: returned NaN or infinite values")
    if np.any(u < -CDF_TOLERANCE) or np.any(u > 1.0 + CDF_TOLERANCE):
        raise ValueError("cdf: returned values outside [0, 1]")
    if u.shape[0] > 1 and np.any(np.diff(u) < -CDF_TOLERANCE):
        raise ValueError("cdf: is not non-decreasing on the sorted sample")
    return np.clip(u, 0.0, 1.0)


def uniform_cdf(values: FloatArray) -> FloatArray:
    """The U(0, 1) CDF (clipped identity), for tests of PIT values.

    Examples:
        >>> import numpy as np
        >>> uniform_cdf(np.array([-0.5, 0.25, 2.0]))
        array([0.  , 0.25, 1.  ])
    """
    return np.clip(values, 0.0, 1.0)


def random_unit_directions(d: int, m: int, *, rng: np.random.Generator) -> FloatArray:
    """``m`` directions drawn uniformly on the unit sphere of R^d: shape ``(m, d)``.

    Maths: normalised standard Gaussian vectors are uniform on the sphere (rotation
    invariance). For ``d == 1`` the only unit directions are +-1, which give the same KS test,
    so ``[[1.0]]`` (one row, whatever ``m``) is returned and ``rng`` (keyword-only) is not
    used.

    Raises:
        ValueError: ``d < 1``, ``m < 1``, or ``rng`` not a ``numpy.random.Generator``.

    Examples:
        >>> import numpy as np
        >>> a = random_unit_directions(3, 2, rng=np.random.default_rng(0))
        >>> a.shape, bool(np.allclose(np.linalg.norm(a, axis=1), 1.0))
        ((2, 3), True)
    """
    d = require_int(d, "d", minimum=1)
    m = require_int(m, "m", minimum=1)
    rng = require_generator(rng)
    if d == 1:
        return np.ones((1, 1), dtype=np.float64)
    z = rng.standard_normal((m, d))
    norms = np.linalg.norm(z, axis=1)
    while np.any(norms == 0.0):  # probability zero; kept for exactness
        bad = norms == 0.0
        z[bad] = rng.standard_normal((int(bad.sum()), d))
        norms = np.linalg.norm(z, axis=1)
    return np.asarray(z / norms[:, None], dtype=np.float64)


def _require_directions(directions: ArrayLike, d: int) -> FloatArray:
    a = as_float64(directions, "directions", ndim=2)
    if a.shape[0] < 1 or a.shape[1] != d:
        raise ValueError(f"directions: expected shape (m, {d}) with m >= 1, got {a.shape}")
    if np.any(np.all(a == 0.0, axis=1)):
        raise ValueError("directions: a direction is the zero vector")
    return a


def ks_projections(samples: ArrayLike, target: GaussianMixture, directions: ArrayLike, *,
                   labels: Sequence[str] | None = None,
                   coordinate_tolerance: ArrayLike | None = None) -> list[CheckResult]:
    """One exact one-sample KS test per direction, of ``samples @ a`` against the target's law.

    Null hypothesis (per direction ``a``): the projected values are ``a . Y_i + e_i`` with
    ``Y_i`` iid from ``target`` and ``|e_i| <= sum_j |a_j| t_ij`` (rounding of coordinate j of
    row i by at most ``coordinate_tolerance[i, j]``; none when it is None).

    Assumptions: ``target`` is a single (un-batched) diagonal Gaussian mixture; the directions
    do not depend on the samples; the rows of ``samples`` are independent.

    Maths: ``target.project(a)`` is the exact 1-D mixture law of ``a . X`` (means ``mu_k . a``,
    scales ``sqrt(sum_j a_j^2 s_kj^2)``); the rounding of the coordinates moves the projection by
    at most ``sum_j |a_j| t_ij``, which ``ks_one_sample`` accounts for. The m p-values are
    dependent: combine them with ``holm``/``bonferroni`` (valid under any dependence).

    Args:
        samples: ``(n, d)`` finite samples.
        target: ``GaussianMixture`` with ``batch_shape == ()`` and ``dim == d``.
        directions: ``(m, d)`` non-zero directions (not required to be unit vectors).
        labels: ``m`` names; the results are named ``"ks_<label>"`` (default
            ``"ks_projection[i]"``).
        coordinate_tolerance: ``(n, d)`` or ``(d,)`` non-negative rounding bounds.

    Returns:
        ``m`` results; ``CheckResult.direction`` holds ``a``.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref import GaussianMixture
        >>> p = GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 2.0]])
        >>> x = p.sample(2000, rng=np.random.default_rng(1))
        >>> [r.name for r in ks_projections(x, p, np.eye(2), labels=["axis[0]", "axis[1]"])]
        ['ks_axis[0]', 'ks_axis[1]']
    """
    x = require_matrix(samples, "samples")
    target = require_mixture(target, "target")
    if target.batch_shape != ():
        raise ValueError(f"target: expected a single mixture (batch_shape ()), got batch shape "
                         f"{target.batch_shape}")
    if target.dim != x.shape[1]:
        raise ValueError(f"target: event dimension {target.dim} differs from samples' "
                         f"{x.shape[1]}")
    a = _require_directions(directions, x.shape[1])
    if labels is not None and len(labels) != a.shape[0]:
        raise ValueError(f"labels: expected {a.shape[0]} labels, got {len(labels)}")
    tol = None
    if coordinate_tolerance is not None:
        tol = np.broadcast_to(as_float64(coordinate_tolerance, "coordinate_tolerance"), x.shape)
    projected = x @ a.T  # (n, m)
    band = None if tol is None else tol @ np.abs(a).T  # (n, m)
    results = []
    for i in range(a.shape[0]):
        label = f"projection[{i}]" if labels is None else labels[i]
        result = ks_one_sample(
            projected[:, i], target.project(a[i]).cdf,
            tolerance=None if band is None else band[:, i], name=f"ks_{label}",
            compared=f"samples projected on {label} vs the target's exact projected mixture CDF",
            null="the projected samples are a . X (X ~ target) up to the output's rounding")
        results.append(replace(result, direction=tuple(a[i].tolist())))
    return results


def ks2_min_pvalue(n: int, m: int) -> float:
    """Smallest two-sample KS p-value for sizes ``n``, ``m``: complete separation,
    ``2 / C(n + m, n)`` (underflows to 0 for large sizes).

    Examples:
        >>> round(ks2_min_pvalue(3, 3), 12)  # 2 / C(6, 3)
        0.1
    """
    log_p = (math.log(2.0) + special.gammaln(n + 1.0) + special.gammaln(m + 1.0)
             - special.gammaln(n + m + 1.0))
    return float(min(1.0, math.exp(log_p))) if log_p > -745.0 else 0.0


def ks_two_sample(x: ArrayLike, y: ArrayLike, *, name: str = "ks2",
                  compared: str = "x vs y (two-sample KS)") -> CheckResult:
    """Exact two-sample Kolmogorov–Smirnov test.

    Null hypothesis: the values of ``x`` and ``y`` are iid from one common law.

    Assumptions: the two samples are independent. The exact null law is that of a continuous
    common law; ties (a discrete or rounded common law) make the test conservative.

    Maths: ``D = sup_t |F_x(t) - F_y(t)|``; exact p-value by path counting
    (``scipy.stats.ks_2samp(method="exact")``; for equal sizes the Gnedenko–Korolyuk
    reflection formula, fast for any n). Where scipy's exact computation fails (very small
    ``D`` on heavily tied data, or large unequal sizes) the p-value is the DKW bound
    ``min(1, 2 exp(-n D^2 / 2) + 2 exp(-m D^2 / 2))`` instead — never the asymptotic law: under
    the null ``D <= sup|F_x - F| + sup|F_y - F|``, and each term exceeds ``D/2`` with probability
    at most ``2 exp(-2 k (D/2)^2)`` (DKW–Massart, any common law), so the bound is valid at every
    level (conservative).

    Args:
        x: ``(n,)`` finite values, ``n >= 1``.
        y: ``(m,)`` finite values, ``m >= 1``.
        name, compared: the result's labels.

    Returns:
        ``CheckResult``; ``n = len(x) + len(y)``, ``TwoSampleKSDetails`` (``n_x``, ``n_y``,
        ``statistic_location``, ``method``).

    Raises:
        ValueError: bad arrays.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ks_two_sample(rng.standard_normal(5000), rng.standard_normal(5000)).pvalue > 0.01
        True
    """
    xs = as_float64(x, "x", ndim=1)
    ys = as_float64(y, "y", ndim=1)
    if xs.shape[0] < 1 or ys.shape[0] < 1:
        raise ValueError("x: both samples need at least one value")
    n, m = xs.shape[0], ys.shape[0]
    method = "exact"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            test = stats.ks_2samp(xs, ys, method="exact")
            statistic, pvalue = float(test.statistic), float(test.pvalue)
            location = float(test.statistic_location)
        except RuntimeWarning:
            warnings.simplefilter("ignore", RuntimeWarning)
            test = stats.ks_2samp(xs, ys, method="asymp")  # for the statistic only
            statistic, location = float(test.statistic), float(test.statistic_location)
            pvalue = ks2_dkw_pvalue(statistic, n, m)
            method = "dkw_bound"
    return CheckResult(
        name=name, statistic=statistic, pvalue=float(np.clip(pvalue, 0.0, 1.0)), n=n + m,
        compared=compared, null="both samples are iid from one common law",
        min_pvalue=ks2_min_pvalue(n, m) if method == "exact" else ks2_dkw_pvalue(1.0, n, m),
        details=TwoSampleKSDetails(n_x=n, n_y=m, statistic_location=location, method=method))


def ks2_dkw_pvalue(d: float, n: int, m: int) -> float:
    """``min(1, 2 exp(-n d^2 / 2) + 2 exp(-m d^2 / 2))``: a valid two-sample KS p-value for
    any sizes (see ``ks_two_sample``).

    Examples:
        >>> round(ks2_dkw_pvalue(0.1, 1000, 1000), 6)  # 4 exp(-5)
        0.026952
    """
    return float(min(1.0, 2.0 * math.exp(-n * d * d / 2.0) + 2.0 * math.exp(-m * d * d / 2.0)))


def ks_two_sample_projections(x: ArrayLike, y: ArrayLike, directions: ArrayLike, *,
                              labels: Sequence[str] | None = None) -> list[CheckResult]:
    """Exact two-sample KS test of ``x @ a`` against ``y @ a`` for every direction ``a``.

    Null hypothesis (per direction): the projections of both samples are iid from one common
    law (in particular: x and y are iid from the same d-dimensional law).

    Assumptions: the two samples are independent of each other and of the directions.

    Maths: see ``ks_two_sample``; combine the directions with ``holm``/``bonferroni``.

    Args:
        x: ``(n, d)``, ``n >= 1``.
        y: ``(m, d)``, ``m >= 1``, same ``d``.
        directions: ``(k, d)`` non-zero directions.
        labels: ``k`` names; results are named ``"ks2_<label>"`` (default
            ``"ks2_projection[i]"``).

    Returns:
        ``k`` results; ``CheckResult.direction`` holds ``a``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.standard_normal((400, 2)), rng.standard_normal((400, 2))
        >>> [r.name for r in ks_two_sample_projections(x, y, np.eye(2))]
        ['ks2_projection[0]', 'ks2_projection[1]']
    """
    xs = require_matrix(x, "x")
    ys = require_matrix(y, "y")
    if ys.shape[1] != xs.shape[1]:
        raise ValueError(f"y: expected {xs.shape[1]} columns (as x), got shape {ys.shape}")
    a = _require_directions(directions, xs.shape[1])
    if labels is not None and len(labels) != a.shape[0]:
        raise ValueError(f"labels: expected {a.shape[0]} labels, got {len(labels)}")
    px = xs @ a.T
    py = ys @ a.T
    results = []
    for i in range(a.shape[0]):
        label = f"projection[{i}]" if labels is None else labels[i]
        result = ks_two_sample(px[:, i], py[:, i], name=f"ks2_{label}",
                               compared=f"x vs y projected on {label} (two-sample KS)")
        results.append(replace(result, direction=tuple(a[i].tolist())))
    return results
