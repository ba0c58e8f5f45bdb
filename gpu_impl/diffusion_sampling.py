"""Exact speculative sampling of diffusion-head tokens over tensors, batched over tokens
(docs/algorithms.md §4.2, §4.3, §7).

The PyTorch twin of ``cspd_ref.diffusion_sampling``. Draft and target are two
``GaussianChain``\\ s (``gpu_impl.diffusion``) with the same T and d. Two exact samplers:

* aligned trajectories (``aligned_speculative_sample``): draft and target share ``x_T`` and
  ``eps_T .. eps_2``; speculative sampling (docs/algorithms.md §3) is applied to the two
  last-step Gaussians ``N(m_q(x_1^q, 1), (tau s_q)^2)`` and ``N(m_p(x_1^p, 1), (tau s_p)^2)``
  (reflection when the scales are equal, batched residual otherwise).
* joint criterion (``joint_speculative_sample``): accept on
  ``sum_t log p_t(x_{t-1}|x_t) - log q_t(x_{t-1}|x_t)`` along the draft trajectory; the residual
  proposes whole target trajectories.

**No host synchronisation in the denoising loop** (docs/algorithms.md §7): ``aligned_denoise``,
``joint_draft_pass`` and ``joint_target_pass`` (the T steps) use only fixed-shape tensor
arithmetic — no ``.item()``, ``.cpu()``, boolean-mask indexing, ``nonzero`` or Python branching
on tensor values — so they can be captured in a CUDA graph or compiled with
``torch.compile(fullgraph=True)``. The checks of the callables' outputs are folded into a 0-d
``health`` tensor (``gpu_impl.diffusion_health``) read once after the loop. Only the residual
stage after the loop has data-dependent shapes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from gpu_impl.diffusion import GaussianChain, gaussian_log_ratio, require_compatible_chains
from gpu_impl.diffusion_health import (
    check_health,
    replay_checked,
    transition_health,
    zero_health,
)
from gpu_impl.distributions import DiagGaussian
from gpu_impl.speculative import (
    DEFAULT_MAX_TRIALS,
    ResidualNoise,
    ResidualNoiseGenerator,
    RowSubsetNoise,
    SpeculativeResult,
    accept_from_uniforms,
    first_success_residual_batched,
    first_success_residual_loop,
    global_rows,
    require_noise_stream,
    speculative_sample_from_noise,
)
from gpu_impl.validation import (
    as_tensor,
    compute_dtype,
    require_generator,
    require_half_open_unit_interval,
    require_int,
    require_shape,
)

__all__ = [
    "LastSteps",
    "aligned_denoise",
    "aligned_last_steps",
    "aligned_speculative_sample",
    "aligned_speculative_sample_from_noise",
    "joint_draft_pass",
    "joint_speculative_sample",
    "joint_speculative_sample_from_noise",
    "joint_target_pass",
]


# --------------------------------------------------------------------- aligned trajectories
class LastSteps(NamedTuple):
    """Output of ``aligned_denoise``: the two last-step Gaussians' parameters, ``(N, d)`` each,
    and ``health`` (0-d: 0, or NaN if a callable returned a non-finite mean or a non-positive /
    non-finite scale at some step)."""

    draft_mean: Tensor
    draft_scale: Tensor
    target_mean: Tensor
    target_scale: Tensor
    health: Tensor


_CHAIN_OWNERS = ("draft_chain.", "target_chain.")


def aligned_denoise(draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Tensor,
                    shared_eps: Tensor) -> LastSteps:
    """The denoising loop of aligned trajectories: both chains from the same ``x_T`` with the
    same ``eps_T .. eps_2`` (``shared_eps`` ``(T - 1, N, d)``) down to ``x_1^q``, ``x_1^p``, then
    the last-step parameters ``m(x_1, 1)``, ``tau s(x_1, 1)`` of each (T network evaluations per
    chain).

    Pure tensor code with static shapes and no host synchronisation (docs/algorithms.md §7):
    capturable in a CUDA graph, compilable with ``torch.compile(fullgraph=True)``. No argument
    checks (see ``aligned_speculative_sample_from_noise``).
    """
    T = draft_chain.num_steps
    x_q = x_T
    x_p = x_T
    health = zero_health(x_T)
    for i in range(T - 1):
        t = T - i
        mq, sq = draft_chain.transition_params(x_q, t)
        mp, sp = target_chain.transition_params(x_p, t)
        health = health + transition_health(mq, sq) + transition_health(mp, sp)
        x_q = mq + sq * shared_eps[i]
        x_p = mp + sp * shared_eps[i]
    mq, sq = draft_chain.transition_params(x_q, 1)
    mp, sp = target_chain.transition_params(x_p, 1)
    health = health + transition_health(mq, sq) + transition_health(mp, sp)
    return LastSteps(mq, sq, mp, sp, health)


def aligned_last_steps(draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Any,
                       shared_eps: Any) -> tuple[DiagGaussian, DiagGaussian]:
    """Validated ``aligned_denoise``: run both chains on the same ``x_T`` and ``eps_T .. eps_2``
    (``shared_eps`` ``(T - 1, N, d)``) and return their last-step Gaussians
    ``(q_last, p_last) = (N(m_q(x_1^q, 1), (tau s_q)^2), N(m_p(x_1^p, 1), (tau s_p)^2))``, batch
    ``(N,)`` (docs/algorithms.md §4.2; as ``cspd_ref.diffusion_sampling.aligned_last_steps``)."""
    require_compatible_chains(draft_chain, target_chain)
    x = draft_chain.check_start(x_T)
    e = draft_chain.check_noise(shared_eps, x, "shared_eps", draft_chain.num_steps - 1)
    last = aligned_denoise(draft_chain, target_chain, x, e)
    check_health(last.health, lambda: replay_checked(
        list(zip((draft_chain, target_chain), _CHAIN_OWNERS, strict=True)), [x, x], e,
        draft_chain.num_steps))
    return (DiagGaussian(last.draft_mean, last.draft_scale, validate_args=False),
            DiagGaussian(last.target_mean, last.target_scale, validate_args=False))


def aligned_speculative_sample_from_noise(
    draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Any, shared_eps: Any,
    draft_last_normals: Any, accept_uniforms: Any, residual_noise: ResidualNoise | None, *,
    residual: str = "auto", max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Aligned-trajectory speculative sampling as a pure function of its noise
    (docs/algorithms.md §4.2, noise layout in docs/noise.md §2).

    Args:
        x_T: ``(N, d)`` shared start.
        shared_eps: ``(T - 1, N, d)``: ``eps_T .. eps_2``, shared by both chains.
        draft_last_normals: ``(N, d)``: the draft's own ``eps_1``.
        accept_uniforms: ``(N,)`` in [0, 1).
        residual_noise: proposals for the last-step residual (unused by reflection).
        residual: as in ``speculative_sample``; ``"auto"`` uses reflection when the two
            last-step scales are exactly equal.
    """
    q_last, p_last = aligned_last_steps(draft_chain, target_chain, x_T, shared_eps)
    n = int(q_last.batch_shape[0])
    zeros = torch.zeros(n, dtype=q_last.dtype, device=q_last.device)
    return speculative_sample_from_noise(q_last, p_last, zeros, draft_last_normals,
                                         accept_uniforms, residual_noise, residual=residual,
                                         max_trials=max_trials)


