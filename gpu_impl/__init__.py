"""gpu_impl: the PyTorch implementation of continuous speculative decoding (SPEC §6).

Same maths as ``cspd_ref``, batched over (tokens, dim), any device and float dtype, log-space,
exact residual sampling by batched proposals and by reflection when scales match. Modules mirror
``cspd_ref`` name for name: ``distributions``, ``speculative``, ``diffusion``, plus ``sampler``
(``as_sampler``, the SPEC §5 contract).

Public names: ``as_sampler``; ``GaussianMixture``, ``DiagGaussian``, ``from_reference``;
``speculative_sample``, ``speculative_sample_from_noise``, ``SpeculativeResult``,
``ResidualNoiseArrays``, ``ResidualNoiseGenerator``, ``ResidualBudgetExceeded``;
``GaussianChain``, ``LinearGaussianChain``, ``aligned_speculative_sample(_from_noise)``,
``joint_speculative_sample(_from_noise)``, ``aligned_denoise``.
"""

from gpu_impl.diffusion import (
    GaussianChain,
    LinearGaussianChain,
    aligned_denoise,
    aligned_speculative_sample,
    aligned_speculative_sample_from_noise,
    joint_speculative_sample,
    joint_speculative_sample_from_noise,
)
from gpu_impl.distributions import DiagGaussian, GaussianMixture, from_reference
from gpu_impl.sampler import as_sampler
from gpu_impl.speculative import (
    ResidualBudgetExceeded,
    ResidualNoiseArrays,
    ResidualNoiseGenerator,
    SpeculativeResult,
    speculative_sample,
    speculative_sample_from_noise,
)

__all__ = [
    "DiagGaussian",
    "GaussianChain",
    "GaussianMixture",
    "LinearGaussianChain",
    "ResidualBudgetExceeded",
    "ResidualNoiseArrays",
    "ResidualNoiseGenerator",
    "SpeculativeResult",
    "aligned_denoise",
    "aligned_speculative_sample",
    "aligned_speculative_sample_from_noise",
    "as_sampler",
    "from_reference",
    "joint_speculative_sample",
    "joint_speculative_sample_from_noise",
    "speculative_sample",
    "speculative_sample_from_noise",
]
