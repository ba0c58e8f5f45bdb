"""Two-sample maximum mean discrepancy (MMD) tests (docs/battery.md §3).

Used where the target has no closed-form CDF (nonlinear diffusion heads): samples of the sampler
under test are compared with reference samples of the target.

* ``mmd_betting_test`` — the kernel two-sample test by betting (Shekhar & Ramdas 2023): an MMD
  witness function learned on a training split, then a bettor's wealth on the held-out pairs.
  Its p-value ``1 / max wealth`` is valid at *every* level by Ville's inequality, so it can be
  used at the gate's 1e-8 levels. This is what ``verify`` runs.
* ``mmd_permutation_test`` — the quadratic-time MMD with a permutation null: valid at every
  level too, but its p-value cannot go below ``1 / (B + 1)``; use it only at levels well above
  that (exploratory work), never at the gate's levels.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.stats.arguments import require_finite_float, require_matrix
from cspd_ref.stats.details import MMDBettingDetails, MMDPermutationDetails
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, require_generator, require_int

#: Training points per sample for the betting test's witness function.
WITNESS_POINTS = 250
#: Largest betting fraction (wealth factors stay in [1 - MAX_BET, 1 + MAX_BET]).
MAX_BET = 0.5
#: Rows per block when evaluating the witness (bounds memory).
WITNESS_BLOCK = 16384

#: Permutations are processed in blocks of this many columns (bounds the memory of K @ S).
PERMUTATION_BLOCK = 256


def require_two_sample_arguments(x: ArrayLike, y: ArrayLike, *, rng: np.random.Generator,
                                 bandwidth: float | None,
                                 ) -> tuple[FloatArray, FloatArray, np.random.Generator,
                                            float | None]:
    """Validate the arguments both MMD tests share: two finite ``(., d)`` samples of at least
    2 rows with the same ``d``, a Generator, and a positive bandwidth or None.

    Examples:
        >>> import numpy as np
        >>> xs, ys, rng, h = require_two_sample_arguments(
        ...     [[0.0], [1.0]], [[0.5], [2.0]], rng=np.random.default_rng(0), bandwidth=None)
        >>> xs.shape, h
        ((2, 1), None)
    """
    xs = require_matrix(x, "x", min_rows=2)
    ys = require_matrix(y, "y", min_rows=2)
    if ys.shape[1] != xs.shape[1]:
        raise ValueError(f"y: expected {xs.shape[1]} columns (as x), got shape {ys.shape}")
    rng = require_generator(rng)
    if bandwidth is not None:
        bandwidth = require_finite_float(bandwidth, "bandwidth")
        if bandwidth <= 0.0:
            raise ValueError(f"bandwidth: must be > 0, got {bandwidth}")
    return xs, ys, rng, bandwidth


def pooled_squared_distances(z: FloatArray) -> FloatArray:
    """``(N, N)`` matrix of squared Euclidean distances between the rows of ``z`` (float64).

    Computed as ``|a|^2 + |b|^2 - 2 a.b`` after centring (which reduces cancellation), clipped at
    0, with an exact zero diagonal.

    Examples:
        >>> import numpy as np
        >>> pooled_squared_distances(np.array([[0.0, 0.0], [3.0, 4.0]]))
        array([[ 0., 25.],
               [25.,  0.]])
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

    Examples:
        >>> import numpy as np
        >>> d2 = pooled_squared_distances(np.array([[0.0], [1.0], [3.0]]))
        >>> median_heuristic_bandwidth(d2)  # distances 1, 2, 3
        2.0
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


