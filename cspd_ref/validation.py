"""Input validation shared by every public function of cspd_ref (docs/contract.md §4).

Every check raises ``ValueError`` whose message starts with the offending argument's name,
so a caller can tell which input was wrong without reading a traceback.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

WEIGHT_SUM_TOLERANCE = 1e-9


def as_float64(value: ArrayLike, name: str, *, ndim: int | None = None,
               min_ndim: int | None = None) -> FloatArray:
    """Convert ``value`` to a finite float64 array, raising ``ValueError`` naming ``name``.

    Booleans, complex numbers, strings and objects are refused rather than coerced.
    """
    try:
        raw = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be read as an array ({exc})") from exc
    if raw.dtype == np.bool_ or not (np.issubdtype(raw.dtype, np.floating)
                                     or np.issubdtype(raw.dtype, np.integer)):
        raise ValueError(f"{name}: expected a real floating or integer array, got dtype "
                         f"{raw.dtype}")
    array = raw.astype(np.float64, copy=True)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {array.shape}")
    if min_ndim is not None and array.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimension(s), got shape "
                         f"{array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def require_positive(array: FloatArray, name: str) -> FloatArray:
    """Raise unless every entry of ``array`` is strictly positive."""
    if np.any(array <= 0):
        raise ValueError(f"{name}: must be strictly positive (smallest entry "
                         f"{float(array.min()):g})")
    return array


def weight_sum_tolerance(source_dtype: np.dtype, n_components: int) -> float:
    """How far from 1 a row of ``n_components`` weights given in ``source_dtype`` may sum:
    ``max(1e-9, 4 K eps)`` with ``eps`` the dtype's machine epsilon (float64 input: 1e-9;
    float32: about 5e-7 K; float16: about 4e-3 K). Integer input counts as float64."""
    eps = float(np.finfo(source_dtype).eps) if np.issubdtype(source_dtype, np.floating) else 0.0
    return max(WEIGHT_SUM_TOLERANCE, 4.0 * n_components * eps)


def require_probability_vector(weights: FloatArray, name: str,
                               source_dtype: np.dtype | None = None) -> FloatArray:
    """Raise unless ``weights`` (last axis) is non-negative and sums to 1 within
    ``weight_sum_tolerance(source_dtype, K)`` (1e-9 for float64 input)."""
    if np.any(weights < 0):
        raise ValueError(f"{name}: must be non-negative")
    dtype = np.dtype(np.float64) if source_dtype is None else np.dtype(source_dtype)
    tolerance = weight_sum_tolerance(dtype, int(weights.shape[-1]))
    totals = weights.sum(axis=-1)
    if np.any(np.abs(totals - 1.0) > tolerance):
        worst = float(totals.flat[int(np.argmax(np.abs(totals - 1.0)))])
        raise ValueError(f"{name}: must sum to 1 along the last axis within {tolerance:.2g} "
                         f"(the rounding of {dtype.name} weights); a row sums to {worst:.17g}")
    return weights


def require_open_unit_interval(array: FloatArray, name: str) -> FloatArray:
    """Raise unless every entry lies in [0, 1); uniforms are drawn as ``rng.random()`` does."""
    if np.any(array < 0) or np.any(array >= 1):
        raise ValueError(f"{name}: uniforms must lie in [0, 1)")
    return array


def require_int(value: Any, name: str, *, minimum: int = 0) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def require_shape(array: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Raise unless ``array.shape == shape``."""
    if array.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {array.shape}")
    return array


def require_generator(rng: Any, name: str = "rng") -> np.random.Generator:
    """Raise unless ``rng`` is a ``numpy.random.Generator`` (randomness is always explicit)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{name}: expected a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng
