"""The sampler-output contract (docs/contract.md): what ``verify`` accepts from a sampler.

A sampler follows ``sampler(case, n, seed) -> (n, d)`` (a NumPy array or a torch tensor, in any
float dtype including float16/bfloat16; sequence samplers return ``(n, L, d)``). It may instead
return an object with ``.samples`` and, optionally, ``.accepted`` (bool, length n) and
``.trials`` (non-negative integers, length n), like ``SpeculativeResult``. ``normalise_output``
checks all of it and converts to NumPy, recording the samples' native floating format; output
that breaks the contract raises ``SamplerOutputError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cspd_ref.cases import ARCase
from cspd_ref.stats.precision import FloatFormat, float_format


@dataclass(frozen=True)
class SamplerOutput:
    """What a sampler returned, converted to NumPy, with its native floating format.

    Attributes:
        samples: ``(n, d)`` or ``(n, L, d)``, float32 for 16-bit output (exactly), else as
            returned.
        accepted: ``(n,)`` bool accept mask, or None when not exposed.
        trials: ``(n,)`` int64 residual trial counts, or None when not exposed.
        resolution: the samples' native format (``"float64"`` ... ``"bfloat16"``).

    Examples:
        >>> import numpy as np
        >>> SamplerOutput(np.zeros((2, 1))).accepted is None
        True
    """

    samples: np.ndarray
    accepted: np.ndarray | None = None
    trials: np.ndarray | None = None
    resolution: str = "float64"


class SamplerOutputError(ValueError):
    """The sampler's output breaks the contract of ``docs/contract.md``: samples of the wrong
    shape or a non-float dtype, ``accepted`` not a bool array of length n, ``trials`` not
    non-negative integers of length n. ``verify`` cannot judge such output.

    Examples:
        >>> import numpy as np
        >>> normalise_output(np.zeros((3, 2)), 3, (3, 1))
        Traceback (most recent call last):
        ...
        cspd_ref.battery.output.SamplerOutputError: sampler: returned samples of shape (3, 2), \
expected (3, 1) (contract sampler(case, n, seed), docs/contract.md)
    """


def native_format(value: Any) -> FloatFormat:
    """The floating format of an array or tensor (bfloat16/float16 tensors included).

    Examples:
        >>> import numpy as np
        >>> native_format(np.zeros(2, dtype=np.float32)).name
        'float32'
    """
    raw = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    dtype = str(raw).replace("torch.", "")
    try:
        return float_format(dtype)
    except ValueError:
        raise SamplerOutputError(f"sampler: returned samples of dtype {dtype}, expected floating "
                                 "point (float64, float32, float16 or bfloat16)") from None


def to_numpy(value: Any, name: str) -> np.ndarray:
    """A NumPy copy/view of an array or (CPU/GPU) torch tensor. 16-bit float tensors become
    float32 (exactly: every float16/bfloat16 value is a float32); their native format is read
    with ``native_format`` before conversion.

    Examples:
        >>> to_numpy([1.0, 2.0], "samples")
        array([1., 2.])
    """
    if hasattr(value, "detach"):
        value = value.detach()
        if str(getattr(value, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise SamplerOutputError(f"sampler: {name} cannot be read as an array ({exc})") from exc
    if array.dtype == object:
        raise SamplerOutputError(f"sampler: {name} is an object array")
    return array


def accepted_mask(value: Any, n: int) -> np.ndarray:
    """``accepted`` as a bool array of shape ``(n,)``; raises ``SamplerOutputError`` for any
    other dtype (0/1 floats or integers are refused, not coerced) or length.

    Examples:
        >>> import numpy as np
        >>> accepted_mask(np.array([True, False]), 2)
        array([ True, False])
        >>> accepted_mask(np.array([1, 0], dtype=np.int64), 2)
        Traceback (most recent call last):
        ...
        cspd_ref.battery.output.SamplerOutputError: sampler: accepted must be a bool array, \
got dtype int64
    """
    array = to_numpy(value, "accepted")
    if array.dtype != np.bool_:
        raise SamplerOutputError(f"sampler: accepted must be a bool array, got dtype "
                                 f"{array.dtype}")
    if array.shape != (n,):
        raise SamplerOutputError(f"sampler: accepted must have shape ({n},), got "
                                 f"{array.shape}")
    return array


def trial_counts(value: Any, n: int) -> np.ndarray:
    """``trials`` as an int64 array of shape ``(n,)``; raises ``SamplerOutputError`` unless it
    holds non-negative integers (an integer dtype, not bool) of that length.

    Examples:
        >>> import numpy as np
        >>> trial_counts(np.array([0, 3], dtype=np.int32), 2)
        array([0, 3])
    """
    array = to_numpy(value, "trials")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise SamplerOutputError(f"sampler: trials must be an integer array, got dtype "
                                 f"{array.dtype}")
    if array.shape != (n,):
        raise SamplerOutputError(f"sampler: trials must have shape ({n},), got {array.shape}")
    if array.size and int(array.min()) < 0:
        raise SamplerOutputError(f"sampler: trials must be >= 0, got a minimum of "
                                 f"{int(array.min())}")
    return array.astype(np.int64)


def normalise_output(raw: Any, n: int, shape: tuple[int, ...]) -> SamplerOutput:
    """Accept an array/tensor or an object with ``.samples`` (+ ``.accepted``, ``.trials``),
    check it against the contract for ``n`` rows of ``shape`` (``SamplerOutputError``
    otherwise) and record the samples' native floating format.

    Examples:
        >>> import numpy as np
        >>> out = normalise_output(np.zeros((3, 2), dtype=np.float32), 3, (3, 2))
        >>> out.samples.shape, out.resolution, out.accepted is None
        ((3, 2), 'float32', True)
    """
    if raw is None:
        raise SamplerOutputError("sampler: returned None, expected samples")
    samples = raw.samples if hasattr(raw, "samples") else raw
    resolution = native_format(samples).name
    array = to_numpy(samples, "samples")
    if array.shape != shape:
        raise SamplerOutputError(f"sampler: returned samples of shape {array.shape}, expected "
                                 f"{shape} (contract sampler(case, n, seed), docs/contract.md)")
    accepted = getattr(raw, "accepted", None)
    trials = getattr(raw, "trials", None)
    return SamplerOutput(
        samples=array,
        accepted=None if accepted is None else accepted_mask(accepted, n),
        trials=None if trials is None else trial_counts(trials, n),
        resolution=resolution,
    )


def expected_shape(case: Any, n: int) -> tuple[int, ...]:
    """``(n, d)`` for token cases, ``(n, L, d)`` for sequences.

    Examples:
        >>> from cspd_ref.builtin_cases import ar_mixture_case
        >>> from cspd_ref.cases import demo_case
        >>> expected_shape(demo_case(), 5), expected_shape(ar_mixture_case(), 5)
        ((5, 2), (5, 6, 2))
    """
    if isinstance(case, ARCase):
        return (n, case.seq_len, case.dim)
    return (n, case.dim)
