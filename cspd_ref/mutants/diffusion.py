"""Gross diffusion-head mutants: aligned-trajectory sampling with one mistake in the last step."""

from __future__ import annotations

from typing import Any

import numpy as np

from cspd_ref.cases import DiffusionCase
from cspd_ref.diffusion_sampling import aligned_last_steps
from cspd_ref.distributions import DiagGaussian
from cspd_ref.speculative import (
    ResidualNoiseGenerator,
    verify_draft_from_noise,
)

FloatArray = np.ndarray


# --------------------------------------------------------------------------- diffusion mutants
def diffusion_noise(case: DiffusionCase, n: int, *, rng: np.random.Generator,
                    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    d, T = case.dim, case.target_chain.num_steps
    return (rng.standard_normal((n, d)), rng.standard_normal((T - 1, n, d)),
            rng.standard_normal((n, d)), rng.random(n))


def noiseless_last_step(case: DiffusionCase, n: int, seed: int) -> Any:
    """The draft's last step returns its mean ``m_q(x_1, 1)`` (no noise), but the acceptance test
    scores that point with the Gaussian last-step densities as if it had been sampled."""
    rng = np.random.default_rng(seed)
    x_T, shared, _, u = diffusion_noise(case, n, rng=rng)
    q_last, p_last = aligned_last_steps(case.draft_chain, case.target_chain, x_T, shared)
    x = q_last.mean.copy()
    return verify_draft_from_noise(q_last, p_last, x, u, ResidualNoiseGenerator(case.dim, rng=rng),
                                   method="batched").samples


def unaligned_target_last_step(case: DiffusionCase, n: int, seed: int) -> Any:
    """The target's last step is evaluated at the draft's ``x_1^q`` instead of running the
    target chain on the shared noise: the output follows ``p_1(. | x_1^q)``, not the target."""
    rng = np.random.default_rng(seed)
    x_T, shared, eps1, u = diffusion_noise(case, n, rng=rng)
    x1_q = case.draft_chain.trajectory_from_noise(x_T, shared)[-1]
    q_last = case.draft_chain.transition(x1_q, 1)
    p_last = case.target_chain.transition(x1_q, 1)
    x = q_last.mean + q_last.scale * eps1
    return verify_draft_from_noise(q_last, p_last, x, u, ResidualNoiseGenerator(case.dim, rng=rng),
                                   method="batched").samples


def variance_as_scale_in_last_step(case: DiffusionCase, n: int, seed: int) -> Any:
    """The last-step Gaussians are built with ``(tau s)^2`` where ``tau s`` is expected."""
    rng = np.random.default_rng(seed)
    x_T, shared, eps1, u = diffusion_noise(case, n, rng=rng)
    q_last, p_last = aligned_last_steps(case.draft_chain, case.target_chain, x_T, shared)
    q_wrong = DiagGaussian(q_last.mean, q_last.scale**2, validate_args=False)
    p_wrong = DiagGaussian(p_last.mean, p_last.scale**2, validate_args=False)
    x = q_wrong.mean + q_wrong.scale * eps1
    return verify_draft_from_noise(q_wrong, p_wrong, x, u,
                                   ResidualNoiseGenerator(case.dim, rng=rng),
                                   method="batched").samples
