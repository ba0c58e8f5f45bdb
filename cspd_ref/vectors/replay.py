"""Implementations under test, all behind one plain-NumPy interface (docs/vectors.md, "Ports").

A port implements::

    replay(kind: str, params: dict[str, np.ndarray], noise: dict[str, np.ndarray])
        -> dict[str, np.ndarray]   # the kind's outputs, by name
        |  NotImplemented          # for kinds the port does not implement

``params`` and ``noise`` hold the vector's arrays exactly as stored (float64); the result may
hold any array-likes NumPy can convert (JAX arrays, lists, host tensors). The built-in
``reference_replay`` (float64 ``cspd_ref``) and ``torch_replay`` (``gpu_impl``, any float dtype
and device) follow the same interface, so ``check_vectors`` treats all of them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cspd_ref.loading import load_callable
from cspd_ref.vectors.registry import KINDS

Replay = Callable[[str, dict[str, np.ndarray], dict[str, np.ndarray]], Any]
"""``replay(kind, params, noise) -> outputs | NotImplemented`` (module docstring)."""

COMPUTE_DTYPES = ("float64", "float32")


def reference_replay(kind: str, params: dict[str, np.ndarray],
                     noise: dict[str, np.ndarray]) -> Any:
    """Replay ``kind`` with the float64 reference ``cspd_ref`` (its ``*_from_noise`` functions);
    ``NotImplemented`` for an unregistered kind."""
    if kind not in KINDS:
        return NotImplemented
    return KINDS[kind].reference(params, noise)


def torch_replay(dtype: str = "float64", device: str = "cpu") -> Replay:
    """A replay through ``gpu_impl`` with tensors of ``dtype`` on ``device``.

    Parameters and noise are cast to ``dtype`` (the vectors' values are exact in float32, so
    the cast loses nothing); outputs come back as host arrays of the computed dtype.

    Raises:
        ValueError: naming ``dtype`` (not float64/float32) or ``device`` (not a torch device,
            or CUDA requested but unavailable).
    """
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"dtype: expected one of {COMPUTE_DTYPES}, got {dtype!r}")
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but CUDA is not available")

    def replay(kind: str, params: dict[str, np.ndarray], noise: dict[str, np.ndarray]) -> Any:
        if kind not in KINDS:
            return NotImplemented
        return KINDS[kind].torch(params, noise, dtype, str(dev))

    replay.__name__ = f"gpu_impl[{dtype},{dev}]"
    return replay


@dataclass(frozen=True)
class Implementation:
    """A resolved implementation: a label for reports, its replay, and the compute dtype whose
    epsilon sets the float tolerance (at least; a coarser returned dtype widens it)."""

    label: str
    replay: Replay
    dtype: str


def resolve_implementation(spec: str, *, dtype: str = "float64",
                           device: str = "cpu") -> Implementation:
    """``"ref"``, ``"gpu"`` or ``MODULE:FUNCTION`` / ``path/to/file.py:FUNCTION`` (a port's
    ``replay``) as an ``Implementation``.

    ``dtype`` is the compute dtype: for ``gpu`` the tensors' dtype; for a port, the precision
    it computes in (the tolerance uses its epsilon even if the port returns float64 arrays).
    ``device`` applies to ``gpu`` only.

    Raises:
        ValueError: naming ``dtype`` or ``device``; ``cspd_ref.loading.LoadError`` (a
            ``ValueError``) when a port spec cannot be loaded.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError("impl: expected 'ref', 'gpu' or MODULE:FUNCTION")
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"dtype: expected one of {COMPUTE_DTYPES}, got {dtype!r}")
    if spec == "gpu":
        return Implementation(f"gpu_impl ({dtype}, {device})", torch_replay(dtype, device),
                              dtype)
    if device != "cpu":
        raise ValueError(f"device: applies to --impl gpu only, got {device!r} with {spec!r}")
    if spec == "ref":
        if dtype != "float64":
            raise ValueError(f"dtype: the reference computes in float64 only, got {dtype!r}")
        return Implementation("cspd_ref (float64)", reference_replay, "float64")
    return Implementation(spec, load_callable(spec), dtype)
