"""cspd_ref: the float64 NumPy reference of continuous speculative decoding.

Public names (SPEC §5): ``GaussianMixture``, ``Case``, ``speculative_sample``, ``verify``.
"""

from cspd_ref.distributions import DiagGaussian, GaussianMixture
from cspd_ref.speculative import (
    ResidualBudgetExceeded,
    SpeculativeResult,
    speculative_sample,
    speculative_sample_from_noise,
)

__all__ = [
    "DiagGaussian",
    "GaussianMixture",
    "ResidualBudgetExceeded",
    "SpeculativeResult",
    "speculative_sample",
    "speculative_sample_from_noise",
]
