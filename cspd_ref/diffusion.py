"""Diffusion-head tokens: Gaussian denoising chains in float64 (docs/algorithms.md §4.1).

A ``GaussianChain`` draws a token by ``x_T ~ N(0, I)`` and, for ``t = T, ..., 1``,

    x_{t-1} = m(x_t, t) + tau * s(x_t, t) * eps_t,     eps_t ~ N(0, I),

with the last step noisy too (``s(x_1, 1) > 0``). Noise arrays are ordered by step:
``eps[i]`` is ``eps_{T - i}``, so ``eps[:T-1]`` are ``eps_T .. eps_2`` and ``eps[T-1]`` is
``eps_1``. A transition's log-density is ``sum_j log N(x_{t-1,j}; m_j, (tau s_j)^2)``
(``transition_log_prob``) and two chains' trajectory log-ratio is the sum of the transitions'
(``trajectory_log_ratio``; the shared ``N(0, I)`` prior of ``x_T`` cancels).
``LinearGaussianChain`` is the chain with affine means and constant scales, whose token law is
a closed-form Gaussian (``marginal``).

The exact speculative samplers over two chains are in ``cspd_ref.diffusion_sampling``;
``gpu_impl.diffusion`` is this module's twin on tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.distributions import HALF_LOG_TWO_PI, DiagGaussian
from cspd_ref.validation import (
    FloatArray,
    as_float64,
    require_finite_float,
    require_generator,
    require_int,
    require_positive,
)

__all__ = [
    "GaussianChain",
    "LinearGaussianChain",
    "StepFn",
    "require_compatible_chains",
    "trajectory_log_ratio",
    "transition_log_prob",
]

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
        tau = require_finite_float(temperature, "temperature")
        if not tau > 0:
            raise ValueError(f"temperature: must be strictly positive, got {tau!r}")
        self.temperature = tau

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

    # ------------------------------------------------------------ trajectories
    def check_start(self, x_T: ArrayLike, name: str = "x_T") -> FloatArray:
        """``x_T`` as a finite float64 ``(N, d)`` array, raising ``ValueError`` naming
        ``name`` otherwise."""
        x = as_float64(x_T, name, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"{name}: expected (N, {self.dim}), got {x.shape}")
        return x

    def check_noise(self, eps: ArrayLike, x: FloatArray, name: str = "eps",
                    steps: int | None = None) -> FloatArray:
        """Step noise for a trajectory from ``x`` ``(N, d)``: a finite float64
        ``(steps, N, d)`` array (``steps=None``: any number up to T), raising ``ValueError``
        naming ``name`` otherwise."""
        e = as_float64(eps, name, ndim=3)
        limit = self.num_steps if steps is None else steps
        ok_steps = e.shape[0] <= limit if steps is None else e.shape[0] == steps
        if not ok_steps or e.shape[1:] != x.shape:
            want = f"<= {limit}" if steps is None else f"{steps}"
            raise ValueError(f"{name}: expected ({want}, {x.shape[0]}, {self.dim}), got "
                             f"{e.shape}")
        return e

    def trajectory_from_noise(self, x_T: ArrayLike, eps: ArrayLike) -> FloatArray:
        """All states ``x_T, x_{T-1}, ..., x_{T - len(eps)}``: shape ``(len(eps) + 1, N, d)``,
        ``x_{t-1} = m(x_t, t) + tau s(x_t, t) eps_t`` step by step.

        ``eps[i]`` is ``eps_{T-i}``; pass all T of them to reach ``x_0``.
        """
        x = self.check_start(x_T)
        e = self.check_noise(eps, x)
        states = [x]
        for i in range(e.shape[0]):
            states.append(self.step(states[-1], self.num_steps - i, e[i]))
        return np.stack(states)

    def sample_from_noise(self, x_T: ArrayLike, eps: ArrayLike) -> FloatArray:
        """The token ``x_0`` from ``x_T`` ``(N, d)`` and all T noises ``eps`` ``(T, N, d)``: the
        last state of ``trajectory_from_noise``."""
        x = self.check_start(x_T)
        return self.trajectory_from_noise(x, self.check_noise(eps, x, steps=self.num_steps))[-1]

    def sample(self, n: int, *, rng: np.random.Generator) -> FloatArray:
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
    """``log N(x_{t-1}; m(x_t, t), diag((tau s(x_t, t))^2))``
    ``= sum_j [-z_j^2 / 2 - log(tau s_j) - log(2 pi) / 2]``, ``z = (x_{t-1} - m) / (tau s)``
    (docs/algorithms.md §4.3).

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
    """Raise ``ValueError`` unless both are ``GaussianChain``\\ s with the same T and d (the
    samplers pair their steps one to one)."""
    for name, chain in (("draft_chain", draft_chain), ("target_chain", target_chain)):
        if not isinstance(chain, GaussianChain):
            raise ValueError(f"{name}: expected a GaussianChain, got {type(chain).__name__}")
    if draft_chain.num_steps != target_chain.num_steps:
        raise ValueError(f"target_chain: num_steps {target_chain.num_steps} differs from the "
                         f"draft's {draft_chain.num_steps}")
    if draft_chain.dim != target_chain.dim:
        raise ValueError(f"target_chain: dim {target_chain.dim} differs from the draft's "
                         f"{draft_chain.dim}")
