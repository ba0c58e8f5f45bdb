"""Two-sample maximum mean discrepancy (MMD) test with a permutation null (SPEC §5).

Used where the target has no closed-form CDF (nonlinear diffusion heads): samples of the sampler
under test are compared with reference samples of the target.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.stats._checks import require_finite_float, require_matrix
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, require_generator, require_int

#: Permutations are processed in blocks of this many columns (bounds the memory of K @ S).
PERMUTATION_BLOCK = 256


def pooled_squared_distances(z: FloatArray) -> FloatArray:
    """``(N, N)`` matrix of squared Euclidean distances between the rows of ``z`` (float64).

    Computed as ``|a|^2 + |b|^2 - 2 a.b`` after centring (which reduces cancellation), clipped at
    0, with an exact zero diagonal.
    """
    c = z - z.mean(axis=0)
    sq = np.einsum("ij,ij->i", c, c)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (c @ c.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def median_heuristic_bandwidth(d2: FloatArray) -> float:
    """Median of the off-diagonal pairwise distances (the median heuristic), from squared ones.

    The full matrix holds the N zero diagonal entries plus every off-diagonal distance twice, so
    the (lower) median of the off-diagonal multiset is the order statistic ``N + (N(N-1) - 1)//2``
    of the flattened matrix. Falls back to the mean of the positive distances, then to 1.0, when
    the median is 0 (many identical points).
    """
    n = d2.shape[0]
    flat = d2.ravel()
    k = n + (n * (n - 1) - 1) // 2
    median_sq = float(np.partition(flat, k)[k])
    if median_sq > 0.0:
        return math.sqrt(median_sq)
    positive = flat[flat > 0.0]
    if positive.size:
        return float(np.sqrt(positive).mean())
    return 1.0


def mmd_permutation_test(x: ArrayLike, y: ArrayLike, rng: np.random.Generator, *,
                         n_permutations: int = 200,
                         bandwidth: float | None = None) -> CheckResult:
    """Permutation test of equal laws with the unbiased Gaussian-kernel MMD² statistic.

    Null hypothesis: the rows of ``x`` and ``y`` are iid from one common law (so the pooled sample
    is exchangeable).

    Assumptions: the ``n + m`` rows are independent; the bandwidth is either fixed in advance or
    computed from the *pooled* sample (a symmetric function of it, hence invariant under
    permutations). Under exchangeability the permutation p-value is valid at every level for
    every sample size (not asymptotic): ``P(p <= alpha) <= alpha``.

    Maths: kernel ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``, ``h`` = median pairwise distance of the
    pooled sample when ``bandwidth`` is None (median heuristic). Unbiased estimator

        ``MMD²_u = sum_{i!=j} k(x_i,x_j)/(n(n-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1))
                  - 2 sum_{i,j} k(x_i,y_j)/(n m)``.

    The pooled kernel matrix ``K`` (zero diagonal) is built once; for a label vector ``s`` (1 on
    the rows called x) ``S_xx = s' K s``, ``S_xy = s' K 1 - S_xx`` and
    ``S_yy = 1' K 1 - 2 S_xy - S_xx``, so all permutations are evaluated with one matrix product
    ``K @ S``. p-value
    ``(1 + #{b : MMD²_b >= MMD²_obs}) / (1 + B)`` over ``B`` uniformly random relabellings; its
    smallest possible value is ``1 / (1 + B)`` — choose ``B >= 1/alpha``.

    Args:
        x: ``(n, d)``, ``n >= 2``.
        y: ``(m, d)``, ``m >= 2``, same ``d``.
        rng: source of the permutations.
        n_permutations: ``B >= 1``.
        bandwidth: kernel bandwidth ``h > 0``; None for the median heuristic.

    Returns:
        ``CheckResult`` named ``"mmd"``, ``statistic = MMD²_u``, ``n = n + m``; details
        ``bandwidth``, ``n_permutations``, ``n_x``, ``n_y``, ``n_exceed``.

    Raises:
        ValueError: bad shapes (fewer than 2 rows, different ``d``), NaN/inf, bad
            ``n_permutations`` or ``bandwidth``, ``rng`` not a Generator.
    """
    xs = require_matrix(x, "x", min_rows=2)
    ys = require_matrix(y, "y", min_rows=2)
    if ys.shape[1] != xs.shape[1]:
        raise ValueError(f"y: expected {xs.shape[1]} columns (as x), got shape {ys.shape}")
    rng = require_generator(rng)
    n_permutations = require_int(n_permutations, "n_permutations", minimum=1)
    if bandwidth is not None:
        bandwidth = require_finite_float(bandwidth, "bandwidth")
        if bandwidth <= 0.0:
            raise ValueError(f"bandwidth: must be > 0, got {bandwidth!r}")
    n, m = xs.shape[0], ys.shape[0]
    total = n + m
    d2 = pooled_squared_distances(np.concatenate([xs, ys], axis=0))
    h = median_heuristic_bandwidth(d2) if bandwidth is None else bandwidth
    kernel = d2  # reuse the buffer: K = exp(-d2 / (2 h^2)), diagonal set to 0
    np.multiply(kernel, -0.5 / (h * h), out=kernel)
    np.exp(kernel, out=kernel)
    np.fill_diagonal(kernel, 0.0)
    row_sums = kernel.sum(axis=1)
    grand = float(row_sums.sum())

    def statistics(labels: FloatArray) -> FloatArray:
        """MMD²_u for each column of the ``(N, b)`` 0/1 label matrix."""
        s_xx = np.einsum("ib,ib->b", labels, kernel @ labels)
        s_xy = row_sums @ labels - s_xx
        s_yy = grand - 2.0 * s_xy - s_xx
        return np.asarray(s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m),
                          dtype=np.float64)

    observed_labels = np.zeros((total, 1), dtype=np.float64)
    observed_labels[:n, 0] = 1.0
    observed = float(statistics(observed_labels)[0])
    # Relative tolerance so that permutations equal to the observed value up to rounding
    # count as ">=" (ties always count against rejection).
    tolerance = 1e-12 * max(1.0, abs(observed))
    n_exceed = 0
    done = 0
    while done < n_permutations:
        block = min(PERMUTATION_BLOCK, n_permutations - done)
        keys = rng.random((total, block))
        ranks = np.argsort(keys, axis=0)  # a uniform random permutation per column
        labels = (ranks < n).astype(np.float64)
        n_exceed += int(np.sum(statistics(labels) >= observed - tolerance))
        done += block
    pvalue = (1.0 + n_exceed) / (1.0 + n_permutations)
    return CheckResult(
        name="mmd",
        statistic=observed,
        pvalue=float(pvalue),
        n=total,
        compared=f"x ({n} rows) vs y ({m} rows), Gaussian-kernel MMD² (h = {h:.4g}), "
                 f"{n_permutations} permutations",
        null="x and y are iid from one common law (the pooled sample is exchangeable)",
        details={"bandwidth": h, "bandwidth_rule": "median" if bandwidth is None else "given",
                 "n_permutations": n_permutations, "n_x": n, "n_y": m, "n_exceed": n_exceed},
    )
