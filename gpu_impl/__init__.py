"""gpu_impl: the PyTorch implementation of continuous speculative decoding
(docs/algorithms.md §7).

Same maths as ``cspd_ref``, batched over (tokens, dim), any device and float dtype, log-space,
exact residual sampling by batched proposals and by reflection when scales match. Modules mirror
``cspd_ref`` name for name: ``validation``, ``distributions``, ``diffusion`` (chains) and
``diffusion_sampling`` (the speculative samplers over chains), ``speculative`` (acceptance test,
whole sampler) and ``residual`` (residual noise streams, first-success engines, residual
samplers) define the same public names in the same order as their twins (tests/test_mirror.py,
tests/test_validation.py); ``ar`` and ``ar_noise`` mirror theirs; ``ar_model`` holds
``MixtureARModel`` as ``cspd_ref.ar_model`` does, plus the batched ``ARModel`` interface and the
padded ``GroupTable`` (``cspd_ref`` keeps its one-sequence ``ARModel`` and ``GroupSchedule`` in
``ar``). Plus ``diffusion_health`` (the synchronisation-free fault check of the denoising loops,
which the reference does not need) and ``samplers`` (``as_sampler``, ``as_ar_sampler``, the
contract of docs/contract.md), ``fused`` and ``bench`` (the compilable reflection step and the
sampler benchmark) and the subpackage ``mar_toy`` (a MAR-style generator and the end-to-end
benchmark, docs/mar_toy.md). ``ResidualBudgetExceeded`` is ``cspd_ref.ResidualBudgetExceeded``
(one class for both).

Public names: ``as_sampler``, ``as_ar_sampler``; ``GaussianMixture``, ``DiagGaussian``,
``from_reference``;
``speculative_sample``, ``speculative_sample_from_noise``, ``SpeculativeResult``,
``ResidualNoiseArrays``, ``ResidualNoiseGenerator``, ``ResidualBudgetExceeded``;
``GaussianChain``, ``LinearGaussianChain``, ``aligned_speculative_sample(_from_noise)``,
``joint_speculative_sample(_from_noise)``, ``aligned_denoise``; ``ARModel``,
``MixtureARModel``, ``GroupTable``, ``ar_speculative_decode``, ``ARDecodeResult``,
``ar_speculative_decode_from_noise``, ``ARNoise``, ``draw_ar_noise``.
"""

from gpu_impl.ar import (
    ARDecodeResult,
    ARModel,
    ARNoise,
    GroupTable,
    MixtureARModel,
    ar_speculative_decode,
    ar_speculative_decode_from_noise,
    draw_ar_noise,
)
from gpu_impl.diffusion import GaussianChain, LinearGaussianChain
from gpu_impl.diffusion_sampling import (
    aligned_denoise,
    aligned_speculative_sample,
    aligned_speculative_sample_from_noise,
    joint_speculative_sample,
    joint_speculative_sample_from_noise,
)
from gpu_impl.distributions import DiagGaussian, GaussianMixture, from_reference
from gpu_impl.samplers import as_ar_sampler, as_sampler
from gpu_impl.speculative import (
    ResidualBudgetExceeded,
    ResidualNoiseArrays,
    ResidualNoiseGenerator,
    SpeculativeResult,
    speculative_sample,
    speculative_sample_from_noise,
)

__all__ = [
    "ARDecodeResult",
    "ARModel",
    "ARNoise",
    "DiagGaussian",
    "GaussianChain",
    "GaussianMixture",
    "GroupTable",
    "LinearGaussianChain",
    "MixtureARModel",
    "ResidualBudgetExceeded",
    "ResidualNoiseArrays",
    "ResidualNoiseGenerator",
    "SpeculativeResult",
    "aligned_denoise",
    "aligned_speculative_sample",
    "aligned_speculative_sample_from_noise",
    "ar_speculative_decode",
    "ar_speculative_decode_from_noise",
    "as_ar_sampler",
    "as_sampler",
    "draw_ar_noise",
    "from_reference",
    "joint_speculative_sample",
    "joint_speculative_sample_from_noise",
    "speculative_sample",
    "speculative_sample_from_noise",
]
