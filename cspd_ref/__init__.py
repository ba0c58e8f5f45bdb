"""cspd_ref: the float64 NumPy reference of continuous speculative decoding.

Public names (docs/contract.md): ``GaussianMixture``, ``Case``, ``speculative_sample``, ``verify``.
"""

from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.distributions import DiagGaussian, GaussianMixture
from cspd_ref.speculative import (
    ResidualBudgetExceeded,
    SpeculativeResult,
    speculative_sample,
    speculative_sample_from_noise,
)
from cspd_ref.verify import SamplerOutputError, Verdict, verify

__version__ = "0.1.0"

__all__ = [
    "ARCase",
    "Case",
    "DiagGaussian",
    "DiffusionCase",
    "GaussianMixture",
    "ResidualBudgetExceeded",
    "SamplerOutputError",
    "SpeculativeResult",
    "Verdict",
    "speculative_sample",
    "speculative_sample_from_noise",
    "verify",
]
