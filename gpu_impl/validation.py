"""Input validation shared by every public function of gpu_impl (docs/contract.md §4).

Mirrors ``cspd_ref.validation``, the same checks under the same names in the same order: every
check raises ``ValueError`` whose message starts with the offending argument's name. The checks
that do not depend on the array type (``require_int``, ``require_finite_float``,
``require_closed_unit_interval``, ``require_batch_shape``) are ``cspd_ref.validation``'s,
re-exported. The checks that read tensor *values* (finiteness, positivity, ranges) synchronise
with the device once each; they run at the entry of public functions, never inside the denoising
loop of ``gpu_impl.diffusion_sampling`` (docs/algorithms.md §7). The tensor-only helpers
(``compute_dtype``, ``same_device``, ``require_floating_dtype``, ``require_device``) come last.

Dtype rules ("dtype surprises", docs/contract.md §4):

* bool, complex and non-numeric inputs are refused;
* integer inputs are converted to the requested floating dtype (or the default dtype);
* floating tensors keep their dtype unless a dtype is requested (noise tensors are cast to the
  dtype of the distributions they feed, so float64 noise can drive a float32 sampler);
* a tensor on another device than the one requested is refused rather than moved silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from cspd_ref.validation import (
    require_batch_shape,
    require_closed_unit_interval,
    require_finite_float,
    require_int,
)

__all__ = [
    "LOW_PRECISION_DTYPES",
    "WEIGHT_SUM_TOLERANCE",
    "as_tensor",
    "check_gaussian_parameters",
    "check_mixture_parameters",
    "compute_dtype",
    "require_batch_shape",
    "require_closed_unit_interval",
    "require_device",
    "require_event_tensor",
    "require_finite_float",
    "require_floating_dtype",
    "require_generator",
    "require_half_open_unit_interval",
    "require_int",
    "require_positive",
    "require_probability_vector",
    "require_shape",
    "same_device",
    "weight_sum_tolerance",
]

#: Tolerance on ``|sum(weights) - 1|`` for float64 parameters, as in ``cspd_ref``.
WEIGHT_SUM_TOLERANCE = 1e-9


def weight_sum_tolerance(dtype: torch.dtype, n_components: int) -> float:
    """Tolerance on ``|sum_k w_k - 1|``: ``max(1e-9, 2 K eps(dtype))``.

    Casting float64 weights that sum to 1 to a narrower dtype moves each weight by at most
    ``eps/2`` relative and the summation adds at most ``(K - 1) eps``, so valid weights pass;
    weights off by more than that are a genuine error. (``cspd_ref.validation``'s
    ``weight_sum_tolerance`` allows ``4 K eps`` of the *input* dtype, because the reference
    sums in float64 weights that may have been computed in a narrower dtype.)
    """
    return max(WEIGHT_SUM_TOLERANCE, 2.0 * n_components * torch.finfo(dtype).eps)


def as_tensor(value: Any, name: str, *, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None, ndim: int | None = None,
              min_ndim: int | None = None, check_finite: bool = True) -> Tensor:
    """Convert ``value`` to a floating tensor, raising ``ValueError`` naming ``name``.

    Args:
        value: a tensor, NumPy array, list or scalar.
        name: the argument's name for error messages.
        dtype: floating dtype to cast to; ``None`` keeps a floating tensor's dtype (NumPy
            float arrays keep theirs, Python lists and integers get the default dtype).
        device: required device. Tensors elsewhere are refused; other inputs are created there.
        ndim, min_ndim: required (minimum) number of dimensions.
        check_finite: refuse NaN and infinities (one device synchronisation).
    """
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating dtype, got {dtype}")
    target_device = None if device is None else torch.device(device)
    if isinstance(value, Tensor):
        tensor = value
        if target_device is not None and not same_device(tensor.device, target_device):
            raise ValueError(f"{name}: is on device {tensor.device}, expected {target_device}")
    else:
        try:
            array = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name}: cannot be read as an array ({exc})") from exc
        if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.floating)
                                           or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{name}: expected a real floating or integer array, got dtype "
                             f"{array.dtype}")
        if np.issubdtype(array.dtype, np.floating) and array.dtype not in (
                np.float16, np.float32, np.float64):
            array = array.astype(np.float64)
        tensor = torch.as_tensor(array, device=target_device)
        if isinstance(value, list | tuple | float | int) and dtype is None:
            tensor = tensor.to(torch.get_default_dtype())
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name}: expected a real floating tensor, got dtype {tensor.dtype}")
    if not tensor.dtype.is_floating_point:
        tensor = tensor.to(dtype or torch.get_default_dtype())
    elif dtype is not None and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    if ndim is not None and tensor.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {tuple(tensor.shape)}")
    if min_ndim is not None and tensor.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimension(s), got shape "
                         f"{tuple(tensor.shape)}")
    if check_finite and tensor.numel() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return tensor


def require_positive(tensor: Tensor, name: str) -> Tensor:
    """Raise unless every entry is strictly positive."""
    if tensor.numel() and not bool((tensor > 0).all()):
        raise ValueError(f"{name}: must be strictly positive (smallest entry "
                         f"{float(tensor.min())!r})")
    return tensor


def require_probability_vector(weights: Tensor, name: str) -> Tensor:
    """Raise unless ``weights`` (last axis) is non-negative and sums to 1 within
    ``weight_sum_tolerance`` (1e-9 in float64, as ``cspd_ref``)."""
    if weights.numel() == 0:
        return weights
    if not bool((weights >= 0).all()):
        raise ValueError(f"{name}: must be non-negative")
    totals = weights.to(compute_dtype(weights.dtype)).sum(dim=-1)
    error = (totals - 1.0).abs()
    tol = weight_sum_tolerance(weights.dtype, weights.shape[-1])
    if bool((error > tol).any()):
        worst = float(totals.flatten()[int(torch.argmax(error.flatten()))])
        raise ValueError(f"{name}: must sum to 1 along the last axis (a row sums to {worst!r}, "
                         f"tolerance {tol:.3g})")
    return weights


def require_half_open_unit_interval(tensor: Tensor, name: str) -> Tensor:
    """Raise unless every entry lies in the half-open interval ``[0, 1)``, the range of
    uniforms as ``torch.rand`` draws them (docs/noise.md)."""
    if tensor.numel() and not bool(((tensor >= 0) & (tensor < 1)).all()):
        raise ValueError(f"{name}: uniforms must lie in [0, 1)")
    return tensor


def require_shape(tensor: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
    """Raise unless ``tensor.shape == shape``."""
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(tensor.shape)}")
    return tensor


def require_generator(value: Any, device: torch.device | str,
                      name: str = "generator") -> torch.Generator:
    """Return ``value``, raising unless it is a ``torch.Generator`` on ``device``'s type.

    Randomness is always explicit: ``None`` (the global RNG) is refused, like the reference's
    ``numpy.random.Generator`` argument; the functions that draw take it as the keyword-only
    ``generator``.
    """
    if not isinstance(value, torch.Generator):
        raise ValueError(f"{name}: expected a torch.Generator (e.g. "
                         f"torch.Generator(device).manual_seed(seed)), got "
                         f"{type(value).__name__}")
    if value.device.type != torch.device(device).type:
        raise ValueError(f"{name}: is a {value.device.type} generator, the tensors are on "
                         f"{torch.device(device)}")
    return value


def check_mixture_parameters(weights: Any, means: Any,
                             scales: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Validate and convert the parameters of a ``GaussianMixture`` (docs/algorithms.md §2,
    docs/contract.md §4); returns ``(weights, means, scales)`` as tensors of one floating dtype
    on one device.

    ``weights`` ``(*batch, K)`` non-negative, summing to 1 within
    ``weight_sum_tolerance(dtype, K)``; ``means`` ``(*batch, K, d)``; ``scales`` the shape of
    ``means``, strictly positive; ``K, d >= 1``. Floating tensors among the three must share one
    dtype and one device; the others (integers, NumPy arrays, lists) are cast to that dtype and
    created on that device.
    """
    tensors = {name: v for name, v in (("weights", weights), ("means", means),
                                       ("scales", scales)) if isinstance(v, Tensor)}
    device = next(iter(tensors.values())).device if tensors else None
    floating = [(n, t.dtype) for n, t in tensors.items() if t.dtype.is_floating_point]
    if floating:
        dtype = floating[0][1]
        for name, dt in floating[1:]:
            if dt != dtype:
                raise ValueError(f"{name}: dtype {dt} differs from {floating[0][0]}'s {dtype}")
    else:
        dtype = None
    for name, t in tensors.items():
        if device is not None and not same_device(t.device, device):
            raise ValueError(f"{name}: is on device {t.device}, expected {device}")
    m = as_tensor(means, "means", min_ndim=2, dtype=dtype, device=device)
    dtype = m.dtype
    w = as_tensor(weights, "weights", min_ndim=1, dtype=dtype, device=m.device)
    s = as_tensor(scales, "scales", min_ndim=2, dtype=dtype, device=m.device)
    if m.shape[:-1] != w.shape:
        raise ValueError(f"means: expected shape {tuple(w.shape)} + (d,) to match weights "
                         f"{tuple(w.shape)}, got {tuple(m.shape)}")
    if s.shape != m.shape:
        raise ValueError(f"scales: expected shape {tuple(m.shape)} (as means), got "
                         f"{tuple(s.shape)}")
    if m.shape[-1] < 1:
        raise ValueError("means: the event dimension d must be at least 1")
    if w.shape[-1] < 1:
        raise ValueError("weights: at least one component is required")
    require_positive(s, "scales")
    require_probability_vector(w, "weights")
    return w, m, s