def mmd_permutation_test(x: ArrayLike, y: ArrayLike, *, rng: np.random.Generator,
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
        rng: source of the permutations (keyword-only).
        n_permutations: ``B >= 1``.
        bandwidth: kernel bandwidth ``h > 0``; None for the median heuristic.

    Returns:
        ``CheckResult`` named ``"mmd"``, ``statistic = MMD²_u``, ``n = n + m``, with
        ``MMDPermutationDetails`` (``bandwidth``, ``bandwidth_rule``, ``n_permutations``,
        ``n_x``, ``n_y``, ``n_exceed``).

    Raises:
        ValueError: bad shapes (fewer than 2 rows, different ``d``), NaN/inf, bad
            ``n_permutations`` or ``bandwidth``, ``rng`` not a Generator.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> result = mmd_permutation_test(rng.standard_normal((100, 2)),
        ...                               rng.standard_normal((100, 2)), rng=rng,
        ...                               n_permutations=199)
        >>> result.pvalue > 0.01, result.min_pvalue
        (True, 0.005)
    """
    xs, ys, rng, bandwidth = require_two_sample_arguments(x, y, rng=rng, bandwidth=bandwidth)
    n_permutations = require_int(n_permutations, "n_permutations", minimum=1)
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
        min_pvalue=1.0 / (1.0 + n_permutations),
        details=MMDPermutationDetails(
            bandwidth=h, bandwidth_rule="median" if bandwidth is None else "given",
            n_permutations=n_permutations, n_x=n, n_y=m, n_exceed=n_exceed),
    )


def gaussian_kernel_matrix(a: FloatArray, b: FloatArray, bandwidth: float) -> FloatArray:
    """``exp(-|a_i - b_j|^2 / (2 h^2))`` for all rows (squared distances clipped at 0).

    Examples:
        >>> import numpy as np
        >>> gaussian_kernel_matrix(np.zeros((1, 2)), np.array([[0.0, 0.0], [2.0, 0.0]]), 1.0)
        array([[1.        , 0.13533528]])
    """
    sq = (np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
          - 2.0 * (a @ b.T))
    np.maximum(sq, 0.0, out=sq)
    return np.asarray(np.exp(-sq / (2.0 * bandwidth * bandwidth)), dtype=np.float64)


def betting_log_wealth(payoffs: FloatArray) -> FloatArray:
    """Log-wealth after each round of a one-sided bettor on payoffs in [-1, 1] (aGRAPA).

    The fraction of wealth bet on round t is ``lambda_t = clip(m / (v + m^2), 0, MAX_BET)``
    from the running mean ``m`` and variance ``v`` of the payoffs of rounds ``< t`` (a
    predictable strategy: it uses only the past; start ``m = 0``, ``v = 1``). Wealth
    ``W_t = prod_{s <= t} (1 + lambda_s h_s)`` is positive since ``|lambda h| <= MAX_BET < 1``.

    Examples:
        >>> import numpy as np
        >>> betting_log_wealth(np.full(3, 0.5))  # bets 0, 0.4, then MAX_BET
        array([0.        , 0.18232156, 0.40546511])
    """
    t = payoffs.shape[0]
    counts = np.arange(t, dtype=np.float64)  # rounds before t
    sums = np.concatenate([[0.0], np.cumsum(payoffs)[:-1]])
    squares = np.concatenate([[0.0], np.cumsum(payoffs * payoffs)[:-1]])
    mean = np.where(counts > 0, sums / np.maximum(counts, 1.0), 0.0)
    var = np.where(counts > 1, (squares - counts * mean * mean) / np.maximum(counts - 1.0, 1.0),
                   1.0)
    bet = np.clip(mean / (np.maximum(var, 0.0) + mean * mean + 1e-12), 0.0, MAX_BET)
    return np.asarray(np.cumsum(np.log1p(bet * payoffs)), dtype=np.float64)


def mmd_betting_test(x: ArrayLike, y: ArrayLike, *, rng: np.random.Generator,
                     witness_points: int = WITNESS_POINTS,
                     bandwidth: float | None = None) -> CheckResult:
    """Kernel two-sample test by betting: an MMD witness, then Ville's inequality.

    Null hypothesis: the rows of ``x`` and ``y`` are iid from one common law.

    Assumptions: the ``n + m`` rows are independent; ``rng`` is independent of them.

    Maths (after Shekhar & Ramdas, IEEE Trans. Inf. Theory 2023). Shuffle each sample with
    ``rng``; the first ``w`` rows of each are a *training* split: bandwidth ``h`` (median
    heuristic on the training rows, unless given) and the MMD witness
    ``f(z) = mean_i k(z, x_i) - mean_j k(z, y_j)`` over them, Gaussian kernel ``k`` in (0, 1],
    so ``f`` takes values in [-1, 1]. The remaining rows are paired ``(x_t, y_t)``,
    ``t = 1..T`` (``T = min(n, m) - w``), with payoffs ``h_t = (f(x_t) - f(y_t)) / 2`` in
    [-1, 1]. Under the null, given the training split, the ``h_t`` are iid with mean 0 (``x_t``
    and ``y_t`` exchangeable), so the wealth ``W_t = prod (1 + lambda_s h_s)`` of any
    predictable bet ``lambda_s`` in [0, 1) is a nonnegative martingale with ``W_0 = 1``, and
    Ville's inequality gives ``P(max_t W_t >= 1/a) <= a`` for every ``a``: the p-value
    ``min(1, 1 / max_t W_t)`` is valid at every level and every sample size, with no asymptotics
    (and would stay valid if the stream were stopped early). Under an alternative the witness is
    positive on average on x's law, ``E h > 0``, and the wealth grows like
    ``exp(T E[h]^2 / (2 Var h))`` (aGRAPA bets, ``betting_log_wealth``). The smallest
    attainable p-value is that of payoffs all equal to 1.

    Args:
        x: ``(n, d)`` samples under test, ``n >= witness_points + 2``.
        y: ``(m, d)`` reference samples, ``m >= witness_points + 2``, same ``d``.
        rng: source of the shuffles (keyword-only).
        witness_points: training rows per sample (default 250).
        bandwidth: kernel bandwidth ``h > 0``; None for the median heuristic.

    Returns:
        ``CheckResult`` named ``"mmd_betting"``, ``statistic`` = log of the maximal wealth,
        ``n = n + m``, with ``MMDBettingDetails`` (``bandwidth``, ``pairs``,
        ``witness_points``, ``mean_payoff``, ``final_log_wealth``).

    Raises:
        ValueError: bad shapes, too few rows, NaN/inf, a bad ``bandwidth`` or
            ``witness_points``, ``rng`` not a Generator.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> same = mmd_betting_test(rng.standard_normal((5000, 2)),
        ...                         rng.standard_normal((5000, 2)), rng=rng)
        >>> wide = mmd_betting_test(1.5 * rng.standard_normal((5000, 2)),
        ...                         rng.standard_normal((5000, 2)), rng=rng)
        >>> same.pvalue > 0.01, wide.pvalue < 1e-10, wide.min_pvalue < 1e-300
        (True, True, True)
    """
    xs, ys, rng, bandwidth = require_two_sample_arguments(x, y, rng=rng, bandwidth=bandwidth)
    w = require_int(witness_points, "witness_points", minimum=1)
    if min(xs.shape[0], ys.shape[0]) < w + 2:
        raise ValueError(f"x: needs at least witness_points + 2 = {w + 2} rows in each sample, "
                         f"got {xs.shape[0]} and {ys.shape[0]}")
    xs = xs[rng.permutation(xs.shape[0])]
    ys = ys[rng.permutation(ys.shape[0])]
    centre = np.concatenate([xs[:w], ys[:w]]).mean(axis=0)
    train_x, train_y = xs[:w] - centre, ys[:w] - centre
    h = (median_heuristic_bandwidth(pooled_squared_distances(np.concatenate([train_x, train_y])))
         if bandwidth is None else bandwidth)
    pairs = min(xs.shape[0], ys.shape[0]) - w
    test_x, test_y = xs[w:w + pairs] - centre, ys[w:w + pairs] - centre
    payoffs = np.empty(pairs)
    for start in range(0, pairs, WITNESS_BLOCK):
        stop = min(pairs, start + WITNESS_BLOCK)
        fx = (gaussian_kernel_matrix(test_x[start:stop], train_x, h).mean(axis=1)
              - gaussian_kernel_matrix(test_x[start:stop], train_y, h).mean(axis=1))
        fy = (gaussian_kernel_matrix(test_y[start:stop], train_x, h).mean(axis=1)
              - gaussian_kernel_matrix(test_y[start:stop], train_y, h).mean(axis=1))
        payoffs[start:stop] = 0.5 * (fx - fy)
    np.clip(payoffs, -1.0, 1.0, out=payoffs)  # rounding only: |f| <= 1 exactly
    log_wealth = betting_log_wealth(payoffs)
    best = float(max(0.0, log_wealth.max()))
    floor_log = float(betting_log_wealth(np.ones(pairs))[-1])
    return CheckResult(
        name="mmd_betting",
        statistic=best,
        pvalue=float(math.exp(-best)),
        n=xs.shape[0] + ys.shape[0],
        compared=f"x vs y: MMD witness (Gaussian kernel, h = {h:.4g}, {w} + {w} training rows) "
                 f"bet on {pairs} held-out pairs",
        null="x and y are iid from one common law",
        min_pvalue=float(math.exp(-floor_log)),
        details=MMDBettingDetails(bandwidth=h, pairs=pairs, witness_points=w,
                                  mean_payoff=float(payoffs.mean()),
                                  final_log_wealth=float(log_wealth[-1])),
    )
