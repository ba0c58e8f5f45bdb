"""Exact speculative sampling of diffusion-head tokens (docs/algorithms.md §4.2, §4.3), float64.

Draft and target are two ``GaussianChain``\\ s (``cspd_ref.diffusion``) with the same T and d.
Two exact samplers:

* ``aligned_speculative_sample`` — denoising trajectory alignment: draft and target share
  ``x_T`` and ``eps_T .. eps_2``; speculative sampling (docs/algorithms.md §3) is applied to
  the two last-step Gaussians ``N(m_q(x_1^q, 1), (tau s_q)^2)`` and
  ``N(m_p(x_1^p, 1), (tau s_p)^2)``. Given the shared noise the output follows the target's
  last step, so its marginal is the target's (proofs/test_aligned_trajectories).
* ``joint_speculative_sample`` — accept on the whole-trajectory log-ratio
  ``sum_t log p_t(x_{t-1} | x_t) - log q_t(x_{t-1} | x_t)`` (the ``x_T`` prior is shared and
  cancels); the residual proposes whole target trajectories. Exact; its acceptance rate differs
  from the aligned one's and is not always lower.

Each has a ``*_from_noise`` form, a pure function of its noise (layout in docs/noise.md §2).
``gpu_impl.diffusion_sampling`` is this module's twin on tensors.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.diffusion import GaussianChain, require_compatible_chains, trajectory_log_ratio
from cspd_ref.distributions import DiagGaussian
from cspd_ref.speculative import (
    DEFAULT_MAX_TRIALS,
    ResidualBudgetExceeded,
    ResidualNoise,
    ResidualNoiseGenerator,
    RowSubsetNoise,
    SpeculativeResult,
    accept_from_uniforms,
    first_success_residual_batched,
    first_success_residual_loop,
    speculative_sample_from_noise,
)
from cspd_ref.validation import (
    FloatArray,
    IntArray,
    as_float64,
    require_generator,
    require_half_open_unit_interval,
    require_int,
    require_shape,
)

__all__ = [
    "aligned_last_steps",
    "aligned_speculative_sample",
    "aligned_speculative_sample_from_noise",
    "joint_speculative_sample",
    "joint_speculative_sample_from_noise",
]


# --------------------------------------------------------------------- aligned trajectories
def aligned_last_steps(draft_chain: GaussianChain, target_chain: GaussianChain,
                       x_T: ArrayLike, shared_eps: ArrayLike) -> tuple[DiagGaussian, DiagGaussian]:
    """Run both chains on the same ``x_T`` and ``eps_T .. eps_2`` (``shared_eps``
    ``(T - 1, N, d)``) down to ``x_1^q``, ``x_1^p`` and return their last-step Gaussians
    ``(q_last, p_last) = (N(m_q(x_1^q, 1), (tau s_q)^2), N(m_p(x_1^p, 1), (tau s_p)^2))``, each
    with batch ``(N,)`` (docs/algorithms.md §4.2)."""
    require_compatible_chains(draft_chain, target_chain)
    x = draft_chain.check_start(x_T)
    e = draft_chain.check_noise(shared_eps, x, "shared_eps", draft_chain.num_steps - 1)
    x1_q = draft_chain.trajectory_from_noise(x, e)[-1]
    x1_p = target_chain.trajectory_from_noise(x, e)[-1]
    return draft_chain.transition(x1_q, 1), target_chain.transition(x1_p, 1)


def aligned_speculative_sample_from_noise(
    draft_chain: GaussianChain, target_chain: GaussianChain, x_T: ArrayLike,
    shared_eps: ArrayLike, draft_last_normals: ArrayLike, accept_uniforms: ArrayLike,
    residual_noise: ResidualNoise, *, residual: str = "auto",
    max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Aligned-trajectory speculative sampling as a pure function of its noise
    (docs/algorithms.md §4.2, noise layout in docs/noise.md §2).

    Args:
        x_T: ``(N, d)`` shared start.
        shared_eps: ``(T - 1, N, d)``: ``eps_T .. eps_2``, shared by both chains.
        draft_last_normals: ``(N, d)``: the draft's own ``eps_1``.
        accept_uniforms: ``(N,)``.
        residual_noise: proposals for the last-step residual (unused by reflection).
        residual: as in ``speculative_sample``; ``"auto"`` uses reflection when the two
            last-step scales are equal.
    """
    q_last, p_last = aligned_last_steps(draft_chain, target_chain, x_T, shared_eps)
    n = q_last.batch_shape[0]
    return speculative_sample_from_noise(q_last, p_last, np.zeros(n), draft_last_normals,
                                         accept_uniforms, residual_noise, residual=residual,
                                         max_trials=max_trials)


