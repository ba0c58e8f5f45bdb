"""A fused speculative step for the diffusion-head case: one single Gaussian per token, equal
draft and target scales (docs/algorithms.md §3.3, §7). GPU-only module (no ``cspd_ref`` twin).

``speculative_reflection_step`` is a pure function of its tensors — no validation, no host
synchronisation, no data-dependent shape — so ``torch.compile`` fuses it into one kernel (or a
CUDA graph captures it). It composes the same steps as ``gpu_impl.speculative_sample`` with
``residual="reflection"``: the draft ``x = mu_q + s z``; the acceptance test
``log u < log p(x) - log q(x)`` (``accept_from_uniforms`` on ``gaussian_log_ratio``); a rejected
row takes the reflection ``reflection_map(x)``, which is an exact draw from the residual
``(p - q)^+ / TV`` (docs/algorithms.md §3.3). It is exact for every pair it accepts as input;
giving it unequal scales is a caller's error it does not check (``fused_reflection_sampler``
checks, once, outside the step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gpu_impl.diffusion import gaussian_log_ratio
from gpu_impl.distributions import from_reference
from gpu_impl.residual import equal_scale_gaussians, reflection_map
from gpu_impl.speculative import SpeculativeResult, accept_from_uniforms
from gpu_impl.validation import require_device, require_floating_dtype

__all__ = ["fused_reflection_sampler", "speculative_reflection_step"]


def speculative_reflection_step(mean_draft: Tensor, mean_target: Tensor, scale: Tensor,
                                normals: Tensor, accept_uniforms: Tensor) -> tuple[Tensor, Tensor]:
    """Speculative sampling of one token per row, single Gaussians with equal scales.

    Args:
        mean_draft, mean_target, scale: ``(n, d)`` (or broadcastable) draft mean ``mu_q``,
            target mean ``mu_p`` and their common scale ``s``.
        normals: ``(n, d)`` standard normals of the draft, ``x = mu_q + s z``.
        accept_uniforms: ``(n,)`` uniforms in [0, 1) of the acceptance test.

    Returns:
        ``(samples (n, d), accepted (n,) bool)``: ``x`` where ``log u < log p(x) - log q(x)``,
        else its reflection, which follows the residual law exactly; the samples follow
        ``N(mu_p, s^2)`` exactly.

    Examples:
        >>> import torch
        >>> zeros, ones = torch.zeros(4, 2), torch.ones(4, 2)
        >>> out, accepted = speculative_reflection_step(zeros, zeros, ones, ones, torch.rand(4))
        >>> bool(accepted.all()), tuple(out.shape)   # p == q: every draft is accepted
        (True, (4, 2))
    """
    x = mean_draft + scale * normals
    log_ratio = gaussian_log_ratio(x, mean_draft, scale, mean_target, scale)
    accepted = accept_from_uniforms(log_ratio, accept_uniforms)
    reflected = reflection_map(x, mean_draft, mean_target, scale)
    return torch.where(accepted[..., None], x, reflected), accepted


def fused_reflection_sampler(*, device: torch.device | str = "cpu",
                             dtype: torch.dtype = torch.float32,
                             compiled: bool = False) -> Callable[[Any, int, int], Any]:
    """A sampler following the contract ``sampler(case, n, seed)`` (docs/contract.md) built on
    ``speculative_reflection_step`` (compiled with ``torch.compile`` when ``compiled``).

    The case must be a pair of single Gaussians with equal scales (checked once per call, on
    the parameters); the noise (normals, then uniforms) is drawn from a ``torch.Generator``
    seeded with ``seed``. Returns a ``SpeculativeResult`` (trials are 0: the reflection makes
    no proposals).

    Raises:
        ValueError: a bad ``device`` or ``dtype``; (when called) a case that is not two single
            Gaussians with equal scales.
    """
    dev = require_device(device)
    dt = require_floating_dtype(dtype)
    step = torch.compile(speculative_reflection_step) if compiled else speculative_reflection_step

    def sampler(case: Any, n: int, seed: int) -> SpeculativeResult:
        draft = from_reference(case.draft, dev, dt)
        target = from_reference(case.target, dev, dt)
        if not equal_scale_gaussians(draft, target):
            raise ValueError("case: the fused reflection step needs single Gaussians (K = 1) "
                             "with equal draft and target scales")
        generator = torch.Generator(device=dev).manual_seed(int(seed))
        d = target.dim
        normals = torch.randn((n, d), generator=generator, device=dev, dtype=dt)
        uniforms = torch.rand(n, generator=generator, device=dev, dtype=dt)
        mean_q = draft.means[..., 0, :].expand(n, d)
        mean_p = target.means[..., 0, :].expand(n, d)
        scale = target.scales[..., 0, :].expand(n, d)
        samples, accepted = step(mean_q, mean_p, scale, normals, uniforms)
        return SpeculativeResult(samples=samples, accepted=accepted,
                                 trials=torch.zeros(n, dtype=torch.int64, device=dev))

    sampler.__name__ = f"gpu_impl_fused_reflection_{dev.type}_{str(dt).replace('torch.', '')}"
    return sampler
