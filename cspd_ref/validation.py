"""Input validation shared by every public function of cspd_ref (docs/contract.md §4).

Every check raises ``ValueError`` whose message starts with the offending argument's name,
so a caller can tell which input was wrong without reading a traceback.

``gpu_impl.validation`` has the same checks under the same names in the same order; the ones
that do not depend on the array type (``require_int``, ``require_finite_float``,
``require_closed_unit_interval``, ``require_batch_shape``) are these very functions,
re-exported there. One rule, one check:

* ``require_half_open_unit_interval``: every entry of an array in ``[0, 1)``, the range of
  uniform noise (``rng.random``, ``torch.rand``);
* ``require_closed_unit_interval``: one real number in ``[0, 1]`` (a fraction, e.g.
  ``prefill``);
* ``require_batch_shape``: a draft's or target's batch shape is ``()`` or ``(n,)``
  (docs/algorithms.md §2: one pair for every row, or one pair per row).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

__all__ = [
    "WEIGHT_SUM_TOLERANCE",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "as_float64",
    "check_gaussian_parameters",
    "check_mixture_parameters",
    "require_batch_shape",
    "require_closed_unit_interval",
    "require_finite_float",
    "require_generator",
    "require_half_open_unit_interval",
    "require_int",
    "require_positive",
    "require_probability_vector",
    "require_shape",
    "weight_sum_tolerance",
]

#: Tolerance on ``|sum(weights) - 1|`` for float64 weights.
WEIGHT_SUM_TOLERANCE = 1e-9


def weight_sum_tolerance(source_dtype: np.dtype, n_components: int) -> float:
    """How far from 1 a row of ``n_components`` weights given in ``source_dtype`` may sum:
    ``max(1e-9, 4 K eps)`` with ``eps`` the dtype's machine epsilon (float64 input: 1e-9;
    float32: about 5e-7 K; float16: about 4e-3 K). Integer input counts as float64.

    The weights are summed in float64 after conversion, so a row that summed to 1 before it was
    rounded to a narrower dtype is off by that rounding only, well inside ``4 K eps``
    (docs/contract.md §4).
    """
    eps = float(np.finfo(source_dtype).eps) if np.issubdtype(source_dtype, np.floating) else 0.0
    return max(WEIGHT_SUM_TOLERANCE, 4.0 * n_components * eps)


def as_float64(value: ArrayLike, name: str, *, ndim: int | None = None,
               min_ndim: int | None = None) -> FloatArray:
    """Convert ``value`` to a finite float64 array, raising ``ValueError`` naming ``name``.

    Booleans, complex numbers, strings and objects are refused rather than coerced; integers
    are converted.

    Args:
        value: an array, list or scalar.
        name: the argument's name for error messages.
        ndim, min_ndim: required (minimum) number of dimensions.
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


def require_int(value: Any, name: str, *, minimum: int = 0) -> int:
    """Return ``value`` as an int, raising unless it is an integer ``>= minimum`` (a ``bool``
    is refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def require_finite_float(value: Any, name: str) -> float:
    """Return ``value`` as a finite Python float.

    Accepted: real numbers (``int``, ``float``, NumPy integer and floating scalars) and 0-d
    arrays or tensors holding one (read with ``.item()``). Refused: ``bool``, complex numbers,
    strings, other objects, NaN and infinities.
    """
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # 0-d array or tensor
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name}: must be finite, got {result}")
    return result


def require_closed_unit_interval(value: Any, name: str) -> float:
    """Return ``value`` as a float in the closed interval ``[0, 1]`` (``require_finite_float``,
    then ``0 <= value <= 1``)."""
    result = require_finite_float(value, name)
    if not 0.0 <= result <= 1.0:
        raise ValueError(f"{name}: must lie in [0, 1], got {result}")
    return result


def require_positive(array: FloatArray, name: str) -> FloatArray:
    """Raise unless every entry of ``array`` is strictly positive."""
    if np.any(array <= 0):
        raise ValueError(f"{name}: must be strictly positive (smallest entry "
                         f"{float(array.min()):g})")
    return array


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


def require_half_open_unit_interval(array: FloatArray, name: str) -> FloatArray:
    """Raise unless every entry lies in the half-open interval ``[0, 1)``, the range of
    uniforms as ``rng.random()`` draws them (docs/noise.md)."""
    if np.any(array < 0) or np.any(array >= 1):
        raise ValueError(f"{name}: uniforms must lie in [0, 1)")
    return array


def require_shape(array: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Raise unless ``array.shape == shape``."""
    if array.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {array.shape}")
    return array