def aligned_speculative_sample(draft_chain: GaussianChain, target_chain: GaussianChain, n: int,
                               *, rng: np.random.Generator, residual: str = "auto",
                               max_trials: int = DEFAULT_MAX_TRIALS) -> SpeculativeResult:
    """Draw ``n`` target tokens by aligned trajectories; noise from ``rng`` in the order
    ``x_T``, shared ``eps_T .. eps_2``, draft ``eps_1``, acceptance uniforms, residual."""
    require_compatible_chains(draft_chain, target_chain)
    n = require_int(n, "n")
    rng = require_generator(rng)
    d, T = draft_chain.dim, draft_chain.num_steps
    x_T = rng.standard_normal((n, d))
    shared = rng.standard_normal((T - 1, n, d))
    eps_1 = rng.standard_normal((n, d))
    u = rng.random(n)
    return aligned_speculative_sample_from_noise(
        draft_chain, target_chain, x_T, shared, eps_1, u, ResidualNoiseGenerator(d, rng=rng),
        residual=residual, max_trials=max_trials)


# --------------------------------------------------------------------- joint criterion
def joint_speculative_sample_from_noise(
    draft_chain: GaussianChain, target_chain: GaussianChain, x_T: ArrayLike,
    draft_eps: ArrayLike, accept_uniforms: ArrayLike, residual_noise: ResidualNoise, *,
    residual: str = "batched", max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Whole-trajectory speculative sampling as a pure function of its noise
    (docs/algorithms.md §4.3, noise layout in docs/noise.md §2).

    The draft runs its own trajectory from ``x_T`` with ``draft_eps`` ``(T, N, d)``; it is
    accepted iff ``log u < trajectory_log_ratio``. A rejected row proposes whole target
    trajectories (``residual_noise`` items of ``(T + 1) d`` normals: ``x_T`` then
    ``eps_T .. eps_1``) accepted with probability ``(1 - q(traj)/p(traj))^+``.

    Args:
        residual: ``"batched"`` or ``"loop"`` (reflection does not apply to trajectories).
    """
    require_compatible_chains(draft_chain, target_chain)
    if residual not in ("batched", "loop"):
        raise ValueError(f"residual: the joint criterion supports 'batched' or 'loop', "
                         f"got {residual!r}")
    max_trials = require_int(max_trials, "max_trials", minimum=1)
    T, d = target_chain.num_steps, target_chain.dim
    x = draft_chain.check_start(x_T)
    states = draft_chain.trajectory_from_noise(x, draft_chain.check_noise(draft_eps, x,
                                                                          "draft_eps", T))
    n = states.shape[1]
    u = require_half_open_unit_interval(
        require_shape(as_float64(accept_uniforms, "accept_uniforms", ndim=1), (n,),
                      "accept_uniforms"), "accept_uniforms")
    accepted = accept_from_uniforms(trajectory_log_ratio(draft_chain, target_chain, states), u)
    samples = states[-1].copy()
    trials = np.zeros(n, dtype=np.int64)
    rejected = np.flatnonzero(~accepted)
    if rejected.size:
        stream = RowSubsetNoise(residual_noise, rejected)

        def propose(rows: IntArray, start: int,
                    k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
            _, normals, accept_u = stream.take(rows, start, k)
            m, k_drawn = accept_u.shape
            if normals.shape[-1] != (T + 1) * d:
                raise ValueError(f"residual_noise: items must hold (T + 1) * d = {(T + 1) * d} "
                                 f"normals, got {normals.shape[-1]}")
            flat = normals.reshape(m * k_drawn, T + 1, d)
            traj = target_chain.trajectory_from_noise(flat[:, 0], flat[:, 1:].transpose(1, 0, 2))
            log_p = target_chain.trajectory_log_prob(traj).reshape(m, k_drawn)
            log_q = draft_chain.trajectory_log_prob(traj).reshape(m, k_drawn)
            return traj[-1].reshape(m, k_drawn, d), log_q - log_p, accept_u

        engine = (first_success_residual_batched if residual == "batched"
                  else first_success_residual_loop)
        try:
            values, used = engine(rejected.size, (d,), propose, max_trials=max_trials)
        except ResidualBudgetExceeded as exc:
            raise ResidualBudgetExceeded(rejected[exc.unfinished_rows], exc.max_trials) from None
        samples[rejected] = values
        trials[rejected] = used
    return SpeculativeResult(samples=samples, accepted=accepted, trials=trials)


def joint_speculative_sample(draft_chain: GaussianChain, target_chain: GaussianChain, n: int,
                             *, rng: np.random.Generator, residual: str = "batched",
                             max_trials: int = DEFAULT_MAX_TRIALS) -> SpeculativeResult:
    """Draw ``n`` target tokens with the joint-trajectory criterion; noise from ``rng`` in the
    order ``x_T``, draft ``eps`` ``(T, n, d)``, acceptance uniforms, residual trajectories."""
    require_compatible_chains(draft_chain, target_chain)
    n = require_int(n, "n")
    rng = require_generator(rng)
    d, T = draft_chain.dim, draft_chain.num_steps
    x_T = rng.standard_normal((n, d))
    eps = rng.standard_normal((T, n, d))
    u = rng.random(n)
    return joint_speculative_sample_from_noise(
        draft_chain, target_chain, x_T, eps, u, ResidualNoiseGenerator((T + 1) * d, rng=rng),
        residual=residual, max_trials=max_trials)