def aligned_speculative_sample(draft_chain: GaussianChain, target_chain: GaussianChain, n: int,
                               *, generator: torch.Generator,
                               residual: str = "auto", max_trials: int = DEFAULT_MAX_TRIALS,
                               ) -> SpeculativeResult:
    """Draw ``n`` target tokens by aligned trajectories; noise from ``generator`` (on the
    target chain's device, in its dtype) in the order ``x_T``, shared ``eps_T .. eps_2``, draft
    ``eps_1``, acceptance uniforms, residual."""
    require_compatible_chains(draft_chain, target_chain)
    n = require_int(n, "n")
    device, dtype = target_chain.device, target_chain.dtype
    generator = require_generator(generator, device)
    d, T = target_chain.dim, target_chain.num_steps
    kw: dict[str, Any] = {"generator": generator, "device": device, "dtype": dtype}
    x_T = torch.randn((n, d), **kw)
    shared = torch.randn((T - 1, n, d), **kw)
    eps_1 = torch.randn((n, d), **kw)
    u = torch.rand(n, generator=generator, device=device, dtype=compute_dtype(dtype))
    return aligned_speculative_sample_from_noise(
        draft_chain, target_chain, x_T, shared, eps_1, u,
        ResidualNoiseGenerator(d, generator=generator, device=device, dtype=dtype),
        residual=residual, max_trials=max_trials)


