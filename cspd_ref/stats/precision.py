"""Output precision: the floating formats a sampler may return and their rounding
(docs/battery.md, half precision).

An exact sampler that returns float16 or bfloat16 returns the exact law *rounded* to 11 or 8
significant bits; the battery's null hypothesis includes that rounding. This module describes the
formats (NumPy has no bfloat16, so a bfloat16 tensor arrives as float32 values and its format is
carried separately), gives the spacing between neighbouring representable values (the width of a
rounding cell) and rounds float64 values to a format, so that a reference sample can be rounded
exactly as the sampler's output was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.validation import FloatArray


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format.

    Attributes:
        name: ``"float64" | "float32" | "float16" | "bfloat16"``.
        significand_bits: precision ``p`` including the implicit bit (53, 24, 11, 8).
        min_exponent: exponent of the smallest normal number, ``2**min_exponent``.

    Examples:
        >>> FORMATS["float16"]
        FloatFormat(name='float16', significand_bits=11, min_exponent=-14)
    """

    name: str
    significand_bits: int
    min_exponent: int

    @property
    def relative_spacing(self) -> float:
        """``2**(1 - p)``: the spacing of values in ``[1, 2)``.

        Examples:
            >>> float_format("bfloat16").relative_spacing
            0.0078125
        """
        return float(2.0 ** (1 - self.significand_bits))

    def spacing(self, values: ArrayLike) -> FloatArray:
        """Distance from ``|x|`` to the next larger representable magnitude (``numpy.spacing``
        for this format): ``2**(max(e, min_exponent) - p + 1)``, ``e = floor(log2 |x|)``.

        Round-to-nearest moves an exact value by at most half the spacing of its rounded value.

        Examples:
            >>> float_format("bfloat16").spacing([1.0, 3.0])
            array([0.0078125, 0.015625 ])
        """
        x = np.abs(np.asarray(values, dtype=np.float64))
        _, exponent = np.frexp(x)  # x = m 2**exponent, m in [0.5, 1): e = exponent - 1
        e = np.where(x > 0.0, np.maximum(exponent.astype(np.int64) - 1, self.min_exponent),
                     self.min_exponent)
        return np.asarray(np.ldexp(1.0, e - self.significand_bits + 1), dtype=np.float64)

    def round(self, values: ArrayLike) -> FloatArray:
        """Round float64 values to this format (round to nearest, ties to even); float64 out.

        Examples:
            >>> float_format("float16").round([1.0 + 2.0**-12, 1.0 / 3.0])
            array([1.        , 0.33325195])
        """
        x = np.asarray(values, dtype=np.float64)
        if self.name == "float64":
            return x.copy()
        if self.name == "float32":
            return x.astype(np.float32).astype(np.float64)
        if self.name == "float16":
            return x.astype(np.float16).astype(np.float64)
        return round_to_bfloat16(x)

    @property
    def is_half(self) -> bool:
        """True for the 16-bit formats (float16, bfloat16).

        Examples:
            >>> float_format("bfloat16").is_half, float_format("float32").is_half
            (True, False)
        """
        return self.significand_bits <= 11


FORMATS: dict[str, FloatFormat] = {
    "float64": FloatFormat("float64", 53, -1022),
    "float32": FloatFormat("float32", 24, -126),
    "float16": FloatFormat("float16", 11, -14),
    "bfloat16": FloatFormat("bfloat16", 8, -126),
}


def float_format(name: str) -> FloatFormat:
    """The ``FloatFormat`` called ``name`` (a NumPy or torch dtype name, ``torch.`` stripped).

    Examples:
        >>> float_format("torch.half").name, float_format("float32").significand_bits
        ('float16', 24)
    """
    key = str(name).replace("torch.", "")
    if key == "half":
        key = "float16"
    if key not in FORMATS:
        raise ValueError(f"dtype: expected one of {sorted(FORMATS)}, got {name!r}")
    return FORMATS[key]


def round_to_bfloat16(values: ArrayLike) -> FloatArray:
    """Round to bfloat16 (8 significant bits), ties to even, via float32; float64 out.

    bfloat16 is the upper half of a float32: add ``0x7FFF`` plus the lowest kept bit to the
    float32 bit pattern and clear the low 16 bits (round to nearest, ties to even). The float64
    -> float32 step rounds first; a double rounding can differ from a direct rounding only for
    values within 2**-24 relative of a bfloat16 tie, which is far below the battery's resolution.

    Examples:
        >>> round_to_bfloat16([1.0 / 3.0, 1.0 + 2.0**-8])  # a tie rounds to the even 1.0
        array([0.33398438, 1.        ])
    """
    x = np.asarray(values, dtype=np.float64).astype(np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32).astype(np.float64)
    return np.asarray(np.where(np.isfinite(x), out, x), dtype=np.float64)