def require_batch_shape(batch_shape: Sequence[int], name: str,
                        n: int | None = None) -> tuple[int, ...]:
    """Raise unless a distribution's ``batch_shape`` is ``()`` or ``(n,)``: one distribution
    for every row, or one per row (docs/algorithms.md §2). With ``n=None`` any ``(n,)`` passes
    (the number of rows is not known yet). Returns the shape as a tuple."""
    shape = tuple(int(s) for s in batch_shape)
    if len(shape) > 1 or (n is not None and shape not in ((), (n,))):
        rows = "n" if n is None else str(n)
        raise ValueError(f"{name}: batch shape must be () or ({rows},), got {shape}")
    return shape


def require_generator(value: Any, name: str = "rng") -> np.random.Generator:
    """Return ``value``, raising unless it is a ``numpy.random.Generator`` (randomness is always
    explicit; the functions that draw take it as the keyword-only ``rng``)."""
    if not isinstance(value, np.random.Generator):
        raise ValueError(
            f"{name}: expected a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
            f"got {type(value).__name__}"
        )
    return value


def check_mixture_parameters(weights: ArrayLike, means: ArrayLike,
                             scales: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate and convert the parameters of a ``GaussianMixture`` (docs/algorithms.md §2,
    docs/contract.md §4); returns float64 ``(weights, means, scales)``.

    ``weights`` ``(*batch, K)`` non-negative, summing to 1 within
    ``weight_sum_tolerance(dtype, K)``; ``means`` ``(*batch, K, d)``; ``scales`` the shape of
    ``means``, strictly positive; ``K, d >= 1``. Weights given in float32/float16 are divided by
    their float64 sum, so that the mixture is a probability law.
    """
    w = as_float64(weights, "weights", min_ndim=1)
    m = as_float64(means, "means", min_ndim=2)
    s = as_float64(scales, "scales", min_ndim=2)
    if m.shape[:-1] != w.shape:
        raise ValueError(
            f"means: expected shape {w.shape} + (d,) to match weights {w.shape}, "
            f"got {m.shape}"
        )
    if s.shape != m.shape:
        raise ValueError(f"scales: expected shape {m.shape} (as means), got {s.shape}")
    if m.shape[-1] < 1:
        raise ValueError("means: the event dimension d must be at least 1")
    if w.shape[-1] < 1:
        raise ValueError("weights: at least one component is required")
    require_positive(s, "scales")
    source = np.asarray(weights).dtype
    require_probability_vector(w, "weights", source_dtype=source)
    if source != np.float64 and np.issubdtype(source, np.floating):
        w = w / w.sum(axis=-1, keepdims=True)  # the law of lower-precision weights
    return w, m, s


def check_gaussian_parameters(mean: ArrayLike,
                              scale: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate and convert the parameters of a ``DiagGaussian``: ``mean`` ``(*batch, d)``,
    ``scale`` of the same shape, strictly positive; returns float64 ``(mean, scale)``."""
    m = as_float64(mean, "mean", min_ndim=1)
    s = as_float64(scale, "scale", min_ndim=1)
    if s.shape != m.shape:
        raise ValueError(f"scale: expected shape {m.shape} (as mean), got {s.shape}")
    require_positive(s, "scale")
    return m, s
