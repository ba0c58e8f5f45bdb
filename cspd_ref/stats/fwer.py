"""Family-wise error control across the checks of a run (docs/battery.md §1).

Both procedures are valid under *arbitrary* dependence between the p-values (the projections of
one sample, the checks of one run): they rest only on the union bound. Holm's step-down
procedure rejects everything Bonferroni rejects, and possibly more, at the same family-wise
level.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.stats.arguments import (
    require_all_in_closed_unit_interval,
    require_in_open_unit_interval,
)
from cspd_ref.validation import BoolArray, FloatArray, as_float64


def _require_pvalues(pvalues: ArrayLike) -> FloatArray:
    p = as_float64(pvalues, "pvalues", ndim=1)
    return require_all_in_closed_unit_interval(p, "pvalues")


def bonferroni(pvalues: ArrayLike) -> FloatArray:
    """Bonferroni-adjusted p-values ``min(1, m p_i)``.

    Null hypotheses: one per p-value; the family-wise error rate (probability of rejecting at
    least one true null) is at most ``alpha`` when rejecting ``adjusted <= alpha``, by the union
    bound, whatever the dependence between the p-values (each assumed valid:
    ``P(p_i <= u) <= u``).

    Args:
        pvalues: ``(m,)`` p-values in [0, 1] (``m = 0`` gives an empty array).

    Returns:
        ``(m,)`` adjusted p-values, same order.

    Examples:
        >>> bonferroni([0.01, 0.2, 0.5])
        array([0.03, 0.6 , 1.  ])
    """
    p = _require_pvalues(pvalues)
    return np.minimum(1.0, p * p.shape[0])


def holm(pvalues: ArrayLike) -> FloatArray:
    """Holm step-down adjusted p-values.

    Maths: sort ``p_(1) <= ... <= p_(m)``; the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``, returned in the original order. Rejecting
    ``adjusted <= alpha`` controls the family-wise error rate at ``alpha`` under arbitrary
    dependence (Holm 1979: closed testing with Bonferroni local tests).

    Args:
        pvalues: ``(m,)`` p-values in [0, 1].

    Returns:
        ``(m,)`` adjusted p-values, same order.

    Examples:
        >>> holm([0.01, 0.04, 0.03])  # 3 x 0.01, then max(0.03, 2 x 0.03), then max(0.06, 0.04)
        array([0.03, 0.06, 0.06])
    """
    p = _require_pvalues(pvalues)
    m = p.shape[0]
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    factors = m - np.arange(m, dtype=np.float64)  # m, m-1, ..., 1
    stepped = np.maximum.accumulate(np.minimum(1.0, factors * p[order]))
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = stepped
    return adjusted


def familywise_reject(pvalues: ArrayLike, alpha: float,
                      method: Literal["holm", "bonferroni"] = "holm") -> BoolArray:
    """Which null hypotheses to reject with family-wise error rate at most ``alpha``.

    Args:
        pvalues: ``(m,)`` p-values in [0, 1].
        alpha: family-wise level in (0, 1).
        method: ``"holm"`` (default, uniformly more powerful) or ``"bonferroni"``.

    Returns:
        ``(m,)`` booleans, True where the adjusted p-value is ``<= alpha``.

    Examples:
        >>> familywise_reject([0.01, 0.04, 0.03], 0.05)
        array([ True, False, False])
    """
    alpha = require_in_open_unit_interval(alpha, "alpha")
    if method == "holm":
        adjusted = holm(pvalues)
    elif method == "bonferroni":
        adjusted = bonferroni(pvalues)
    else:
        raise ValueError(f"method: expected 'holm' or 'bonferroni', got {method!r}")
    return np.asarray(adjusted <= alpha, dtype=np.bool_)
