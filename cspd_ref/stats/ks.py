"""Kolmogorov–Smirnov checks: exact one-sample KS, random projections, two-sample KS (SPEC §5).

A d-dimensional law is compared with a target through one-dimensional projections
``a . x``: for a diagonal Gaussian mixture the law of ``a . x`` is again a mixture with a
closed-form CDF (``GaussianMixture.project``), so each projection gets an *exact* one-sample test.
By the Cramér–Wold theorem two laws are equal iff all their one-dimensional projections are, so
random directions (drawn independently of the samples) give consistent tests; the p-values of the
directions are dependent and must be combined with a family-wise correction (``fwer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from cspd_ref.distributions import GaussianMixture, require_mixture
from cspd_ref.stats._checks import require_matrix
from cspd_ref.stats.result import CheckResult
from cspd_ref.validation import FloatArray, as_float64, require_generator, require_int

#: Tolerance for CDF values slightly outside [0, 1] or slightly decreasing (rounding).
CDF_TOLERANCE = 1e-12


def ks_one_sample(values_1d: ArrayLike, cdf: Callable[[FloatArray], ArrayLike], *,
                  name: str = "ks_one_sample", compared: str = "sample vs reference CDF",
                  ) -> CheckResult:
    """Exact one-sample Kolmogorov–Smirnov test against a fully specified continuous CDF.

    Null hypothesis: ``values_1d`` are iid draws from the continuous law whose CDF is ``cdf``.

    Assumptions: the CDF is continuous and fixed in advance (not fitted to these data); the
    sample points are independent. Ties (e.g. from float32 rounding) make the test conservative.

    Maths: with ``u_(1) <= ... <= u_(n)`` the sorted values ``F(x_(i))``,
    ``D = max(D+, D-)``, ``D+ = max_i (i/n - u_(i))``, ``D- = max_i (u_(i) - (i-1)/n)``. Under the
    null ``F(X)`` is U(0, 1) and the law of ``D`` does not depend on ``F``; the p-value is the
    exact ``P(D_n >= D)`` of ``scipy.stats.kstwo`` (Simard & L'Ecuyer), i.e. what
    ``scipy.stats.kstest(..., method="exact")`` returns.

    Args:
        values_1d: ``(n,)`` finite values, ``n >= 1``.
        cdf: vectorised CDF; called once on the sorted values, must return values in [0, 1],
            non-decreasing.
        name: the result's name.
        compared: the result's ``compared`` string.

    Returns:
        ``CheckResult`` with ``statistic = D``; details ``d_plus``, ``d_minus`` and the
        location of the largest gap.

    Raises:
        ValueError: ``values_1d`` not 1-D / empty / non-finite; ``cdf`` not callable or
            returning values of the wrong shape, outside [0, 1], NaN, or decreasing.
    """
    return _ks_one_sample(values_1d, cdf, name=name, compared=compared,
                          null="the values are iid from the continuous law with the reference CDF")


def _ks_one_sample(values_1d: ArrayLike, cdf: Callable[[FloatArray], ArrayLike], *, name: str,
                   compared: str, null: str, extra: dict[str, Any] | None = None) -> CheckResult:
    values = as_float64(values_1d, "values_1d", ndim=1)
    if values.shape[0] < 1:
        raise ValueError("values_1d: needs at least one value")
    if not callable(cdf):
        raise ValueError(f"cdf: expected a callable, got {type(cdf).__name__}")
    ordered = np.sort(values)
    u = np.asarray(cdf(ordered), dtype=np.float64)
    if u.shape != ordered.shape:
        raise ValueError(f"cdf: returned shape {u.shape} for input shape {ordered.shape}")
    u = _check_cdf_values(u)
    return _ks_from_sorted_uniforms(u, ordered, name=name, compared=compared, null=null,
                                    extra=extra)


def _check_cdf_values(u: FloatArray) -> FloatArray:
    if not np.all(np.isfinite(u)):
        raise ValueError("cdf: returned NaN or infinite values")
    if np.any(u < -CDF_TOLERANCE) or np.any(u > 1.0 + CDF_TOLERANCE):
        raise ValueError("cdf: returned values outside [0, 1]")
    if u.shape[0] > 1 and np.any(np.diff(u) < -CDF_TOLERANCE):
        raise ValueError("cdf: is not non-decreasing on the sorted sample")
    return np.clip(u, 0.0, 1.0)


def _ks_from_sorted_uniforms(u: FloatArray, ordered: FloatArray, *, name: str, compared: str,
                             null: str, extra: dict[str, Any] | None = None) -> CheckResult:
    """KS statistic and exact p-value from the sorted PIT values ``u = F(x_(i))``."""
    n = u.shape[0]
    i = np.arange(1, n + 1, dtype=np.float64)
    gaps_plus = i / n - u
    gaps_minus = u - (i - 1.0) / n
    k_plus = int(np.argmax(gaps_plus))
    k_minus = int(np.argmax(gaps_minus))
    d_plus = float(gaps_plus[k_plus])
    d_minus = float(gaps_minus[k_minus])
    d = max(d_plus, d_minus, 0.0)
    location = float(ordered[k_plus] if d_plus >= d_minus else ordered[k_minus])
    pvalue = float(np.clip(stats.kstwo.sf(d, n), 0.0, 1.0))
    details: dict[str, Any] = {"d_plus": d_plus, "d_minus": d_minus,
                               "statistic_location": location}
    if extra:
        details.update(extra)
    return CheckResult(name=name, statistic=d, pvalue=pvalue, n=n, compared=compared, null=null,
                       details=details)


def random_unit_directions(d: int, m: int, rng: np.random.Generator) -> FloatArray:
    """``m`` directions drawn uniformly on the unit sphere of R^d: shape ``(m, d)``.

    Maths: normalised standard Gaussian vectors are uniform on the sphere (rotation
    invariance). For ``d == 1`` the only unit directions are +-1, which give the same KS test,
    so ``[[1.0]]`` (one row, whatever ``m``) is returned and ``rng`` is not used.

    Raises:
        ValueError: ``d < 1``, ``m < 1``, or ``rng`` not a ``numpy.random.Generator``.
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


def ks_projections(samples: ArrayLike, target: GaussianMixture,
                   directions: ArrayLike) -> list[CheckResult]:
    """One exact one-sample KS test per direction, of ``samples @ a`` against the target's law.

    Null hypothesis (per direction ``a``): the projected values ``a . x_i`` are iid from the law
    of ``a . X`` with ``X ~ target``.

    Assumptions: ``target`` is a single (un-batched) diagonal Gaussian mixture; the directions
    do not depend on the samples; the rows of ``samples`` are independent.

    Maths: ``target.project(a)`` is the exact 1-D mixture law of ``a . X`` (means ``mu_k . a``,
    scales ``sqrt(sum_j a_j^2 s_kj^2)``), whose CDF ``sum_k w_k Phi((v - m_k)/s_k)`` is evaluated in
    float64; see ``ks_one_sample`` for the statistic and the exact p-value. If the sampler is
    correct every direction's test is exact; the m p-values are dependent, so combine them
    with ``holm``/``bonferroni`` (valid under any dependence).

    Args:
        samples: ``(n, d)`` finite samples.
        target: ``GaussianMixture`` with ``batch_shape == ()`` and ``dim == d``.
        directions: ``(m, d)`` non-zero directions (not required to be unit vectors).

    Returns:
        ``m`` results named ``"ks_projection[i]"``; ``details["direction"]`` holds ``a``.
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
    projected = x @ a.T  # (n, m)
    results = []
    for i in range(a.shape[0]):
        law = target.project(a[i])
        results.append(_ks_one_sample(
            projected[:, i], law.cdf, name=f"ks_projection[{i}]",
            compared=f"samples projected on direction {i} vs the target's exact projected "
                     "mixture CDF",
            null="the projected samples are iid from the law of a . X, X ~ target",
            extra={"direction": a[i].tolist()},
        ))
    return results


def ks_two_sample_projections(x: ArrayLike, y: ArrayLike,
                              directions: ArrayLike) -> list[CheckResult]:
    """Two-sample KS test of ``x @ a`` against ``y @ a`` for every direction ``a``.

    Null hypothesis (per direction): the projections of both samples are iid from one common
    continuous law (in particular: x and y are iid from the same d-dimensional law).

    Assumptions: the two samples are independent of each other and of the directions; the
    projected law is continuous (ties make the test conservative).

    Maths: ``D = sup_t |F_x(t) - F_y(t)|`` of the two empirical CDFs; p-value from
    ``scipy.stats.ks_2samp(method="auto")``: exact (path counting) for sizes up to 10 000,
    the asymptotic Kolmogorov law above. Combine the directions with ``holm``/``bonferroni``.

    Args:
        x: ``(n, d)``, ``n >= 1``.
        y: ``(m, d)``, ``m >= 1``, same ``d``.
        directions: ``(k, d)`` non-zero directions.

    Returns:
        ``k`` results named ``"ks2_projection[i]"``; ``n`` is ``len(x) + len(y)``, the sizes are in
        ``details``.
    """
    xs = require_matrix(x, "x")
    ys = require_matrix(y, "y")
    if ys.shape[1] != xs.shape[1]:
        raise ValueError(f"y: expected {xs.shape[1]} columns (as x), got shape {ys.shape}")
    a = _require_directions(directions, xs.shape[1])
    px = xs @ a.T
    py = ys @ a.T
    results = []
    for i in range(a.shape[0]):
        test = stats.ks_2samp(px[:, i], py[:, i], method="auto")
        results.append(CheckResult(
            name=f"ks2_projection[{i}]",
            statistic=float(test.statistic),
            pvalue=float(np.clip(test.pvalue, 0.0, 1.0)),
            n=xs.shape[0] + ys.shape[0],
            compared=f"x projected on direction {i} vs y projected on direction {i} "
                     "(two-sample KS)",
            null="both projected samples are iid from one common continuous law",
            details={"n_x": xs.shape[0], "n_y": ys.shape[0], "direction": a[i].tolist(),
                     "statistic_location": float(test.statistic_location)},
        ))
    return results
