"""Checks on Rosenblatt / probability-integral-transform (PIT) values (SPEC §4, §5).

For a sequence model whose conditionals are known in closed form, the Rosenblatt transform
``u_t = F_t(x_t | x_<t)`` (each coordinate's conditional CDF given everything before it) maps
sequences drawn from the model to arrays of iid U(0, 1) values. A sampler is therefore checked by
transforming its output with the *target's* conditional CDFs and testing the result against iid
U(0, 1): ``pit_uniformity`` tests the marginal law, ``pit_independence`` targets dependence between
consecutive positions (which a marginal test cannot see).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cspd_ref.stats._checks import require_matrix, require_unit_values
from cspd_ref.stats.ks import _ks_one_sample
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, require_int

#: Highest Legendre degree supported by ``pit_independence``.
MAX_DEGREE = 4


def pit_uniformity(u: ArrayLike) -> CheckResult:
    """Exact KS test that the pooled PIT values are U(0, 1).

    Null hypothesis: the ``n * m`` entries of ``u`` are iid U(0, 1) (what the Rosenblatt transform
    of samples from the target produces).

    Assumptions: none beyond the null; under it the pooled values are an iid U(0, 1) sample of
    size ``n * m``, so the one-sample KS test against the identity CDF on [0, 1] is exact. (If
    only the rows were independent the pooled KS would not be exact; the Rosenblatt transform
    makes all entries independent under the null.)

    Maths: ``D = sup_t |G(t) - t|`` with ``G`` the empirical CDF of all entries; exact p-value of
    ``scipy.stats.kstwo`` (see ``ks_one_sample``).

    Args:
        u: ``(n, m)`` values in [0, 1] (rows = sequences, columns = positions/coordinates).

    Returns:
        ``CheckResult`` named ``"pit_uniformity"``, ``n = n * m``; details ``rows``, ``columns``.

    Raises:
        ValueError: ``u`` not 2-D, empty, non-finite or outside [0, 1].
    """
    values = require_unit_values(require_matrix(u, "u"), "u")
    rows, columns = values.shape
    return _ks_one_sample(
        values.ravel(), _uniform_cdf, name="pit_uniformity",
        compared="pooled Rosenblatt/PIT values vs U(0, 1)",
        null="all PIT values are iid U(0, 1)",
        extra={"rows": rows, "columns": columns},
    )


def _uniform_cdf(values: FloatArray) -> FloatArray:
    return np.clip(values, 0.0, 1.0)


def shifted_legendre(u: FloatArray, degree: int) -> FloatArray:
    """Orthonormal shifted Legendre polynomials ``phi_1 .. phi_degree`` on [0, 1].

    ``E[phi_k(U)] = 0`` and ``E[phi_k(U) phi_l(U)] = delta_kl`` for ``U ~ U(0, 1)``. Returns shape
    ``(*u.shape, degree)``; ``1 <= degree <= 4``.
    """
    t = 2.0 * u - 1.0  # Legendre polynomials P_k on [-1, 1], scaled by sqrt(2k + 1)
    p = [t, 0.5 * (3.0 * t**2 - 1.0), 0.5 * (5.0 * t**3 - 3.0 * t),
         0.125 * (35.0 * t**4 - 30.0 * t**2 + 3.0)]
    return np.stack([math.sqrt(2.0 * k + 1.0) * p[k - 1] for k in range(1, degree + 1)], axis=-1)


def legendre_fourth_moments(degree: int) -> FloatArray:
    """``M[k, k'] = E[phi_k(U)^2 phi_k'(U)^2]``, ``U ~ U(0, 1)`` (exact Gauss–Legendre rule)."""
    nodes, weights = np.polynomial.legendre.leggauss(2 * MAX_DEGREE + 2)
    phi = shifted_legendre(0.5 * (nodes + 1.0), degree)  # (q, K)
    sq = phi**2
    return np.asarray(np.einsum("q,qk,ql->kl", 0.5 * weights, sq, sq), dtype=np.float64)


def smooth_statistic_variance(n: int, m: int, degree: int) -> float:
    """Exact null variance of the ``pit_independence`` statistic (formula in its docstring)."""
    moments = legendre_fourth_moments(degree)
    size = degree * degree
    within = np.einsum("ac,bd->abcd", moments, moments).reshape(size, size)
    within_sum = float(np.sum(within - 1.0 - 2.0 * np.eye(size)))
    across_sum = float(size * np.sum(moments - 1.0))
    pairs = m - 1
    return 2.0 * pairs * size + (pairs * within_sum + 2.0 * (pairs - 1) * across_sum) / n


def pit_independence(u: ArrayLike, *, degree: int = 2) -> CheckResult:
    """Neyman smooth test of independence between consecutive columns of PIT values.

    Null hypothesis: the entries of ``u`` are iid U(0, 1); the statistic is built to detect
    dependence between columns ``j`` and ``j + 1`` (e.g. an AR sampler that lets a rejection leak
    into the next position).

    Assumptions: rows independent; under the null every column is U(0, 1) and the columns are
    independent. The reference law is asymptotic (chi-square, multivariate CLT); it is accurate
    for ``n >= 50`` or so (the summands are bounded). If the columns are not marginally uniform
    the statistic can also react to that; ``pit_uniformity`` is the dedicated marginal test.

    Maths: with ``phi_1..phi_K`` the orthonormal shifted Legendre polynomials
    (``K = degree``), for every pair ``(j, j + 1)`` and ``k, l`` in ``1..K``

        ``T_jkl = n^(-1/2) sum_i phi_k(u_ij) phi_l(u_i,j+1)``.

    Under the null ``E T = 0`` and ``Cov T = I``: within a pair by orthonormality; across pairs
    because every product contains a factor ``phi_k`` of a column that appears once, whose mean
    is 0 (``E[phi_k(U_j) phi_l(U_j+1) phi_k'(U_j+1) phi_l'(U_j+2)] = E[phi_k(U_j)] * ... = 0``).
    By the multivariate CLT ``S = sum T_jkl^2`` is asymptotically chi-square with
    ``D = (m - 1) K^2`` degrees of freedom. For finite n the p-value uses the Satterthwaite
    scaled chi-square ``c * chi2(nu)`` whose mean ``D`` and variance are the *exact* ones of ``S``
    under the null: with ``M_kk' = E[phi_k(U)^2 phi_k'(U)^2]``,

        ``Var S = 2D + (1/n) [ (m-1) sum_{(k,l),(k',l')} (M_kk' M_ll' - 1 - 2 delta)
                              + 2 (m-2) K^2 sum_{l,k'} (M_lk' - 1) ]``

    (fourth moments of the summands within a pair and across adjacent pairs), ``c = Var/(2D)``,
    ``nu = 2 D^2 / Var``. Higher cumulants are not matched: simulated false-alarm rates at
    n = 300, m = 6, K = 2 were 1.2e-3 at 1e-3 and 1.35e-4 at 1e-4 (the excess shrinks like 1/n).
    ``T_j11 / sqrt(n)`` is the sample correlation of the centred PITs (Spearman-like); degree 2
    adds dependence in spread.

    Args:
        u: ``(n, m)`` values in [0, 1], ``n >= 2``, ``m >= 2``.
        degree: number of Legendre polynomials K, 1 to 4 (default 2).

    Returns:
        ``CheckResult`` named ``"pit_independence"``, ``statistic = S``; details ``df``,
        ``pair_statistics`` (per-pair chi-square contributions), ``worst_pair`` and
        ``lag1_correlations`` (``T_j11 / sqrt(n)``).

    Raises:
        ValueError: ``u`` not 2-D, with fewer than 2 rows or 2 columns (nothing to test),
            non-finite or outside [0, 1]; ``degree`` not an integer in 1..4.
    """
    values = require_unit_values(require_matrix(u, "u", min_rows=2), "u")
    degree = require_int(degree, "degree", minimum=1)
    if degree > MAX_DEGREE:
        raise ValueError(f"degree: must be <= {MAX_DEGREE}, got {degree}")
    rows, columns = values.shape
    if columns < 2:
        raise ValueError("u: needs at least 2 columns (independence between consecutive "
                         "columns); skip this check for m == 1")
    phi = shifted_legendre(values, degree)  # (n, m, K)
    # T[j, k, l] = n^-1/2 sum_i phi_k(u_ij) phi_l(u_i,j+1)
    t = np.einsum("ijk,ijl->jkl", phi[:, :-1, :], phi[:, 1:, :]) / math.sqrt(rows)
    pair_statistics = np.sum(t**2, axis=(1, 2))
    statistic = float(pair_statistics.sum())
    df = (columns - 1) * degree**2
    variance = smooth_statistic_variance(rows, columns, degree)
    scale = variance / (2.0 * df)
    effective_df = 2.0 * df * df / variance
    pvalue = float(np.clip(stats.chi2.sf(statistic / scale, effective_df), 0.0, 1.0))
    return CheckResult(
        name="pit_independence",
        statistic=statistic,
        pvalue=pvalue,
        n=rows,
        compared=f"consecutive PIT columns (j, j+1), {columns - 1} pairs, Legendre degree "
                 f"{degree}, vs independence",
        null="all PIT values are iid U(0, 1), in particular consecutive columns are independent",
        details={"df": df, "degree": degree, "columns": columns,
                 "null_variance": variance, "effective_df": effective_df,
                 "asymptotic_pvalue": float(stats.chi2.sf(statistic, df)),
                 "pair_statistics": pair_statistics.tolist(),
                 "worst_pair": int(np.argmax(pair_statistics)),
                 "lag1_correlations": (t[:, 0, 0] / math.sqrt(rows)).tolist()},
    )
