"""The PyTorch samplers (gpu_impl) pass the battery on the gate's cases
(docs/algorithms.md §7).

Float32 on the CPU by default; ``CSPD_TEST_DEVICE=cuda`` runs the same assertions on a GPU.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings

import gpu_impl
from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.strategies import (
    ar_cases,
    equal_scale_gaussian_cases,
    linear_chain_pairs,
    token_cases,
)
from gpu_impl.testing import device_under_test
from property_tests.gate import assert_equivalent

DEVICE = device_under_test()


def gpu_chain(chain: Any) -> gpu_impl.LinearGaussianChain:
    return gpu_impl.LinearGaussianChain(chain.coefficients, chain.offsets, chain.step_scales,
                                        chain.temperature, device=DEVICE, dtype=torch.float32)


def aligned_gpu_sampler(case: DiffusionCase, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator(device=DEVICE)
    generator.manual_seed(seed)
    return gpu_impl.aligned_speculative_sample(gpu_chain(case.draft_chain),
                                               gpu_chain(case.target_chain), n,
                                               generator=generator).samples


@pytest.mark.parametrize("residual", ["auto", "batched"])
@settings(max_examples=8)
@given(case=token_cases(max_dim=16))
def test_as_sampler_float32_is_exact_on_mixtures(residual: str, case: Case) -> None:
    sampler = gpu_impl.as_sampler(device=DEVICE, dtype=torch.float32, residual=residual)
    assert_equivalent(sampler, case, residual, repr(case.target.means.sum()))


@settings(max_examples=6)
@given(case=equal_scale_gaussian_cases())
def test_as_sampler_reflection_is_exact(case: Case) -> None:
    sampler = gpu_impl.as_sampler(device=DEVICE, dtype=torch.float32, residual="reflection")
    assert_equivalent(sampler, case, "reflection", repr(case.target.means.sum()))


@settings(max_examples=6)
@given(case=token_cases(max_dim=8))
def test_gpu_acceptance_and_trial_counts_follow_theory(case: Case) -> None:
    sampler = gpu_impl.as_sampler(device=DEVICE, dtype=torch.float32, residual="batched")
    assert_equivalent(sampler, case, "counts", repr(case.target.means.sum()))


@settings(max_examples=4)
@given(case=linear_chain_pairs())
def test_gpu_aligned_trajectories_are_exact(case: DiffusionCase) -> None:
    assert_equivalent(aligned_gpu_sampler, case, "gpu-aligned",
                      repr(case.target_chain.offsets.sum()))


@pytest.mark.parametrize("config", [{"gamma": 2, "prefill": 0.0, "bonus_group": True},
                                    {"gamma": 3, "prefill": 0.25, "bonus_group": False}],
                         ids=["gamma2-bonus", "gamma3-prefill-nobonus"])
@settings(max_examples=2)
@given(case=ar_cases())
def test_gpu_ar_speculative_decoding_is_exact(config: dict, case: ARCase) -> None:
    sampler = gpu_impl.as_ar_sampler(device=DEVICE, dtype=torch.float32, **config)
    assert_equivalent(sampler, case, "gpu-ar", repr(config), repr(case.target.base_means.sum()),
                      n=2000)
