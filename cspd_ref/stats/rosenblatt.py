"""Checks on Rosenblatt / probability-integral-transform (PIT) values (docs/battery.md §3).

For a model whose conditionals are known in closed form, the Rosenblatt transform
``u_t = F_t(x_t | x_<t)`` (each coordinate's conditional CDF given everything before it) maps
draws from the model to arrays of iid U(0, 1) values. A sampler is therefore checked by
transforming its output with the *target's* conditional CDFs and testing the result against iid
U(0, 1): ``pit_uniformity`` tests the pooled marginal law, ``pit_independence`` the dependence
between consecutive columns (which a marginal test cannot see). Both nulls are exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.stats.arguments import require_all_in_closed_unit_interval, require_matrix
from cspd_ref.stats.details import IndependenceDetails, KSDetails, PooledKSDetails
from cspd_ref.stats.ks import ks_one_sample, uniform_cdf
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, require_int


def pit_uniformity(u: ArrayLike) -> CheckResult:
    """Exact KS test that the pooled PIT values are U(0, 1).

    Null hypothesis: the ``n * m`` entries of ``u`` are iid U(0, 1) (what the Rosenblatt transform
    of samples from the target produces).

    Assumptions: none beyond the null; under it the pooled values are an iid U(0, 1) sample of
    size ``n * m``, so the one-sample KS test against the identity CDF on [0, 1] is exact.

    Maths: ``D = sup_t |G(t) - t|`` with ``G`` the empirical CDF of all entries; exact p-value of
    ``scipy.stats.kstwo`` (see ``ks_one_sample``).

    Args:
        u: ``(n, m)`` values in [0, 1] (rows = sequences, columns = positions/coordinates).

    Returns:
        ``CheckResult`` named ``"pit_uniformity"``, ``n = n * m``, with ``PooledKSDetails``
        (those of ``ks_one_sample`` plus ``rows``, ``columns``).

    Raises:
        ValueError: ``u`` not 2-D, empty, non-finite or outside [0, 1].

    Examples:
        >>> import numpy as np
        >>> pit_uniformity(np.random.default_rng(0).random((500, 3))).pvalue > 0.01
        True
    """
    values = require_all_in_closed_unit_interval(require_matrix(u, "u"), "u")
    rows, columns = values.shape
    result = ks_one_sample(values.ravel(), uniform_cdf, name="pit_uniformity",
                           compared="pooled Rosenblatt/PIT values vs U(0, 1)",
                           null="all PIT values are iid U(0, 1)")
    assert isinstance(result.details, KSDetails)
    return replace(result, details=PooledKSDetails(**asdict(result.details), rows=rows,
                                                   columns=columns))


#: Degrees of the orthonormal shifted Legendre polynomials used by ``pit_independence``.
LEGENDRE_DEGREES = (1, 2)


def shifted_legendre(u: FloatArray, degree: int) -> FloatArray:
    """Orthonormal shifted Legendre polynomial of degree 1 or 2 on [0, 1]:
    ``phi_1(u) = sqrt(3) (2u - 1)``, ``phi_2(u) = sqrt(5) (6u^2 - 6u + 1)``.

    For ``U ~ U(0, 1)``: ``E phi_k(U) = 0``, ``E phi_k(U) phi_l(U) = delta_kl``;
    ``|phi_1| <= sqrt(3)``, ``|phi_2| <= sqrt(5)``.

    Examples:
        >>> import numpy as np
        >>> shifted_legendre(np.array([0.0, 0.5, 1.0]), 2)
        array([ 2.23606798, -1.11803399,  2.23606798])
    """
    t = 2.0 * u - 1.0
    if degree == 1:
        return np.asarray(math.sqrt(3.0) * t, dtype=np.float64)
    if degree == 2:
        return np.asarray(math.sqrt(5.0) * 0.5 * (3.0 * t * t - 1.0), dtype=np.float64)
    raise ValueError(f"degree: expected 1 or 2, got {degree}")


def bernstein_two_sided_pvalue(mean: float, n: int, variance: float, bound: float) -> float:
    """``P(|mean of n iid X| >= |mean|) <= 2 exp(-n m^2 / (2 (sigma^2 + b |m| / 3)))`` for
    zero-mean ``X`` with variance ``sigma^2`` and ``|X| <= b`` (Bernstein's inequality):
    a p-value valid at every level and every ``n``.

    Examples:
        >>> round(bernstein_two_sided_pvalue(0.1, 1000, 1.0, 3.0), 6)  # 2 exp(-5 / 1.1)
        0.021231
    """
    m = abs(mean)
    exponent = n * m * m / (2.0 * (variance + bound * m / 3.0))
    return float(min(1.0, 2.0 * math.exp(-exponent)))


def pit_independence(u: ArrayLike, *, offset: int = 0) -> CheckResult:
    """Test of independence between consecutive PIT columns, valid at every level (Bernstein).

    Null hypothesis: all entries of ``u`` are iid U(0, 1) (in particular, consecutive columns are
    independent).

    Assumptions: none beyond the null (rows independent, as the null states).

    Maths: take the disjoint column pairs ``(j, j + 1)``, ``j = offset, offset + 2, ...``, and for
    ``k, l`` in {1, 2} the products ``X = phi_k(u_ij) phi_l(u_i,j+1)`` of orthonormal shifted
    Legendre polynomials (``shifted_legendre``). Under the null the ``N = rows x pairs`` products
    of one ``(k, l)`` are iid with mean 0, variance exactly 1 and ``|X| <= b_kl``
    (``b = sqrt(3), sqrt(15), sqrt(15), 5``), so Bernstein's inequality bounds the tail of their
    mean ``T_kl`` for every ``N``: ``p_kl = 2 exp(-N T^2 / (2 (1 + b |T| / 3)))``
    (``bernstein_two_sided_pvalue``). The check's p-value is ``min(1, 4 min_kl p_kl)``
    (Bonferroni over the four): a bound, not an approximation. ``T_11`` is a rank correlation
    (``12 (u - 1/2)(v - 1/2)``); ``(1, 2)``, ``(2, 1)``, ``(2, 2)`` see dependence in spread.
    For small ``T`` the exponent is ``N T^2 / 2``, the CLT rate: little power is lost to the
    bound. ``offset = 0`` tests the pairs (0, 1), (2, 3), ...; ``offset = 1`` the pairs (1, 2),
    (3, 4), ...: both together cover every consecutive pair.

    Args:
        u: ``(n, m)`` values in [0, 1], ``n >= 1``, ``m >= offset + 2``.
        offset: 0 or 1 (keyword-only).

    Returns:
        ``CheckResult`` named ``"pit_independence[offset]"``, ``statistic`` = the largest
        ``sqrt(N) |T_kl|``, with ``IndependenceDetails`` (``pairs``, ``means``: ``T_kl``,
        ``worst``: ``"k,l"``).

    Raises:
        ValueError: ``u`` not 2-D, empty, non-finite or outside [0, 1]; too few columns for
            ``offset``; ``offset`` not 0 or 1.

    Examples:
        >>> import numpy as np
        >>> u = np.random.default_rng(0).random((2000, 4))
        >>> pit_independence(u).pvalue > 0.01
        True
        >>> pit_independence(np.repeat(u[:, :1], 2, axis=1)).pvalue < 1e-100  # u_1 = u_0
        True
    """
    values = require_all_in_closed_unit_interval(require_matrix(u, "u"), "u")
    offset = require_int(offset, "offset", minimum=0)
    if offset > 1:
        raise ValueError(f"offset: must be 0 or 1, got {offset}")
    columns = values.shape[1]
    first = np.arange(offset, columns - 1, 2)
    if first.size == 0:
        raise ValueError(f"u: needs at least {offset + 2} columns for offset {offset}, got "
                         f"{columns}")
    left, right = values[:, first].ravel(), values[:, first + 1].ravel()
    count = left.shape[0]
    bounds = {1: math.sqrt(3.0), 2: math.sqrt(5.0)}
    means: dict[tuple[int, int], float] = {}
    pvalues: dict[tuple[int, int], float] = {}
    phi_left = {k: shifted_legendre(left, k) for k in LEGENDRE_DEGREES}
    phi_right = {k: shifted_legendre(right, k) for k in LEGENDRE_DEGREES}
    for k in LEGENDRE_DEGREES:
        for m in LEGENDRE_DEGREES:
            mean = float(np.mean(phi_left[k] * phi_right[m]))
            means[(k, m)] = mean
            pvalues[(k, m)] = bernstein_two_sided_pvalue(mean, count, 1.0,
                                                         bounds[k] * bounds[m])
    worst = min(pvalues, key=lambda key: pvalues[key])
    tests = len(pvalues)
    floor = min(1.0, tests * min(bernstein_two_sided_pvalue(bounds[k] * bounds[m], count, 1.0,
                                                            bounds[k] * bounds[m])
                                 for k, m in pvalues))
    return CheckResult(
        name=f"pit_independence[{offset}]",
        statistic=float(max(abs(v) for v in means.values()) * math.sqrt(count)),
        pvalue=float(min(1.0, tests * pvalues[worst])),
        n=count,
        compared=f"Legendre products of PIT columns (j, j+1), j = {offset}, {offset + 2}, ..., "
                 "vs mean 0 (Bernstein bound)",
        null="all PIT values are iid U(0, 1), in particular consecutive columns are independent",
        min_pvalue=floor,
        details=IndependenceDetails(pairs=tuple((int(j), int(j) + 1) for j in first),
                                    means={f"{k},{m}": v for (k, m), v in means.items()},
                                    worst=f"{worst[0]},{worst[1]}"),
    )
