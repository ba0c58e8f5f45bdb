"""Diffusion-head tokens over tensors: Gaussian denoising chains (docs/algorithms.md §4.1, §7).

The PyTorch twin of ``cspd_ref.diffusion``. A ``GaussianChain`` draws a token by
``x_T ~ N(0, I)`` and, for ``t = T, ..., 1``,

    x_{t-1} = m(x_t, t) + tau * s(x_t, t) * eps_t,     eps_t ~ N(0, I),

the last step noisy too. ``m`` and ``s`` are any callables ``(x (N, d), t: int) -> tensor``
broadcasting to ``(N, d)`` (an ``nn.Module`` in practice). Noise tensors are ordered by step:
``eps[i]`` is ``eps_{T-i}``, so ``eps[:T-1]`` are ``eps_T .. eps_2`` and ``eps[T-1]`` is
``eps_1`` (as ``cspd_ref``). A transition's log-density is
``sum_j log N(x_{t-1,j}; m_j, (tau s_j)^2)`` (``transition_log_prob``), two chains'
trajectory log-ratio the sum of ``gaussian_log_ratio`` over the steps
(``trajectory_log_ratio``), all in ``compute_dtype``.

The loops here (``trajectory_from_noise``, ``sample_from_noise``) run without host
synchronisation: the callables' outputs are checked through ``gpu_impl.diffusion_health``,
read once after the loop. The exact speculative samplers over two chains are in
``gpu_impl.diffusion_sampling``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gpu_impl.diffusion_health import (
    check_health,
    replay_checked,
    transition_health,
    zero_health,
)
from gpu_impl.distributions import HALF_LOG_TWO_PI, DiagGaussian
from gpu_impl.validation import (
    as_tensor,
    compute_dtype,
    require_device,
    require_finite_float,
    require_floating_dtype,
    require_generator,
    require_int,
    require_positive,
)

__all__ = [
    "GaussianChain",
    "LinearGaussianChain",
    "StepFn",
    "gaussian_log_ratio",
    "require_compatible_chains",
    "trajectory_log_ratio",
    "transition_log_prob",
]

StepFn = Callable[[Tensor, int], Tensor]
"""``f(x_t, t)`` with ``x_t`` of shape ``(N, d)``; returns ``(N, d)`` or anything broadcasting."""


class GaussianChain:
    """A diffusion-head token sampler with Gaussian transitions (docs/algorithms.md §4.1).

    Args:
        mean_fn: ``m(x_t, t) -> (N, d)`` (an MLP in MAR, with CFG folded in).
        scale_fn: ``s(x_t, t) -> (N, d)`` or broadcastable, strictly positive.
        num_steps: T >= 1.
        dim: token dimension d.
        temperature: tau > 0, multiplies the step scale.
        device, dtype: where ``sample`` draws its noise. Default: those of the first parameter
            of ``mean_fn`` when it is an ``nn.Module`` with parameters, else CPU and the default
            dtype.
    """

    def __init__(self, mean_fn: StepFn, scale_fn: StepFn, num_steps: int, dim: int,
                 temperature: float = 1.0, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
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
        first = None
        if isinstance(mean_fn, torch.nn.Module):
            first = next(iter(mean_fn.parameters()), None)
        self.device = require_device(device) if device is not None else (
            first.device if first is not None else torch.device("cpu"))
        self.dtype = require_floating_dtype(dtype) if dtype is not None else (
            first.dtype if first is not None else torch.get_default_dtype())

    # ------------------------------------------------------------ transitions (sync-free)
    def transition_params(self, x_t: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """``(m(x_t, t), tau s(x_t, t))`` broadcast to ``x_t.shape``; no checks, no sync."""
        mean = torch.as_tensor(self.mean_fn(x_t, t)).expand(x_t.shape)
        scale = self.temperature * torch.as_tensor(self.scale_fn(x_t, t)).expand(x_t.shape)
        return mean, scale

    def transition(self, x_t: Tensor, t: int, *, owner: str = "") -> DiagGaussian:
        """The law of ``x_{t-1}`` given ``x_t``: ``N(m(x_t, t), (tau s(x_t, t))^2)``, batch
        ``(N,)``, with the callables' outputs checked (synchronises). ``owner`` prefixes the
        callable's name in error messages (e.g. ``"draft_chain."``)."""
        mean, scale = self.transition_params(x_t, t)
        if not bool(torch.isfinite(mean).all()):
            raise ValueError(f"{owner}mean_fn: returned NaN or inf at step t={t}")
        if not bool((torch.isfinite(scale) & (scale > 0)).all()):
            raise ValueError(f"{owner}scale_fn: returned a non-positive or non-finite scale at "
                             f"step t={t}")
        return DiagGaussian(mean, scale, validate_args=False)

    def step(self, x_t: Tensor, t: int, eps: Tensor) -> Tensor:
        """``x_{t-1} = m(x_t, t) + tau s(x_t, t) eps`` (no sync)."""
        mean, scale = self.transition_params(x_t, t)
        return mean + scale * eps

    # ------------------------------------------------------------ trajectories
    def check_start(self, x_T: Any, name: str = "x_T") -> Tensor:
        """``x_T`` as a finite floating ``(N, d)`` tensor, raising ``ValueError`` naming
        ``name`` otherwise."""
        x = as_tensor(x_T, name, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"{name}: expected (N, {self.dim}), got {tuple(x.shape)}")
        return x

    def check_noise(self, eps: Any, x: Tensor, name: str = "eps",
                    steps: int | None = None) -> Tensor:
        """Step noise for a trajectory from ``x`` ``(N, d)``: a finite ``(steps, N, d)`` tensor
        on ``x``'s device, cast to its dtype (``steps=None``: any number up to T), raising
        ``ValueError`` naming ``name`` otherwise."""
        e = as_tensor(eps, name, ndim=3, device=x.device, dtype=x.dtype)
        limit = self.num_steps if steps is None else steps
        ok_steps = e.shape[0] <= limit if steps is None else e.shape[0] == steps
        if not ok_steps or tuple(e.shape[1:]) != tuple(x.shape):
            want = f"<= {limit}" if steps is None else f"{steps}"
            raise ValueError(f"{name}: expected ({want}, {x.shape[0]}, {self.dim}), got "
                             f"{tuple(e.shape)}")
        return e

    def trajectory_from_noise(self, x_T: Any, eps: Any) -> Tensor:
        """All states ``x_T, x_{T-1}, ..., x_{T - len(eps)}``: shape ``(len(eps) + 1, N, d)``,
        ``x_{t-1} = m(x_t, t) + tau s(x_t, t) eps_t`` step by step.

        ``eps[i]`` is ``eps_{T-i}``; pass all T of them to reach ``x_0``. The callables'
        outputs are checked after the loop (``gpu_impl.diffusion_health``).
        """
        x = self.check_start(x_T)
        e = self.check_noise(eps, x)
        states = [x]
        health = zero_health(x)
        for i in range(e.shape[0]):
            t = self.num_steps - i
            mean, scale = self.transition_params(states[-1], t)
            health = health + transition_health(mean, scale)
            states.append(mean + scale * e[i])
        check_health(health, lambda: replay_checked([(self, "")], [x], e, e.shape[0]))
        return torch.stack(states)

    def sample_from_noise(self, x_T: Any, eps: Any) -> Tensor:
        """The token ``x_0`` ``(N, d)`` from ``x_T`` ``(N, d)`` and all T noises ``(T, N, d)``;
        keeps only the current state (no trajectory storage), no sync inside the loop."""
        x = self.check_start(x_T)
        e = self.check_noise(eps, x, steps=self.num_steps)
        x_T_checked = x
        health = zero_health(x)
        for i in range(self.num_steps):
            t = self.num_steps - i
            mean, scale = self.transition_params(x, t)
            health = health + transition_health(mean, scale)
            x = mean + scale * e[i]
        check_health(health,
                     lambda: replay_checked([(self, "")], [x_T_checked], e, self.num_steps))
        return x

    def sample(self, n: int, *, generator: torch.Generator) -> Tensor:
        """``n`` tokens ``(n, d)``; draws ``x_T`` then ``eps`` ``(T, n, d)`` from ``generator``."""
        n = require_int(n, "n")
        generator = require_generator(generator, self.device)
        kw: dict[str, Any] = {"generator": generator, "device": self.device, "dtype": self.dtype}
        x_T = torch.randn((n, self.dim), **kw)
        eps = torch.randn((self.num_steps, n, self.dim), **kw)
        return self.sample_from_noise(x_T, eps)

    def trajectory_log_prob(self, states: Tensor) -> Tensor:
        """``sum_{t=1}^{T} log N(x_{t-1}; m(x_t, t), (tau s)^2)`` over a full trajectory
        ``states`` ``(T + 1, N, d)`` (``x_T`` first); the ``N(0, I)`` prior of ``x_T`` is left
        out. In ``compute_dtype``."""
        s = states
        total = torch.zeros(s.shape[1], dtype=compute_dtype(s.dtype), device=s.device)
        for i in range(self.num_steps):
            total = total + transition_log_prob(self, s[i], self.num_steps - i, s[i + 1])
        return total


