"""The fused reflection step (``gpu_impl.fused``) is the exact sampler: sample for sample on
shared noise against ``gpu_impl.speculative_sample_from_noise(residual="reflection")``, its
``torch.compile``d form against the eager one, and in law through the battery."""

from __future__ import annotations

import pytest
import torch

import gpu_impl
from cspd_ref.cases import equal_scale_gaussian_case
from gpu_impl.fused import fused_reflection_sampler, speculative_reflection_step
from property_tests.gate import assert_equivalent


def per_token_pair(n: int, d: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(5)
    mean_p = torch.randn((n, d), generator=generator, dtype=dtype)
    scale = 0.5 + torch.rand((n, d), generator=generator, dtype=dtype)
    mean_q = mean_p + 0.3 * torch.randn((n, d), generator=generator, dtype=dtype) * scale
    normals = torch.randn((n, d), generator=generator, dtype=dtype)
    uniforms = torch.rand(n, generator=generator, dtype=dtype)
    return mean_q, mean_p, scale, normals, uniforms


def test_fused_step_equals_the_plain_sampler_on_shared_noise() -> None:
    """float64: identical accept decisions, samples equal to 1e-12 (relative)."""
    n, d = 4096, 8
    mean_q, mean_p, scale, normals, uniforms = per_token_pair(n, d, torch.float64)
    ones = torch.ones((n, 1), dtype=torch.float64)
    draft = gpu_impl.GaussianMixture(ones, mean_q[:, None], scale[:, None])
    target = gpu_impl.GaussianMixture(ones, mean_p[:, None], scale[:, None])
    component_uniforms = torch.rand(n, dtype=torch.float64)
    plain = gpu_impl.speculative_sample_from_noise(draft, target, component_uniforms, normals,
                                                   uniforms, None, residual="reflection")
    samples, accepted = speculative_reflection_step(mean_q, mean_p, scale, normals, uniforms)
    assert torch.equal(accepted, plain.accepted)
    assert 0.05 < float((~accepted).double().mean()) < 0.5
    torch.testing.assert_close(samples, plain.samples, rtol=1e-12, atol=1e-12)


def test_compiled_step_equals_the_eager_step() -> None:
    """float32, torch.compile (Inductor) against eager: the same decisions wherever the
    log-ratio is not within 1e-4 of log u (fused arithmetic rounds differently), samples equal
    to float32 rounding."""
    mean_q, mean_p, scale, normals, uniforms = per_token_pair(4096, 16, torch.float32)
    eager = speculative_reflection_step(mean_q, mean_p, scale, normals, uniforms)
    compiled = torch.compile(speculative_reflection_step)(mean_q, mean_p, scale, normals,
                                                          uniforms)
    log_ratio = gpu_impl.diffusion.gaussian_log_ratio(mean_q + scale * normals, mean_q, scale,
                                                      mean_p, scale)
    clear = (torch.log(uniforms) - log_ratio).abs() > 1e-4
    assert bool(clear.float().mean() > 0.99)
    assert torch.equal(eager[1][clear], compiled[1][clear])
    torch.testing.assert_close(compiled[0][clear], eager[0][clear], rtol=1e-5, atol=1e-5)


def test_compiled_fused_sampler_passes_the_battery() -> None:
    sampler = fused_reflection_sampler(dtype=torch.float32, compiled=True)
    assert_equivalent(sampler, equal_scale_gaussian_case(4, 1.0), "fused-compiled")


def test_fused_sampler_refuses_unequal_scales() -> None:
    from cspd_ref import Case, GaussianMixture

    case = Case(GaussianMixture([1.0], [[0.0]], [[1.0]]), GaussianMixture([1.0], [[0.5]], [[1.2]]))
    with pytest.raises(ValueError, match="equal draft and target scales"):
        fused_reflection_sampler()(case, 10, 0)
