"""Argument checks of the battery's public functions (``cspd_ref.stats``).

Each returns the validated value (converted: a Python float, or a float64 array) or raises
``ValueError`` with a message that starts with the argument's name, as everywhere in cspd.
Scalars are refused when they are bools or strings, and when they are NaN or infinite.

Examples:
    >>> require_in_open_unit_interval(0.05, "alpha")
    0.05
    >>> require_in_open_unit_interval(1.0, "alpha")
    Traceback (most recent call last):
    ...
    ValueError: alpha: must lie in (0, 1), got 1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cspd_ref.validation import FloatArray, as_float64, require_finite_float

__all__ = [
    "require_all_in_closed_unit_interval",
    "require_finite_float",
    "require_in_closed_unit_interval",
    "require_in_open_unit_interval",
    "require_matrix",
    "require_nonnegative",
]


def require_in_closed_unit_interval(value: Any, name: str) -> float:
    """A finite float in the closed interval [0, 1] (probabilities, rates, TV distances).

    Examples:
        >>> require_in_closed_unit_interval(0, "tv"), require_in_closed_unit_interval(1.0, "tv")
        (0.0, 1.0)
        >>> require_in_closed_unit_interval(1.5, "tv")
        Traceback (most recent call last):
        ...
        ValueError: tv: must lie in [0, 1], got 1.5
    """
    result = require_finite_float(value, name)
    if not 0.0 <= result <= 1.0:
        raise ValueError(f"{name}: must lie in [0, 1], got {result}")
    return result


def require_in_open_unit_interval(value: Any, name: str) -> float:
    """A finite float in the open interval (0, 1) (significance levels, powers).

    Examples:
        >>> require_in_open_unit_interval(0.99, "power")
        0.99
        >>> require_in_open_unit_interval(0.0, "power")
        Traceback (most recent call last):
        ...
        ValueError: power: must lie in (0, 1), got 0.0
    """
    result = require_finite_float(value, name)
    if not 0.0 < result < 1.0:
        raise ValueError(f"{name}: must lie in (0, 1), got {result}")
    return result


def require_nonnegative(value: Any, name: str) -> float:
    """A finite float >= 0.

    Examples:
        >>> require_nonnegative(0, "width")
        0.0
        >>> require_nonnegative(-1e-3, "width")
        Traceback (most recent call last):
        ...
        ValueError: width: must be >= 0, got -0.001
    """
    result = require_finite_float(value, name)
    if result < 0.0:
        raise ValueError(f"{name}: must be >= 0, got {result}")
    return result


def require_matrix(value: Any, name: str, *, min_rows: int = 1) -> FloatArray:
    """A finite float64 ``(n, d)`` array with ``n >= min_rows`` and ``d >= 1``.

    Examples:
        >>> require_matrix([[1, 2], [3, 4]], "samples").dtype
        dtype('float64')
        >>> require_matrix([[1.0, 2.0]], "samples", min_rows=2)
        Traceback (most recent call last):
        ...
        ValueError: samples: needs at least 2 row(s), got shape (1, 2)
    """
    array = as_float64(value, name, ndim=2)
    if array.shape[0] < min_rows:
        raise ValueError(f"{name}: needs at least {min_rows} row(s), got shape {array.shape}")
    if array.shape[1] < 1:
        raise ValueError(f"{name}: needs at least one column, got shape {array.shape}")
    return array


def require_all_in_closed_unit_interval(array: FloatArray, name: str) -> FloatArray:
    """Raise unless every entry of ``array`` lies in [0, 1] (PIT values, p-values); returns
    ``array`` unchanged.

    Examples:
        >>> import numpy as np
        >>> require_all_in_closed_unit_interval(np.array([0.0, 0.5, 1.0]), "u")
        array([0. , 0.5, 1. ])
        >>> require_all_in_closed_unit_interval(np.array([0.5, 1.25]), "u")
        Traceback (most recent call last):
        ...
        ValueError: u: values must lie in [0, 1]
    """
    if np.any(array < 0.0) or np.any(array > 1.0):
        raise ValueError(f"{name}: values must lie in [0, 1]")
    return array