def transition_log_prob(chain: GaussianChain, x_t: Tensor, t: int, x_prev: Tensor) -> Tensor:
    """``log N(x_{t-1}; m(x_t, t), diag((tau s(x_t, t))^2))``
    ``= sum_j [-z_j^2 / 2 - log(tau s_j) - log(2 pi) / 2]``, ``z = (x_{t-1} - m) / (tau s)``,
    in ``compute_dtype`` (docs/algorithms.md §4.3); no checks, no sync."""
    mean, scale = chain.transition_params(x_t, t)
    ct = compute_dtype(x_prev.dtype)
    z = (x_prev.to(ct) - mean.to(ct)) / scale.to(ct)
    return (-0.5 * z * z - torch.log(scale.to(ct)) - HALF_LOG_TWO_PI).sum(dim=-1)


def trajectory_log_ratio(draft_chain: GaussianChain, target_chain: GaussianChain,
                         states: Tensor) -> Tensor:
    """``log p(traj) - log q(traj) = sum_t [log p_t(x_{t-1}|x_t) - log q_t(x_{t-1}|x_t)]``
    (the shared ``N(0, I)`` prior of ``x_T`` cancels). ``states``: ``(T + 1, N, d)``."""
    T = draft_chain.num_steps
    total = torch.zeros(states.shape[1], dtype=compute_dtype(states.dtype), device=states.device)
    for i in range(T):
        t = T - i
        mq, sq = draft_chain.transition_params(states[i], t)
        mp, sp = target_chain.transition_params(states[i], t)
        total = total + gaussian_log_ratio(states[i + 1], mq, sq, mp, sp)
    return total


