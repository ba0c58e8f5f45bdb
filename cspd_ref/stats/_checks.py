"""Small argument checks shared by the stats modules (messages start with the argument name)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cspd_ref.validation import FloatArray, as_float64, require_finite_float


def require_unit_interval(value: Any, name: str) -> float:
    """A finite float in the closed interval [0, 1]."""
    result = require_finite_float(value, name)
    if not 0.0 <= result <= 1.0:
        raise ValueError(f"{name}: must lie in [0, 1], got {result}")
    return result


def require_open_unit(value: Any, name: str) -> float:
    """A finite float in the open interval (0, 1) (significance levels, powers)."""
    result = require_finite_float(value, name)
    if not 0.0 < result < 1.0:
        raise ValueError(f"{name}: must lie in (0, 1), got {result}")
    return result


def require_nonnegative(value: Any, name: str) -> float:
    """A finite float >= 0."""
    result = require_finite_float(value, name)
    if result < 0.0:
        raise ValueError(f"{name}: must be >= 0, got {result}")
    return result


def require_matrix(value: Any, name: str, *, min_rows: int = 1) -> FloatArray:
    """A finite float64 ``(n, d)`` array with ``n >= min_rows`` and ``d >= 1``."""
    array = as_float64(value, name, ndim=2)
    if array.shape[0] < min_rows:
        raise ValueError(f"{name}: needs at least {min_rows} row(s), got shape {array.shape}")
    if array.shape[1] < 1:
        raise ValueError(f"{name}: needs at least one column, got shape {array.shape}")
    return array


def require_unit_values(array: FloatArray, name: str) -> FloatArray:
    """Raise unless every entry lies in [0, 1]."""
    if np.any(array < 0.0) or np.any(array > 1.0):
        raise ValueError(f"{name}: values must lie in [0, 1]")
    return array
