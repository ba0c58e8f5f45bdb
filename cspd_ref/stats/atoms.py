"""Atom check: a continuous law has no repeated values beyond what rounding explains
(docs/battery.md §3).

A sampler that returns the same value many times (0.0 from an uninitialised buffer, the draft
itself after a rejection, a reused noise stream) produces an *atom*, which no continuous law
has. Rounding to a finite dtype does create repeats legitimately (float32 N(0, 1) samples at
n = 1e5 repeat a few dozen pairs), so repeats are judged against the probability of the rounding
cell each repeated row stands for.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats
from scipy.spatial import cKDTree

from cspd_ref.stats.arguments import require_nonnegative
from cspd_ref.stats.details import AtomDetails
from cspd_ref.stats.precision import FloatFormat, float_format
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray

#: Factor applied to every cell-probability bound (slack for curvature of the density across
#: the cell, and for rounding in the sampler).
SAFETY_FACTOR = 4.0
#: Extra factor applied when the density is estimated from the data (no target density given).
DATA_DENSITY_SLACK = 25.0
#: Number of neighbouring samples behind the data-driven density estimate.
NEIGHBOURS = 20
#: At most this many repeated rows (the most repeated ones) are evaluated.
MAX_EVALUATED_ROWS = 256


def atom_check(samples: ArrayLike,
               target_log_prob: Callable[[FloatArray], ArrayLike] | None = None, *,
               min_cell_width: float = 0.0, resolution: str | None = None) -> CheckResult:
    """Test that repeated rows are explained by rounding a continuous law to the samples' dtype.

    Null hypothesis: the rows are iid from a law with a density (continuous), then rounded to
    the samples' floating dtype.

    Assumptions: the density at a repeated row is bounded by the bound described below; rows
    are independent.

    Maths. Call the *cell* of a row the set of reals that the sampler's arithmetic rounds to it.
    Its width in coordinate j is taken as ``w_j = max(ulp(x_j), ulp(max_i |x_ij|),
    min_cell_width)`` with ``ulp`` the spacing of the sampler's *native* format (``resolution``:
    a bfloat16 tensor arrives here as float32 values, but its cells are 2**16 times wider): a
    value's own ulp is the width of its round-to-nearest cell, and the floor
    ``ulp(max_i |x_ij|)`` (the column's largest magnitude) covers samplers whose intermediates
    (``mean + scale * z``, Box–Muller uniforms, ...) are rounded at the resolution of the data's
    scale rather than at the result's.
    The cell probability is ``c ≈ f(x) prod_j w_j`` (computed in logs), with ``f`` the density:

    * with ``target_log_prob``: ``f = max(exp(target_log_prob(x)), f_data)``, ``f_data`` below —
      the maximum keeps the check about atoms (a wrong law is the KS tests' business);
    * without: ``f = 25 * f_data`` (generous).

    ``f_data`` is a nearest-neighbour estimate that ignores the row's own copies: standardise the
    coordinates by their robust spreads ``sigma_j`` (IQR / 1.349), find the smallest Chebyshev
    radius ``r`` whose box around the row holds at least 20 *other* samples (``M`` of them,
    counted with multiplicity) and set ``f_data = M / (n prod_j 2 r sigma_j)``.

    A safety factor 4 gives the upper bound ``c_hi = 4 c``. The p-value is a weighted Bonferroni
    bound over *all* cells of the space, not only the observed ones (a union over the repeated
    rows alone would ignore that they were selected *for* repeating: float32 N(0, 1) data at
    n = 1e5 have ~70 repeated pairs and would score p ~ 2e-3). Each cell gets weight ``c``
    (the weights sum to about 1), and a cell's count ``t``, being ``Binomial(n, <= c_hi)``, has
    the super-uniform p-value ``binom.sf(t - 1, n, c_hi)``. Hence

        ``p = min(1, min over repeated rows of binom.sf(t - 1, n, c_hi) / c)``

    and ``P(p <= alpha) <= sum_cells alpha * c ≈ alpha``. Only the 256 most repeated rows are
    evaluated (a minimum over fewer rows is larger, so the p-value stays valid). For t = 2 a
    row's term is about ``8 n^2 c`` (the expected number of repeated pairs, inflated), so the
    legitimate pairs of float32 data score p = 1; 200 copies of one value score p ~ 1e-300 or
    less; one repeated pair scores p ~ 1e-4 in float64 1-D at n = 1e5 and ~0 in d >= 2. The
    tail is computed in logs (``binom.logsf``, or the union bound ``C(n, t) c_hi^t`` where that
    underflows); ``details.log10_pvalue`` keeps the exponent when ``pvalue`` underflows to 0.

    Args:
        samples: ``(n, d)`` (or ``(n,)``, read as d = 1) floating array in its own dtype
            (float16, float32 or float64); not converted before the check.
        target_log_prob: optional vectorised log-density of the target, ``(r, d)`` float64
            -> ``(r,)``.
        min_cell_width: optional absolute floor on the cell width (for samplers whose arithmetic
            is known to be coarser than the data's own scale).
        resolution: the sampler's native format (``"float64" | "float32" | "float16" |
            "bfloat16"``); default the samples' dtype. It must not be finer than that dtype.

    Returns:
        ``CheckResult`` named ``"atoms"``, ``statistic`` = largest multiplicity, with
        ``AtomDetails`` (``max_multiplicity``, ``repeated_value``: the row with that
        multiplicity, ``n_repeated_rows``, ``most_significant_value``/``_count``,
        ``cell_probability``, ``log10_pvalue``, ``density_source``, ``dtype``).

    Raises:
        ValueError: non-floating dtype, bad shape, empty, NaN/inf; ``target_log_prob`` not
            callable or returning the wrong shape / NaN / +inf; bad ``min_cell_width``.

    Examples:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal((10_000, 2))
        >>> atom_check(x).pvalue
        1.0
        >>> x[:200] = 0.0  # 200 copies of one value: an atom
        >>> result = atom_check(x)
        >>> result.pvalue < 1e-100, result.details.repeated_value
        (True, (0.0, 0.0))
    """
    x = _require_float_samples(samples)
    if target_log_prob is not None and not callable(target_log_prob):
        raise ValueError(f"target_log_prob: expected a callable or None, got "
                         f"{type(target_log_prob).__name__}")
    min_cell_width = require_nonnegative(min_cell_width, "min_cell_width")
    n, d = x.shape
    fmt = float_format(str(x.dtype) if resolution is None else resolution)
    if fmt.significand_bits > float_format(str(x.dtype)).significand_bits:
        raise ValueError(f"resolution: {fmt.name} is finer than the samples' dtype {x.dtype}")
    dtype = fmt.name
    rows, counts = unique_rows(x)
    repeated = counts >= 2
    source = "target and data" if target_log_prob is not None else "data"
    n_distinct = int(rows.shape[0])
    compared = f"repeated rows of {n} {dtype} samples (d = {d}) vs rounding of a continuous law"
    null = "the samples are iid from a continuous law, rounded to their dtype (no atoms)"
    if not np.any(repeated):
        return CheckResult(name="atoms", statistic=1.0, pvalue=1.0, n=n, compared=compared,
                           null=null, min_pvalue=0.0,
                           details=AtomDetails(dtype=str(dtype), n_distinct=n_distinct,
                                               density_source=source, max_multiplicity=1,
                                               repeated_value=None, n_repeated_rows=0,
                                               log10_pvalue=0.0))
    repeated_index = np.flatnonzero(repeated)
    n_repeated = repeated_index.shape[0]
    if n_repeated > MAX_EVALUATED_ROWS:  # keep the most repeated rows (a min over fewer rows
        keep = np.argsort(-counts[repeated_index], kind="stable")[:MAX_EVALUATED_ROWS]
        repeated_index = np.sort(repeated_index[keep])  # is larger: still a valid p-value)
    rep_rows = rows[repeated_index]
    rep_counts = counts[repeated_index]
    log_width = _log_cell_widths(x, rep_rows, min_cell_width, fmt)    # (r, d)
    log_volume = log_width.sum(axis=1)
    log_density = _log_density_from_data(x, rows, counts, repeated_index)
    if target_log_prob is None:
        log_density = log_density + math.log(DATA_DENSITY_SLACK)
    else:
        log_density = np.maximum(log_density,
                                 _log_density_from_target(target_log_prob, rep_rows))
    log_c = log_density + log_volume
    log_p = _log_cell_pvalues(rep_counts, n, log_c)
    worst = int(np.argmin(log_p))
    most = int(np.argmax(rep_counts))
    log_pvalue = float(min(0.0, log_p[worst]))
    return CheckResult(
        name="atoms",
        statistic=float(rep_counts[most]),
        pvalue=float(math.exp(log_pvalue)),
        n=n,
        compared=compared,
        null=null,
        min_pvalue=0.0,
        details=AtomDetails(
            dtype=str(dtype), n_distinct=n_distinct, density_source=source,
            max_multiplicity=int(rep_counts[most]),
            repeated_value=tuple(rep_rows[most].astype(np.float64).tolist()),
            n_repeated_rows=int(n_repeated),
            most_significant_value=tuple(rep_rows[worst].astype(np.float64).tolist()),
            most_significant_count=int(rep_counts[worst]),
            cell_probability=float(np.exp(log_c[worst])),
            log10_pvalue=log_pvalue / math.log(10.0)),
    )


def unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a finite 2-D array and their multiplicities (order unspecified).

    Same rows and counts as ``np.unique(x, axis=0, return_counts=True)``, but fast: only rows
    whose first coordinate is repeated can be repeated, and only those (few, for continuous
    data) are sorted lexicographically.

    Examples:
        >>> import numpy as np
        >>> rows, counts = unique_rows(np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]))
        >>> sorted(zip(map(tuple, rows.tolist()), counts.tolist()))
        [((1.0, 2.0), 2), ((3.0, 4.0), 1)]
    """
    n = x.shape[0]
    if x.shape[1] == 1:
        values, value_counts = np.unique(x[:, 0], return_counts=True)
        return values[:, None], value_counts
    _, inverse, first_counts = np.unique(x[:, 0], return_inverse=True, return_counts=True)
    candidate = first_counts[inverse.reshape(n)] >= 2
    singles = x[~candidate]
    rest = x[candidate]
    if rest.shape[0] == 0:
        return singles, np.ones(n, dtype=np.int64)
    ordered = rest[np.lexsort(rest.T[::-1])]
    starts = np.flatnonzero(np.concatenate(
        [[True], np.any(ordered[1:] != ordered[:-1], axis=1)]))
    rows = np.concatenate([singles, ordered[starts]], axis=0)
    counts = np.concatenate([np.ones(singles.shape[0], dtype=np.int64),
                             np.diff(np.append(starts, rest.shape[0]))])
    return rows, counts


def _require_float_samples(samples: ArrayLike) -> np.ndarray:
    try:
        raw = np.asarray(samples)
    except Exception as exc:
        raise ValueError(f"samples: cannot be read as an array ({exc})") from exc
    if not np.issubdtype(raw.dtype, np.floating):
        raise ValueError(f"samples: expected a floating dtype (float16/32/64), got {raw.dtype}")
    if raw.ndim == 1:
        raw = raw[:, None]
    if raw.ndim != 2:
        raise ValueError(f"samples: expected shape (n, d), got {raw.shape}")
    if raw.shape[0] < 1 or raw.shape[1] < 1:
        raise ValueError(f"samples: needs at least one row and one column, got {raw.shape}")
    if not np.all(np.isfinite(raw)):
        raise ValueError("samples: contains NaN or infinite values")
    # -0.0 and 0.0 are the same value (and the same cell).
    return np.where(raw == 0, np.zeros((), dtype=raw.dtype), raw)


def _log_cell_widths(x: np.ndarray, rep_rows: np.ndarray, min_cell_width: float,
                     fmt: FloatFormat) -> FloatArray:
    """``log w_j`` for every repeated row, ``w_j = max(ulp(x_j), ulp(max|x_:j|), floor)``."""
    own = fmt.spacing(rep_rows)
    column_floor = fmt.spacing(np.abs(x).max(axis=0))
    width = np.maximum(np.maximum(own, column_floor[None, :]), min_cell_width)
    return np.asarray(np.log(width), dtype=np.float64)


def _robust_scales(x: FloatArray) -> FloatArray:
    q75, q25 = np.percentile(x, [75.0, 25.0], axis=0)
    scale = (q75 - q25) / 1.349
    fallback = x.std(axis=0)
    scale = np.where(scale > 0.0, scale, fallback)
    return np.asarray(np.where(scale > 0.0, scale, 1.0), dtype=np.float64)


def _log_density_from_data(x: np.ndarray, rows: np.ndarray, counts: np.ndarray,
                           repeated_index: np.ndarray) -> FloatArray:
    """Nearest-neighbour log-density at each repeated row, ignoring the row's own copies."""
    n = x.shape[0]
    sigma = _robust_scales(x.astype(np.float64))
    scaled = rows.astype(np.float64) / sigma
    n_rows = rows.shape[0]
    out = np.full(repeated_index.shape[0], -np.inf)
    if n_rows < 2:
        return out  # every sample is the same value: the data show no spread at all
    k = min(NEIGHBOURS + 1, n_rows)
    tree = cKDTree(scaled)
    distances, neighbours = tree.query(scaled[repeated_index], k=k, p=np.inf)
    distances = distances.reshape(repeated_index.shape[0], k)
    neighbours = neighbours.reshape(repeated_index.shape[0], k)
    mass = np.where(neighbours == repeated_index[:, None], 0, counts[neighbours])
    cumulative = np.cumsum(mass, axis=1)
    enough = np.argmax(cumulative >= NEIGHBOURS, axis=1)
    enough = np.where(cumulative[:, -1] >= NEIGHBOURS, enough, k - 1)
    picked = np.arange(repeated_index.shape[0])
    radius = distances[picked, enough]
    found = cumulative[picked, enough].astype(np.float64)
    valid = (radius > 0.0) & (found > 0.0)
    log_box = x.shape[1] * np.log(2.0 * np.where(valid, radius, 1.0)) + np.log(sigma).sum()
    out[valid] = (np.log(found) - math.log(n) - log_box)[valid]
    return out


def _log_density_from_target(target_log_prob: Callable[[FloatArray], ArrayLike],
                             rep_rows: np.ndarray) -> FloatArray:
    values = np.asarray(target_log_prob(rep_rows.astype(np.float64)), dtype=np.float64)
    if values.shape != (rep_rows.shape[0],):
        raise ValueError(f"target_log_prob: returned shape {values.shape} for "
                         f"{rep_rows.shape[0]} rows, expected ({rep_rows.shape[0]},)")
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        raise ValueError("target_log_prob: returned NaN or +inf")
    return values


def _log_cell_pvalues(counts: np.ndarray, n: int, log_c: FloatArray) -> FloatArray:
    """``log(P(Binomial(n, 4c) >= t) / c)`` per repeated row (``-inf`` when ``c == 0``)."""
    t = counts.astype(np.float64)
    log_c_hi = np.minimum(log_c + math.log(SAFETY_FACTOR), 0.0)
    c_hi = np.exp(log_c_hi)
    with np.errstate(divide="ignore"):
        exact = stats.binom.logsf(t - 1.0, n, c_hi)
    # Union bound over t-subsets, P(Binomial(n, c) >= t) <= C(n, t) c^t, in logs: it stays
    # finite where the exact tail underflows.
    log_choose = special.gammaln(n + 1.0) - special.gammaln(t + 1.0) - special.gammaln(n - t + 1.0)
    union = log_choose + t * log_c_hi
    # The exact tail is used only where it is meaningful (c_hi > 0 did not underflow and the
    # tail did not underflow to -inf); the union bound covers the rest from above.
    trusted = (c_hi > 0.0) & np.isfinite(exact)
    log_tail = np.where(trusted, np.minimum(np.where(trusted, exact, 0.0), union), union)
    out = np.full(t.shape[0], -np.inf)
    positive = np.isfinite(log_c)
    out[positive] = log_tail[positive] - log_c[positive]
    return out