class LinearGaussianChain(GaussianChain):
    """The exactly-testable chain: ``m(x, t) = a_t x + b_t``, ``s(x, t) = s_t``
    (docs/algorithms.md §4.1).

    Args:
        coefficients: ``a`` of shape ``(T,)`` or ``(T, d)``; ``a[t-1]`` is used at step t.
        offsets: ``b`` of shape ``(T, d)``.
        step_scales: ``s`` of shape ``(T,)`` or ``(T, d)``, positive.
        temperature: tau > 0.
        device, dtype: of the parameters (default: those of ``offsets`` if it is a tensor,
            else CPU and the default dtype). An explicit ``device`` moves tensor arguments there.
    """

    def __init__(self, coefficients: Any, offsets: Any, step_scales: Any,
                 temperature: float = 1.0, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        if dtype is not None:
            require_floating_dtype(dtype)
        if device is not None:
            dev = require_device(device)
        else:
            dev = offsets.device if isinstance(offsets, Tensor) else torch.device("cpu")

        def convert(value: Any, name: str, dt: torch.dtype | None, **kw: Any) -> Tensor:
            # an explicit ``device`` moves tensors there; otherwise they must already be on it
            if isinstance(value, Tensor) and device is not None:
                value = value.to(dev)
            return as_tensor(value, name, dtype=dt, device=dev, **kw)

        b = convert(offsets, "offsets", dtype, ndim=2)
        num_steps, dim = b.shape
        a = convert(coefficients, "coefficients", b.dtype)
        s = convert(step_scales, "step_scales", b.dtype)
        require_positive(s, "step_scales")
        for name, arr in (("coefficients", a), ("step_scales", s)):
            if tuple(arr.shape) not in ((num_steps,), (num_steps, dim)):
                raise ValueError(f"{name}: expected shape ({num_steps},) or ({num_steps}, {dim}), "
                                 f"got {tuple(arr.shape)}")
        self.coefficients = a.reshape(num_steps, -1).expand(num_steps, dim).clone()
        self.offsets = b
        self.step_scales = s.reshape(num_steps, -1).expand(num_steps, dim).clone()
        super().__init__(self.linear_mean, self.constant_scale, num_steps, dim, temperature,
                         device=b.device, dtype=b.dtype)

    @classmethod
    def from_reference(cls, chain: Any, device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float32) -> LinearGaussianChain:
        """From a ``cspd_ref.diffusion.LinearGaussianChain`` (parameters cast to ``dtype``)."""
        for attr in ("coefficients", "offsets", "step_scales", "temperature"):
            if not hasattr(chain, attr):
                raise ValueError(f"chain: expected a cspd_ref LinearGaussianChain, got "
                                 f"{type(chain).__name__}")
        return cls(chain.coefficients, chain.offsets, chain.step_scales, chain.temperature,
                   device=device or "cpu", dtype=dtype)

    def linear_mean(self, x: Tensor, t: int) -> Tensor:
        """``a_t x + b_t``."""
        return self.coefficients[t - 1] * x + self.offsets[t - 1]

    def constant_scale(self, x: Tensor, t: int) -> Tensor:
        """``s_t`` (independent of ``x``)."""
        return self.step_scales[t - 1].expand(x.shape)

    def marginal(self) -> DiagGaussian:
        """Closed-form law of ``x_0``: with ``x_T ~ N(0, I)``,
        ``mean_{t-1} = a_t mean_t + b_t`` and ``var_{t-1} = a_t^2 var_t + (tau s_t)^2``."""
        mean = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        var = torch.ones(self.dim, dtype=self.dtype, device=self.device)
        for t in range(self.num_steps, 0, -1):
            a = self.coefficients[t - 1]
            mean = a * mean + self.offsets[t - 1]
            var = a * a * var + (self.temperature * self.step_scales[t - 1]) ** 2
        return DiagGaussian(mean, var.sqrt())


def require_compatible_chains(draft_chain: Any, target_chain: Any) -> None:
    """Raise ``ValueError`` unless both are ``GaussianChain``\\ s with the same T and d (the
    samplers pair their steps one to one)."""
    for name, chain in (("draft_chain", draft_chain), ("target_chain", target_chain)):
        if not isinstance(chain, GaussianChain):
            raise ValueError(f"{name}: expected a gpu_impl GaussianChain, got "
                             f"{type(chain).__name__}")
    if draft_chain.num_steps != target_chain.num_steps:
        raise ValueError(f"target_chain: num_steps {target_chain.num_steps} differs from the "
                         f"draft's {draft_chain.num_steps}")
    if draft_chain.dim != target_chain.dim:
        raise ValueError(f"target_chain: dim {target_chain.dim} differs from the draft's "
                         f"{draft_chain.dim}")


def gaussian_log_ratio(x: Tensor, mean_q: Tensor, scale_q: Tensor, mean_p: Tensor,
                       scale_p: Tensor) -> Tensor:
    """``log N(x; mean_p, scale_p^2) - log N(x; mean_q, scale_q^2)`` summed over the last axis
    (``q`` the draft's step, ``p`` the target's, the draft's parameters first),
    formed term by term (``-z_p^2/2 - log s_p + z_q^2/2 + log s_q``, the ``log 2 pi`` constants
    cancel; docs/algorithms.md §4.3), in ``compute_dtype``; no checks, no sync. The step term
    of ``trajectory_log_ratio``."""
    ct = compute_dtype(x.dtype)
    xc = x.to(ct)
    z_p = (xc - mean_p.to(ct)) / scale_p.to(ct)
    z_q = (xc - mean_q.to(ct)) / scale_q.to(ct)
    per = 0.5 * (z_q * z_q - z_p * z_p) + torch.log(scale_q.to(ct)) - torch.log(scale_p.to(ct))
    return per.sum(dim=-1)