def check_gaussian_parameters(mean: Any, scale: Any) -> tuple[Tensor, Tensor]:
    """Validate and convert the parameters of a ``DiagGaussian``: ``mean`` ``(*batch, d)``,
    ``scale`` of the same shape, dtype and device, strictly positive; returns
    ``(mean, scale)``."""
    m = as_tensor(mean, "mean", min_ndim=1)
    if (isinstance(scale, Tensor) and scale.dtype.is_floating_point
            and scale.dtype != m.dtype):
        raise ValueError(f"scale: dtype {scale.dtype} differs from mean's {m.dtype}")
    s = as_tensor(scale, "scale", min_ndim=1, dtype=m.dtype, device=m.device)
    if s.shape != m.shape:
        raise ValueError(f"scale: expected shape {tuple(m.shape)} (as mean), got "
                         f"{tuple(s.shape)}")
    require_positive(s, "scale")
    return m, s


# --------------------------------------------------------------------- tensor-only helpers
#: Dtypes whose arithmetic is upcast to float32 for log-densities and acceptance tests.
LOW_PRECISION_DTYPES = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype log-densities and acceptance tests are computed in: float32 for 16-bit floats,
    ``dtype`` itself otherwise (bf16/fp16 inputs upcast for the log-ratio, docs/algorithms.md
    §7)."""
    return torch.float32 if dtype in LOW_PRECISION_DTYPES else dtype


def same_device(a: torch.device, b: torch.device) -> bool:
    """Device equality that treats ``cuda`` and ``cuda:<current>`` as the same device."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        if a.type == "cuda":
            current = torch.cuda.current_device()
            return (a.index if a.index is not None else current) == (
                b.index if b.index is not None else current)
        return True
    return a.index == b.index


