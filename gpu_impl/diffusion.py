"""Diffusion-head tokens and their exact speculative sampling over tensors
(docs/algorithms.md §4, §7).

The PyTorch counterpart of ``cspd_ref.diffusion``. A ``GaussianChain`` draws a token by
``x_T ~ N(0, I)`` and, for ``t = T, ..., 1``,

    x_{t-1} = m(x_t, t) + tau * s(x_t, t) * eps_t,     eps_t ~ N(0, I),

the last step noisy too. ``m`` and ``s`` are any callables ``(x (N, d), t: int) -> tensor``
broadcasting to ``(N, d)`` (an ``nn.Module`` in practice). Noise tensors are ordered by step:
``eps[i]`` is ``eps_{T-i}``, so ``eps[:T-1]`` are ``eps_T .. eps_2`` and ``eps[T-1]`` is
``eps_1`` (as ``cspd_ref``).

Two exact speculative samplers, batched over tokens:

* aligned trajectories (``aligned_speculative_sample``): draft and target share ``x_T`` and
  ``eps_T .. eps_2``; speculative sampling (docs/algorithms.md §3) is applied to the two
  last-step Gaussians
  ``N(m_q(x_1^q, 1), (tau s_q)^2)`` and ``N(m_p(x_1^p, 1), (tau s_p)^2)`` (reflection when the
  scales are equal, batched residual otherwise).
* joint criterion (``joint_speculative_sample``): accept on
  ``sum_t log p_t(x_{t-1}|x_t) - log q_t(x_{t-1}|x_t)`` along the draft trajectory; the residual
  proposes whole target trajectories.

**No host synchronisation in the denoising loop** (docs/algorithms.md §7): ``aligned_denoise`` and
``joint_draft_pass`` (the T steps) use only fixed-shape tensor arithmetic — no ``.item()``,
``.cpu()``, boolean-mask indexing, ``nonzero`` or Python branching on tensor values — so they
can be captured in a CUDA graph or compiled with ``torch.compile(fullgraph=True)``. The checks of
the callables' outputs (finite means, positive finite scales) are folded into a 0-d ``health``
tensor inside the loop — ``(sum m + sum log s) * 0`` is 0, or NaN as soon as one mean is not
finite or one scale is not positive and finite — and read once after it; on a fault the loop is
replayed with step-by-step checks to raise a ``ValueError`` naming the callable and the step.
Only the residual stage after the loop has data-dependent shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gpu_impl.distributions import HALF_LOG_TWO_PI, DiagGaussian
from gpu_impl.speculative import (
    DEFAULT_MAX_TRIALS,
    ResidualBudgetExceeded,
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
    require_device,
    require_floating_dtype,
    require_generator,
    require_half_open_unit_interval,
    require_int,
    require_positive,
    require_shape,
)

StepFn = Callable[[Tensor, int], Tensor]
"""``f(x_t, t)`` with ``x_t`` of shape ``(N, d)``; returns ``(N, d)`` or anything broadcasting."""

__all__ = [
    "GaussianChain",
    "LastSteps",
    "LinearGaussianChain",
    "aligned_denoise",
    "aligned_speculative_sample",
    "aligned_speculative_sample_from_noise",
    "gaussian_log_ratio",
    "joint_draft_pass",
    "joint_speculative_sample",
    "joint_speculative_sample_from_noise",
    "trajectory_log_ratio",
    "transition_log_prob",
]


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
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            tau_t = as_tensor(temperature, "temperature", ndim=0)
            tau = float(tau_t)
        else:
            tau = float(temperature)
            if tau != tau or tau in (float("inf"), float("-inf")):
                raise ValueError("temperature: contains NaN or infinite values")
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
    def _check_start(self, x_T: Any, name: str = "x_T") -> Tensor:
        x = as_tensor(x_T, name, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"{name}: expected (N, {self.dim}), got {tuple(x.shape)}")
        return x

    def _check_eps(self, eps: Any, x: Tensor, name: str, steps: int | None) -> Tensor:
        e = as_tensor(eps, name, ndim=3, device=x.device, dtype=x.dtype)
        limit = self.num_steps if steps is None else steps
        ok_steps = e.shape[0] <= limit if steps is None else e.shape[0] == steps
        if not ok_steps or tuple(e.shape[1:]) != tuple(x.shape):
            want = f"<= {limit}" if steps is None else f"{steps}"
            raise ValueError(f"{name}: expected ({want}, {x.shape[0]}, {self.dim}), got "
                             f"{tuple(e.shape)}")
        return e

    def trajectory_from_noise(self, x_T: Any, eps: Any) -> Tensor:
        """All states ``x_T, x_{T-1}, ..., x_{T - len(eps)}``: shape ``(len(eps) + 1, N, d)``.

        ``eps[i]`` is ``eps_{T-i}``; pass all T of them to reach ``x_0``. The callables'
        outputs are checked after the loop.
        """
        x = self._check_start(x_T)
        e = self._check_eps(eps, x, "eps", None)
        states = [x]
        health = _zero_health(x)
        for i in range(e.shape[0]):
            t = self.num_steps - i
            mean, scale = self.transition_params(states[-1], t)
            health = health + _health(mean, scale)
            states.append(mean + scale * e[i])
        _check_health(health, lambda: _replay_checked([(self, "")], [x], e, e.shape[0]))
        return torch.stack(states)

    def sample_from_noise(self, x_T: Any, eps: Any) -> Tensor:
        """The token ``x_0`` ``(N, d)`` from ``x_T`` ``(N, d)`` and all T noises ``(T, N, d)``;
        keeps only the current state (no trajectory storage), no sync inside the loop."""
        x = self._check_start(x_T)
        e = self._check_eps(eps, x, "eps", self.num_steps)
        x_T_checked = x
        health = _zero_health(x)
        for i in range(self.num_steps):
            t = self.num_steps - i
            mean, scale = self.transition_params(x, t)
            health = health + _health(mean, scale)
            x = mean + scale * e[i]
        _check_health(health,
                      lambda: _replay_checked([(self, "")], [x_T_checked], e, self.num_steps))
        return x

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
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


def _zero_health(x: Tensor) -> Tensor:
    return torch.zeros((), dtype=compute_dtype(x.dtype), device=x.device)


def _health(mean: Tensor, scale: Tensor) -> Tensor:
    """``(sum m + sum log s) * 0``: 0, or NaN when a mean is not finite or a scale is not
    positive and finite (``log`` of 0 is -inf, of a negative number NaN; ``inf * 0`` is NaN).
    Sync-free; summed in float32 at least so that 16-bit sums cannot overflow."""
    ct = compute_dtype(mean.dtype)
    return (mean.sum(dtype=ct) + torch.log(scale.to(ct)).sum()) * 0.0


def _check_health(health: Tensor, locate: Callable[[], None]) -> None:
    """After the loop (one sync): on a NaN health replay the loop with checks (``locate``),
    which raises ``ValueError`` naming the callable and the step."""
    if not bool(torch.isfinite(health)):
        locate()
        raise ValueError("mean_fn: returned NaN/inf (or scale_fn a non-positive scale) in the "
                         "denoising loop; the checked replay did not reproduce it")


def _replay_checked(chains: list[tuple[GaussianChain, str]], starts: list[Tensor], eps: Tensor,
                    steps: int, *, follow: int | None = None) -> None:
    """Re-run trajectories with the checking ``transition`` (raises at the first fault).

    ``chains[i]`` runs from ``starts[i]``; with ``follow`` set, every chain is evaluated at the
    states of ``chains[follow]`` (the joint criterion scores both chains on one trajectory).
    """
    T = chains[0][0].num_steps
    xs = list(starts)
    for i in range(steps):
        t = T - i
        laws = [chain.transition(xs[j if follow is None else follow], t, owner=owner)
                for j, (chain, owner) in enumerate(chains)]
        if i < eps.shape[0]:
            if follow is None:
                xs = [law.mean + law.scale * eps[i] for law in laws]
            else:
                xs = [laws[follow].mean + laws[follow].scale * eps[i]] * len(chains)


def gaussian_log_ratio(x: Tensor, mean_p: Tensor, scale_p: Tensor, mean_q: Tensor,
                       scale_q: Tensor) -> Tensor:
    """``log N(x; mean_p, scale_p^2) - log N(x; mean_q, scale_q^2)`` summed over the last axis,
    formed term by term (``-z_p^2/2 - log s_p + z_q^2/2 + log s_q``, the ``log 2 pi`` constants
    cancel), in ``compute_dtype``."""
    ct = compute_dtype(x.dtype)
    xc = x.to(ct)
    z_p = (xc - mean_p.to(ct)) / scale_p.to(ct)
    z_q = (xc - mean_q.to(ct)) / scale_q.to(ct)
    per = 0.5 * (z_q * z_q - z_p * z_p) + torch.log(scale_q.to(ct)) - torch.log(scale_p.to(ct))
    return per.sum(dim=-1)


def transition_log_prob(chain: GaussianChain, x_t: Tensor, t: int, x_prev: Tensor) -> Tensor:
    """``log N(x_{t-1}; m(x_t, t), diag((tau s(x_t, t))^2))`` summed over coordinates."""
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
        total = total + gaussian_log_ratio(states[i + 1], mp, sp, mq, sq)
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
    """Raise unless both are ``GaussianChain``\\ s with the same T and d."""
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
    health = _zero_health(x_T)
    for i in range(T - 1):
        t = T - i
        mq, sq = draft_chain.transition_params(x_q, t)
        mp, sp = target_chain.transition_params(x_p, t)
        health = health + _health(mq, sq) + _health(mp, sp)
        x_q = mq + sq * shared_eps[i]
        x_p = mp + sp * shared_eps[i]
    mq, sq = draft_chain.transition_params(x_q, 1)
    mp, sp = target_chain.transition_params(x_p, 1)
    health = health + _health(mq, sq) + _health(mp, sp)
    return LastSteps(mq, sq, mp, sp, health)


def aligned_last_steps(draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Any,
                       shared_eps: Any) -> tuple[DiagGaussian, DiagGaussian]:
    """Validated ``aligned_denoise``: the last-step Gaussians ``(q_last, p_last)``, batch
    ``(N,)`` (as ``cspd_ref.diffusion.aligned_last_steps``)."""
    require_compatible_chains(draft_chain, target_chain)
    x = draft_chain._check_start(x_T)
    e = draft_chain._check_eps(shared_eps, x, "shared_eps", draft_chain.num_steps - 1)
    last = aligned_denoise(draft_chain, target_chain, x, e)
    _check_health(last.health, lambda: _replay_checked(
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
                               generator: torch.Generator, *,
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
        ResidualNoiseGenerator(generator, d, device=device, dtype=dtype),
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


def _follow_and_score(draft_chain: GaussianChain, target_chain: GaussianChain, x_T: Tensor,
                      eps: Tensor, *, follow_target: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Run one chain's trajectory (the target's when ``follow_target``) and accumulate
    ``log p(traj) - log q(traj)``; sync-free."""
    T = draft_chain.num_steps
    x = x_T
    log_ratio = torch.zeros(x.shape[0], dtype=compute_dtype(x.dtype), device=x.device)
    health = _zero_health(x)
    for i in range(T):
        t = T - i
        mq, sq = draft_chain.transition_params(x, t)
        mp, sp = target_chain.transition_params(x, t)
        health = health + _health(mq, sq) + _health(mp, sp)
        x = (mp + sp * eps[i]) if follow_target else (mq + sq * eps[i])
        log_ratio = log_ratio + gaussian_log_ratio(x, mp, sp, mq, sq)
    return x, log_ratio, health


def _check_joint_health(health: Tensor, draft_chain: GaussianChain, target_chain: GaussianChain,
                        x_T: Tensor, eps: Tensor, follow_target: bool) -> None:
    _check_health(health, lambda: _replay_checked(
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
    x = draft_chain._check_start(x_T)
    e = draft_chain._check_eps(draft_eps, x, "draft_eps", T)
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
            y, lr, health = _follow_and_score(draft_chain, target_chain, starts, steps,
                                              follow_target=True)
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
                             generator: torch.Generator, *,
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
        ResidualNoiseGenerator(generator, (T + 1) * d, device=device, dtype=dtype),
        residual=residual, max_trials=max_trials)


__all__ += ["ResidualBudgetExceeded", "aligned_last_steps", "require_compatible_chains"]