# --------------------------------------------------------------------- joint criterion
def joint_draft_pass(draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Tensor,
                     draft_eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The draft trajectory from ``x_T`` with ``draft_eps`` ``(T, N, d)`` and its log-ratio
    ``sum_t log p_t(x_{t-1}|x_t) - log q_t(x_{t-1}|x_t)``, accumulated step by step.

    Returns ``(x_0 (N, d), log_ratio (N,), health (0-d, see LastSteps))``. No host
    synchronisation.
    """
    return _follow_and_score(draft_chain, target_chain, x_T, draft_eps, follow_target=False)


def joint_target_pass(draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Tensor,
                      eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The target trajectory from ``x_T`` with ``eps`` ``(T, N, d)`` and its log-ratio
    ``sum_t log p_t(x_{t-1}|x_t) - log q_t(x_{t-1}|x_t)``: the residual proposals of the joint
    criterion, accepted with probability ``(1 - q(traj)/p(traj))^+``.

    Returns ``(x_0 (N, d), log_ratio (N,), health (0-d, see LastSteps))``. No host
    synchronisation.
    """
    return _follow_and_score(draft_chain, target_chain, x_T, eps, follow_target=True)


def _follow_and_score(draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Tensor,
                      eps: Tensor, *, follow_target: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Run one chain's trajectory (the target's when ``follow_target``) and accumulate
    ``log p(traj) - log q(traj)``; sync-free."""
    T = draft_chain.num_steps
    x = x_T
    log_ratio = torch.zeros(x.shape[0], dtype=compute_dtype(x.dtype), device=x.device)
    health = zero_health(x)
    for i in range(T):
        t = T - i
        mq, sq = draft_chain.transition_params(x, t)
        mp, sp = target_chain.transition_params(x, t)
        health = health + transition_health(mq, sq) + transition_health(mp, sp)
        x = (mp + sp * eps[i]) if follow_target else (mq + sq * eps[i])
        log_ratio = log_ratio + gaussian_log_ratio(x, mq, sq, mp, sp)
    return x, log_ratio, health


def _check_joint_health(health: Tensor, draft_chain: GaussianChain, target_chain: GaussianChain,
                        x_T: Tensor, eps: Tensor, follow_target: bool) -> None:
    check_health(health, lambda: replay_checked(
        list(zip((draft_chain, target_chain), _CHAIN_OWNERS, strict=True)), [x_T, x_T], eps,
        draft_chain.num_steps, follow=1 if follow_target else 0))


def joint_speculative_sample_from_noise(
    draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Any, draft_eps: Any,
    accept_uniforms: Any, residual_noise: ResidualNoise, *, residual: str = "batched",
    max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Whole-trajectory speculative sampling as a pure function of its noise
    (docs/algorithms.md §4.3, noise layout in docs/noise.md §2).

    The draft runs its own trajectory from ``x_T`` with ``draft_eps`` ``(T, N, d)``; it is
    accepted iff ``log u < trajectory_log_ratio``. A rejected row proposes whole target
    trajectories (``residual_noise`` items of ``(T + 1) d`` normals: ``x_T`` then
    ``eps_T .. eps_1``; the items' component uniforms are unused) accepted with probability
    ``(1 - q(traj)/p(traj))^+``.

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
    e = draft_chain.check_noise(draft_eps, x, "draft_eps", T)
    n = int(x.shape[0])
    u = require_half_open_unit_interval(
        require_shape(as_tensor(accept_uniforms, "accept_uniforms", ndim=1, device=x.device),
                      (n,), "accept_uniforms"), "accept_uniforms")
    require_noise_stream(residual_noise)
    x_0, log_ratio, health = joint_draft_pass(draft_chain, target_chain, x, e)
    _check_joint_health(health, draft_chain, target_chain, x, e, follow_target=False)
    accepted = accept_from_uniforms(log_ratio, u)
    samples = x_0.clone()
    trials = torch.zeros(n, dtype=torch.int64, device=x.device)
    rejected = torch.nonzero(~accepted).squeeze(1)
    if rejected.numel():
        stream = RowSubsetNoise(residual_noise, rejected)

        def propose(rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
            _, normals, accept_u = stream.take(rows, start, k)
            m, k_drawn = int(accept_u.shape[0]), int(accept_u.shape[1])
            if normals.shape[-1] != (T + 1) * d:
                raise ValueError(f"residual_noise: items must hold (T + 1) * d = {(T + 1) * d} "
                                 f"normals, got {normals.shape[-1]}")
            flat = normals.to(device=x.device, dtype=x.dtype).reshape(m * k_drawn, T + 1, d)
            starts, steps = flat[:, 0], flat[:, 1:].transpose(0, 1)
            y, lr, health = joint_target_pass(draft_chain, target_chain, starts, steps)
            _check_joint_health(health, draft_chain, target_chain, starts, steps,
                                follow_target=True)
            return (y.reshape(m, k_drawn, d), (-lr).reshape(m, k_drawn),
                    accept_u.to(x.device))

        engine = (first_success_residual_batched if residual == "batched"
                  else first_success_residual_loop)
        kwargs: dict[str, Any] = {"device": x.device, "dtype": x.dtype, "max_trials": max_trials}
        if residual == "batched":
            kwargs["noise_per_proposal"] = (T + 1) * d
        with global_rows(rejected):
            values, used = engine(int(rejected.numel()), (d,), propose, **kwargs)
        samples[rejected] = values
        trials[rejected] = used
    return SpeculativeResult(samples=samples, accepted=accepted, trials=trials)


def joint_speculative_sample(draft_chain: GaussianChain, target_chain: GaussianChain, n: int,
                             *, generator: torch.Generator,
                             residual: str = "batched", max_trials: int = DEFAULT_MAX_TRIALS,
                             ) -> SpeculativeResult:
    """Draw ``n`` target tokens with the joint-trajectory criterion; noise from ``generator``
    in the order ``x_T``, draft ``eps`` ``(T, n, d)``, acceptance uniforms, residual
    trajectories."""
    require_compatible_chains(draft_chain, target_chain)
    n = require_int(n, "n")
    device, dtype = target_chain.device, target_chain.dtype
    generator = require_generator(generator, device)
    d, T = target_chain.dim, target_chain.num_steps
    kw: dict[str, Any] = {"generator": generator, "device": device, "dtype": dtype}
    x_T = torch.randn((n, d), **kw)
    eps = torch.randn((T, n, d), **kw)
    u = torch.rand(n, generator=generator, device=device, dtype=compute_dtype(dtype))
    return joint_speculative_sample_from_noise(
        draft_chain, target_chain, x_T, eps, u,
        ResidualNoiseGenerator((T + 1) * d, generator=generator, device=device, dtype=dtype),
        residual=residual, max_trials=max_trials)