def require_floating_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    """Raise unless ``dtype`` is a floating ``torch.dtype``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{name}: expected a floating torch.dtype, got {dtype!r}")
    return dtype


def require_device(device: Any, name: str = "device") -> torch.device:
    """Return ``torch.device(device)``, raising ``ValueError`` if it is not a device."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{name}: not a torch device ({exc})") from exc


def require_event_tensor(value: Any, name: str, dim: int, batch_shape: tuple[int, ...],
                         device: torch.device) -> Tensor:
    """Raise unless ``value`` is a floating tensor on ``device`` of shape ``(*sample, *batch, d)``
    (last axis ``dim``, the rest broadcasting with ``batch_shape``) holding no NaN: a point at
    which a distribution's log-density is evaluated. One device synchronisation."""
    if not isinstance(value, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if not value.dtype.is_floating_point:
        raise ValueError(f"{name}: expected a floating tensor, got dtype {value.dtype}")
    if not same_device(value.device, device):
        raise ValueError(f"{name}: is on device {value.device}, expected {device}")
    if value.ndim < 1 or value.shape[-1] != dim:
        raise ValueError(f"{name}: expected a last axis of size d={dim}, got shape "
                         f"{tuple(value.shape)}")
    try:
        torch.broadcast_shapes(value.shape[:-1], batch_shape)
    except RuntimeError as exc:
        raise ValueError(f"{name}: shape {tuple(value.shape)} does not broadcast with batch "
                         f"shape {tuple(batch_shape)}") from exc
    if bool(torch.isnan(value).any()):
        raise ValueError(f"{name}: contains NaN")
    return value
