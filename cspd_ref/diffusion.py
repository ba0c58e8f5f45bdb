"""Diffusion-head tokens and their exact speculative sampling (docs/algorithms.md §4), float64.

A ``GaussianChain`` draws a token by ``x_T ~ N(0, I)`` and, for ``t = T, ..., 1``,

    x_{t-1} = m(x_t, t) + tau * s(x_t, t) * eps_t,     eps_t ~ N(0, I),

with the last step noisy too (``s(x_1, 1) > 0``). Noise arrays are ordered by step:
``eps[i]`` is ``eps_{T - i}``, so ``eps[:T-1]`` are ``eps_T .. eps_2`` and ``eps[T-1]`` is
``eps_1``.

Two exact speculative samplers:

* ``aligned_speculative_sample`` — denoising trajectory alignment: draft and target share
  ``x_T`` and ``eps_T .. eps_2``; speculative sampling (docs/algorithms.md §3) is applied to
  the two last-step Gaussians ``N(m_q(x_1^q, 1), (tau s_q)^2)`` and
  ``N(m_p(x_1^p, 1), (tau s_p)^2)``. Given the shared noise the output follows the target's
  last step, so its marginal is the target's (proofs/test_aligned_trajectories).
* ``joint_speculative_sample`` — accept on the whole-trajectory log-ratio
  ``sum_t log p_t(x_{t-1} | x_t) - log q_t(x_{t-1} | x_t)`` (the ``x_T`` prior is shared and
  cancels); the residual proposes whole target trajectories. Exact; its acceptance rate differs
  from the aligned one's and is not always lower.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.distributions import HALF_LOG_TWO_PI, DiagGaussian
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
    require_positive,
    require_shape,
)

StepFn = Callable[[FloatArray, int], ArrayLike]
"""``f(x_t, t)`` with ``x_t`` of shape ``(N, d)``; returns ``(N, d)`` or anything broadcasting."""


class GaussianChain:
    """A diffusion-head token sampler with Gaussian transitions (docs/algorithms.md §4.1).

    Args:
        mean_fn: ``m(x_t, t) -> (N, d)`` (an MLP in MAR, with CFG folded in).
        scale_fn: ``s(x_t, t) -> (N, d)`` or broadcastable, strictly positive.
        num_steps: T >= 1.
        dim: token dimension d.
        temperature: tau > 0, multiplies the step scale.
    """

    def __init__(self, mean_fn: StepFn, scale_fn: StepFn, num_steps: int, dim: int,
                 temperature: float = 1.0) -> None:
        if not callable(mean_fn):
            raise ValueError("mean_fn: must be callable")
        if not callable(scale_fn):
            raise ValueError("scale_fn: must be callable")
        self.mean_fn = mean_fn
        self.scale_fn = scale_fn
        self.num_steps = require_int(num_steps, "num_steps", minimum=1)
        self.dim = require_int(dim, "dim", minimum=1)
        tau = as_float64(temperature, "temperature", ndim=0)
        self.temperature = float(require_positive(tau, "temperature"))

    def transition(self, x_t: ArrayLike, t: int) -> DiagGaussian:
        """The law of ``x_{t-1}`` given ``x_t``: ``N(m(x_t, t), (tau s(x_t, t))^2)``, batch (N,)."""
        x = np.asarray(x_t, dtype=np.float64)
        mean = np.broadcast_to(np.asarray(self.mean_fn(x, t), dtype=np.float64), x.shape)
        scale = self.temperature * np.broadcast_to(
            np.asarray(self.scale_fn(x, t), dtype=np.float64), x.shape)
        if not np.all(np.isfinite(mean)):
            raise ValueError(f"mean_fn: returned NaN or inf at step t={t}")
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError(f"scale_fn: returned a non-positive or non-finite scale at step t={t}")
        return DiagGaussian(mean, scale, validate_args=False)

    def step(self, x_t: ArrayLike, t: int, eps: ArrayLike) -> FloatArray:
        """``x_{t-1} = m(x_t, t) + tau s(x_t, t) eps``."""
        law = self.transition(x_t, t)
        return law.mean + law.scale * np.asarray(eps, dtype=np.float64)

    def trajectory_from_noise(self, x_T: ArrayLike, eps: ArrayLike) -> FloatArray:
        """All states ``x_T, x_{T-1}, ..., x_{T - len(eps)}``: shape ``(len(eps) + 1, N, d)``.

        ``eps[i]`` is ``eps_{T-i}``; pass all T of them to reach ``x_0``.
        """
        x = as_float64(x_T, "x_T", ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x_T: expected (N, {self.dim}), got {x.shape}")
        e = as_float64(eps, "eps", ndim=3)
        if e.shape[0] > self.num_steps or e.shape[1:] != x.shape:
            raise ValueError(f"eps: expected (<= {self.num_steps}, {x.shape[0]}, {self.dim}), "
                             f"got {e.shape}")
        states = [x]
        for i in range(e.shape[0]):
            states.append(self.step(states[-1], self.num_steps - i, e[i]))
        return np.stack(states)

    def sample_from_noise(self, x_T: ArrayLike, eps: ArrayLike) -> FloatArray:
        """The token ``x_0`` from ``x_T`` ``(N, d)`` and all T noises ``eps`` ``(T, N, d)``."""
        e = np.asarray(eps)
        if e.ndim != 3 or e.shape[0] != self.num_steps:
            raise ValueError(f"eps: expected ({self.num_steps}, N, {self.dim}), got {e.shape}")
        return self.trajectory_from_noise(x_T, eps)[-1]

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        """``n`` tokens ``(n, d)``; draws ``x_T`` then ``eps`` ``(T, n, d)`` from ``rng``."""
        n = require_int(n, "n")
        rng = require_generator(rng)
        x_T = rng.standard_normal((n, self.dim))
        eps = rng.standard_normal((self.num_steps, n, self.dim))
        return self.sample_from_noise(x_T, eps)

    def trajectory_log_prob(self, states: ArrayLike) -> FloatArray:
        """``sum_{t=1}^{T} log N(x_{t-1}; m(x_t, t), (tau s)^2)`` over a full trajectory
        ``states`` ``(T + 1, N, d)`` (``x_T`` first). The ``N(0, I)`` prior of ``x_T`` is left
        out."""
        s = np.asarray(states, dtype=np.float64)
        total = np.zeros(s.shape[1])
        for i in range(self.num_steps):
            total += transition_log_prob(self, s[i], self.num_steps - i, s[i + 1])
        return total


def transition_log_prob(chain: GaussianChain, x_t: ArrayLike, t: int,
                        x_prev: ArrayLike) -> FloatArray:
    """``log N(x_{t-1}; m(x_t, t), diag((tau s(x_t, t))^2))`` summed over coordinates.

    With equal scales the log-ratio of two such transitions is a difference of squared
    distances over ``2 (tau s)^2`` (proofs/test_log_ratio).
    """
    law = chain.transition(x_t, t)
    z = (np.asarray(x_prev, dtype=np.float64) - law.mean) / law.scale
    return np.sum(-0.5 * z * z - np.log(law.scale) - HALF_LOG_TWO_PI, axis=-1)


def trajectory_log_ratio(draft_chain: GaussianChain, target_chain: GaussianChain,
                         states: ArrayLike) -> FloatArray:
    """``log p(traj) - log q(traj) = sum_t [log p_t(x_{t-1}|x_t) - log q_t(x_{t-1}|x_t)]``.

    Both chains start from ``N(0, I)``, so the prior of ``x_T`` cancels.
    """
    return target_chain.trajectory_log_prob(states) - draft_chain.trajectory_log_prob(states)


class LinearGaussianChain(GaussianChain):
    """The exactly-testable chain: ``m(x, t) = a_t x + b_t``, ``s(x, t) = s_t``
    (docs/algorithms.md §4.1).

    Args:
        coefficients: ``a`` of shape ``(T,)`` or ``(T, d)``; ``a[t-1]`` is used at step t.
        offsets: ``b`` of shape ``(T, d)``.
        step_scales: ``s`` of shape ``(T,)`` or ``(T, d)``, positive.
        temperature: tau > 0.
    """

    def __init__(self, coefficients: ArrayLike, offsets: ArrayLike, step_scales: ArrayLike,
                 temperature: float = 1.0) -> None:
        b = as_float64(offsets, "offsets", ndim=2)
        num_steps, dim = b.shape
        a = as_float64(coefficients, "coefficients")
        s = require_positive(as_float64(step_scales, "step_scales"), "step_scales")
        for name, arr in (("coefficients", a), ("step_scales", s)):
            if arr.shape not in ((num_steps,), (num_steps, dim)):
                raise ValueError(f"{name}: expected shape ({num_steps},) or ({num_steps}, {dim}), "
                                 f"got {arr.shape}")
        self.coefficients = np.broadcast_to(a.reshape(num_steps, -1), (num_steps, dim)).copy()
        self.offsets = b
        self.step_scales = np.broadcast_to(s.reshape(num_steps, -1), (num_steps, dim)).copy()
        super().__init__(self.linear_mean, self.constant_scale, num_steps, dim, temperature)

    def linear_mean(self, x: FloatArray, t: int) -> FloatArray:
        """``a_t x + b_t``."""
        return self.coefficients[t - 1] * x + self.offsets[t - 1]

    def constant_scale(self, x: FloatArray, t: int) -> FloatArray:
        """``s_t`` (independent of ``x``)."""
        return np.broadcast_to(self.step_scales[t - 1], np.shape(x))

    def marginal(self) -> DiagGaussian:
        """Closed-form law of ``x_0``: with ``x_T ~ N(0, I)``,
        ``mean_{t-1} = a_t mean_t + b_t`` and ``var_{t-1} = a_t^2 var_t + (tau s_t)^2``."""
        mean = np.zeros(self.dim)
        var = np.ones(self.dim)
        for t in range(self.num_steps, 0, -1):
            a = self.coefficients[t - 1]
            mean = a * mean + self.offsets[t - 1]
            var = a * a * var + (self.temperature * self.step_scales[t - 1]) ** 2
        return DiagGaussian(mean, np.sqrt(var))


def require_compatible_chains(draft_chain: GaussianChain, target_chain: GaussianChain) -> None:
    """Raise unless both are ``GaussianChain``\\ s with the same T and d."""
    for name, chain in (("draft_chain", draft_chain), ("target_chain", target_chain)):
        if not isinstance(chain, GaussianChain):
            raise ValueError(f"{name}: expected a GaussianChain, got {type(chain).__name__}")
    if draft_chain.num_steps != target_chain.num_steps:
        raise ValueError(f"target_chain: num_steps {target_chain.num_steps} differs from the "
                         f"draft's {draft_chain.num_steps}")
    if draft_chain.dim != target_chain.dim:
        raise ValueError(f"target_chain: dim {target_chain.dim} differs from the draft's "
                         f"{draft_chain.dim}")


# --------------------------------------------------------------------- aligned trajectories
def aligned_last_steps(draft_chain: GaussianChain, target_chain: GaussianChain,
                       x_T: ArrayLike, shared_eps: ArrayLike) -> tuple[DiagGaussian, DiagGaussian]:
    """Run both chains on the same ``x_T`` and ``eps_T .. eps_2`` and return their last-step
    Gaussians ``(q_last, p_last)``, each with batch ``(N,)``."""
    T = draft_chain.num_steps
    if np.ndim(shared_eps) != 3 or np.shape(shared_eps)[0] != T - 1:
        raise ValueError(f"shared_eps: expected shape ({T - 1}, N, d) (eps_T .. eps_2), "
                         f"got {np.shape(shared_eps)}")
    x1_q = draft_chain.trajectory_from_noise(x_T, shared_eps)[-1]
    x1_p = target_chain.trajectory_from_noise(x_T, shared_eps)[-1]
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
    require_compatible_chains(draft_chain, target_chain)
    q_last, p_last = aligned_last_steps(draft_chain, target_chain, x_T, shared_eps)
    n = q_last.batch_shape[0]
    return speculative_sample_from_noise(q_last, p_last, np.zeros(n), draft_last_normals,
                                         accept_uniforms, residual_noise, residual=residual,
                                         max_trials=max_trials)


def aligned_speculative_sample(draft_chain: GaussianChain, target_chain: GaussianChain, n: int,
                               rng: np.random.Generator, *, residual: str = "auto",
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
        draft_chain, target_chain, x_T, shared, eps_1, u, ResidualNoiseGenerator(rng, d),
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
    states = draft_chain.trajectory_from_noise(x_T, draft_eps)
    if states.shape[0] != T + 1:
        raise ValueError(f"draft_eps: expected {T} steps, got {states.shape[0] - 1}")
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
                    k: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
            _, normals, accept_u = stream.take(rows, start, k)
            m, k_drawn = accept_u.shape
            if normals.shape[-1] != (T + 1) * d:
                raise ValueError(f"residual_noise: items must hold (T + 1) * d = {(T + 1) * d} "
                                 f"normals, got {normals.shape[-1]}")
            flat = normals.reshape(m * k_drawn, T + 1, d)
            traj = target_chain.trajectory_from_noise(flat[:, 0], flat[:, 1:].transpose(1, 0, 2))
            log_p = target_chain.trajectory_log_prob(traj).reshape(m, k_drawn)
            log_q = draft_chain.trajectory_log_prob(traj).reshape(m, k_drawn)
            return traj[-1].reshape(m, k_drawn, d), log_q, log_p, accept_u

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
                             rng: np.random.Generator, *, residual: str = "batched",
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
        draft_chain, target_chain, x_T, eps, u, ResidualNoiseGenerator(rng, (T + 1) * d),
        residual=residual, max_trials=max_trials)
