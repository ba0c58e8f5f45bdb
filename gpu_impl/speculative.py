"""Exact speculative sampling of continuous tokens over batched tensors (docs/algorithms.md §3, §7).

The PyTorch counterpart of ``cspd_ref.speculative``; draft ``q``, target ``p`` are
``gpu_impl.GaussianMixture``\\ s with batch shape ``()`` (one pair for every row) or ``(n,)``.

1. ``x ~ q``; accept iff ``log u < lr(x) = log p(x) - log q(x)``, ``u ~ U[0, 1)``.
   ``P(accept) = 1 - TV(p, q)``. The log-ratio and the test are computed in float32 for
   float16/bfloat16 distributions (``compute_dtype``), in the parameter dtype otherwise.
2. Rejected rows are resampled from the residual ``r = (p - q)^+ / TV`` without computing TV:
   propose ``y ~ p`` and accept iff ``u' < -expm1(min(0, log q(y) - log p(y))) = (1 - q/p)^+``;
   the number of proposals is Geometric(TV).

   * ``"batched"``: each round every still-pending row draws ``k`` proposals (``k`` doubles
     from round to round) and keeps the **first** success in index order; finished rows leave
     the pending set (the set is compacted, no loop over the full batch). The chosen value and
     trial count have exactly the law of the sequential loop and, on the same noise, the same
     values as ``cspd_ref``'s loop and batched samplers.
   * ``"loop"``: the sequential loop's schedule, one proposal per pending row per round,
     vectorised over the rows (same law, same values on the same noise).
   * ``"reflection"``: single Gaussians with equal diagonal scale ``S``: a rejected ``x`` maps
     to ``mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)``, ``e = S^{-1}(mu_p - mu_q) / ||.||``
     (maximal reflection coupling), exact in one pass.

   A safety cap on proposals per row raises ``ResidualBudgetExceeded`` (a ``RuntimeError``)
   naming how many rows are unfinished; no value is ever substituted (docs/algorithms.md §3.4).

Randomness is explicit: ``speculative_sample_from_noise`` is a pure function of its noise
tensors and of a ``ResidualNoise`` stream (``ResidualNoiseArrays``: row ``i``'s ``j``-th
proposal uses ``arrays[i, j]``, exactly as ``cspd_ref.speculative.ResidualNoiseArrays``;
``ResidualNoiseGenerator``: drawn from a ``torch.Generator``). ``speculative_sample`` draws all
noise from a ``torch.Generator``.

Host synchronisation: the draft sample, the log-ratio and the acceptance test are
synchronisation-free; the residual stage has data-dependent shapes (two synchronisations per
batched round), and argument validation synchronises once per checked value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from gpu_impl.distributions import GaussianMixture, require_mixture, require_same_event
from gpu_impl.validation import (
    as_tensor,
    compute_dtype,
    require_batch_shape,
    require_generator,
    require_half_open_unit_interval,
    require_int,
    require_shape,
)

ResidualMethod = Literal["auto", "loop", "batched", "reflection"]
RESIDUAL_METHODS: tuple[str, ...] = ("auto", "loop", "batched", "reflection")

DEFAULT_MAX_TRIALS = 1_000_000
"""Safety cap on residual proposals per row. P(a row needs more) = (1 - TV)^cap; the cap raises."""

FIRST_ROUND_SIZE = 4
"""Proposals per pending row in the first batched round (then doubling), as ``cspd_ref``."""

ROUND_ELEMENT_BUDGET = 1 << 24
"""Upper bound on proposal floats drawn in one batched round (memory, not law)."""


class ResidualBudgetExceeded(RuntimeError):
    """Raised when rows are still unfinished after the safety cap of residual proposals.

    Attributes:
        unfinished_rows: (host) int64 tensor of the rows that had no accepted proposal,
            numbered as in the caller's batch.
        max_trials: the number of proposals each of them examined.
    """

    def __init__(self, unfinished_rows: Tensor, max_trials: int) -> None:
        self.unfinished_rows = unfinished_rows.detach().to("cpu", torch.int64)
        self.max_trials = int(max_trials)
        count = self.unfinished_rows.numel()
        shown = self.unfinished_rows[:10].tolist()
        super().__init__(
            f"{count} row(s) unfinished after {self.max_trials} residual proposals each "
            f"(rows {shown}{'...' if count > 10 else ''}); no value was substituted. "
            "TV(p, q) is probably tiny for these rows: raise max_trials or use "
            "residual='reflection' where the scales are equal."
        )


@dataclass(frozen=True)
class SpeculativeResult:
    """Output of a speculative sampler (docs/algorithms.md §3.5).

    Attributes:
        samples: ``(n, d)`` samples in the distributions' dtype, distributed exactly as the
            target.
        accepted: ``(n,)`` bool, True where the draft was accepted.
        trials: ``(n,)`` int64, residual proposals examined up to and including the accepted
            one (0 for accepted rows and for the reflection residual).
    """

    samples: Tensor
    accepted: Tensor
    trials: Tensor


# --------------------------------------------------------------------- the acceptance test
def log_acceptance_ratio(draft: GaussianMixture, target: GaussianMixture, x: Tensor) -> Tensor:
    """``log p(x) - log q(x)`` from log-densities (never densities), in ``compute_dtype``."""
    return target.log_prob_unchecked(x) - draft.log_prob_unchecked(x)


def accept_from_uniforms(log_ratio: Tensor, uniforms: Tensor) -> Tensor:
    """Accept iff ``log u < log p(x) - log q(x)``, i.e. with probability ``min(1, p/q)``.

    ``u`` is upcast to the log-ratio's dtype (float32 at least); ``u == 0`` gives
    ``log u = -inf`` and is accepted (a null event).
    """
    ct = compute_dtype(log_ratio.dtype)
    return torch.log(uniforms.to(ct)) < log_ratio.to(ct)


def residual_acceptance_from_log_ratio(log_q_minus_log_p: Tensor) -> Tensor:
    """``(1 - q(y)/p(y))^+ = -expm1(min(0, log q(y) - log p(y)))`` for a proposal ``y ~ p``."""
    return -torch.expm1(torch.clamp(log_q_minus_log_p, max=0.0))


def residual_acceptance_probability(log_q: Tensor, log_p: Tensor) -> Tensor:
    """``-expm1(min(0, log q(y) - log p(y)))``: ``r(y) TV / p(y)``, rejection sampling of the
    residual ``r`` from ``p`` with bound ``1/TV`` (docs/algorithms.md §3.3)."""
    return residual_acceptance_from_log_ratio(log_q - log_p)


# --------------------------------------------------------------------- residual noise streams
class ResidualNoise(Protocol):
    """A per-row stream of residual-proposal noise.

    ``take(rows, start, k)`` returns items ``start .. start + k - 1`` of each listed row's own
    stream: component uniforms ``(m, k)``, standard normals ``(m, k, D)``, acceptance uniforms
    ``(m, k)`` (``m = len(rows)``); it may return fewer than ``k`` when a finite stream runs
    short. ``cspd_ref`` passes ``start`` the same way, so the two read identical positions.
    """

    def take(self, rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]: ...


class ResidualNoiseArrays:
    """A finite, explicit residual noise stream: row ``i``'s ``j``-th proposal uses
    ``component_uniforms[i, j]``, ``normals[i, j]`` and ``accept_uniforms[i, j]``
    (as ``cspd_ref.speculative.ResidualNoiseArrays``).

    Its length ``M`` acts as a cap: a row with no success among its ``M`` proposals raises
    ``ResidualBudgetExceeded``. Stateless: the same object can feed several calls.

    Args:
        component_uniforms: ``(N, M)`` in [0, 1).
        normals: ``(N, M, D)`` finite.
        accept_uniforms: ``(N, M)`` in [0, 1).
        device, dtype: where the tensors are kept (float inputs are cast to ``dtype``; the
            range checks are made before the cast).
    """

    def __init__(self, component_uniforms: Any, normals: Any, accept_uniforms: Any, *,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        u_c = as_tensor(component_uniforms, "component_uniforms", ndim=2, device=device)
        require_half_open_unit_interval(u_c, "component_uniforms")
        n, m = u_c.shape
        z = as_tensor(normals, "normals", ndim=3, device=u_c.device)
        if tuple(z.shape[:2]) != (n, m):
            raise ValueError(f"normals: expected shape ({n}, {m}, D), got {tuple(z.shape)}")
        u_a = as_tensor(accept_uniforms, "accept_uniforms", ndim=2, device=u_c.device)
        require_shape(u_a, (n, m), "accept_uniforms")
        require_half_open_unit_interval(u_a, "accept_uniforms")
        dtype = dtype or u_c.dtype
        self.component_uniforms = u_c.to(dtype)
        self.normals = z.to(dtype)
        self.accept_uniforms = u_a.to(dtype)

    @property
    def length(self) -> int:
        """Number of proposals available per row."""
        return int(self.component_uniforms.shape[1])

    @property
    def dim(self) -> int:
        """Size D of each item's normal vector."""
        return int(self.normals.shape[2])

    def take(self, rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        stop = min(self.length, start + max(0, k))
        start = min(start, stop)
        r = rows.to(self.component_uniforms.device)
        return (self.component_uniforms[r, start:stop], self.normals[r, start:stop],
                self.accept_uniforms[r, start:stop])


class ResidualNoiseGenerator:
    """An unbounded residual noise stream drawn on demand from a ``torch.Generator``.

    Per call: component uniforms ``(m, k)``, then normals ``(m, k, dim)``, then acceptance
    uniforms ``(m, k)`` (the order of ``cspd_ref.speculative.ResidualNoiseGenerator``).
    """

    def __init__(self, generator: torch.Generator, dim: int, *,
                 device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.device = torch.device(device)
        self.generator = require_generator(generator, self.device)
        self.dim = require_int(dim, "dim", minimum=1)
        self.dtype = compute_dtype(dtype)

    def take(self, rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        m = int(rows.numel())
        g, dev, dt = self.generator, self.device, self.dtype
        return (torch.rand((m, k), generator=g, device=dev, dtype=dt),
                torch.randn((m, k, self.dim), generator=g, device=dev, dtype=dt),
                torch.rand((m, k), generator=g, device=dev, dtype=dt))


def require_noise_stream(value: Any, name: str = "residual_noise") -> ResidualNoise:
    """Raise unless ``value`` is a residual noise stream (an object with ``take(rows, start, k)``;
    raw arrays and tensors are refused: wrap them in ``ResidualNoiseArrays``)."""
    if (value is None or isinstance(value, Tensor | np.ndarray | list | tuple)
            or not callable(getattr(value, "take", None))):
        raise ValueError(f"{name}: expected a ResidualNoise stream (ResidualNoiseArrays or "
                         f"ResidualNoiseGenerator), got {type(value).__name__}")
    return value


@contextmanager
def global_rows(rows: Tensor) -> Iterator[None]:
    """Re-raise ``ResidualBudgetExceeded`` with the caller's row numbers: the engine numbers
    the rows it resamples ``0 .. m-1``; ``rows`` maps them back to the full batch."""
    try:
        yield
    except ResidualBudgetExceeded as exc:
        mapped = rows.detach().cpu()[exc.unfinished_rows]
        raise ResidualBudgetExceeded(mapped, exc.max_trials) from None


class RowSubsetNoise:
    """View of a residual noise stream in which local row ``i`` is global row ``rows[i]``."""

    def __init__(self, noise: ResidualNoise, rows: Tensor) -> None:
        self.noise = noise
        self.rows = rows

    def take(self, rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.noise.take(self.rows[rows], start, k)


# --------------------------------------------------------------------- first-success engine
ProposalFn = Callable[[Tensor, int, int], tuple[Tensor, Tensor, Tensor]]
"""``propose(rows, start, k) -> (values (m, k, *event), log_q - log_p (m, k), accept_u (m, k))``:
proposals ``start .. start + k - 1`` from the target for each listed (local) row, with the
log-density difference ``log q(y) - log p(y)`` that the residual test needs."""


def first_success_residual_batched(n_rows: int, event_shape: tuple[int, ...],
                                   propose: ProposalFn, *, device: torch.device | str,
                                   dtype: torch.dtype, max_trials: int = DEFAULT_MAX_TRIALS,
                                   first_round_size: int = FIRST_ROUND_SIZE,
                                   doubling: bool = True, noise_per_proposal: int | None = None,
                                   ) -> tuple[Tensor, Tensor]:
    """Batched residual rejection sampling with first-success selection (docs/algorithms.md §3.3).

    Each round, every pending row draws ``k`` proposals (``k`` doubles each round when
    ``doubling``, bounded by ``ROUND_ELEMENT_BUDGET`` and by ``max_trials``) and keeps the first
    success ``u' < (1 - q/p)^+`` in index order; rows with none stay pending and the pending
    index set is compacted. The value and the trial count (the global 1-based index of the
    first success) have the law of the sequential loop and, on the same stream, its values.

    Args:
        n_rows: number of rows to resample.
        event_shape: shape of one value.
        propose: the proposal function (``ProposalFn``).
        device, dtype: of the returned values.
        max_trials: safety cap on proposals per row.
        first_round_size: ``k`` of the first round (1 and ``doubling=False`` is the loop).
        noise_per_proposal: floats per proposal, for the memory budget (default: event size).

    Returns:
        ``(values (n_rows, *event), trials (n_rows,) int64)``.

    Raises:
        ResidualBudgetExceeded: rows still pending after ``max_trials`` proposals (or when a
            finite stream ends). No value is ever substituted.
    """
    device = torch.device(device)
    values = torch.empty((n_rows, *event_shape), device=device, dtype=dtype)
    trials = torch.zeros(n_rows, device=device, dtype=torch.int64)
    pending = torch.arange(n_rows, device=device)
    n_pending = n_rows
    used = 0
    k = first_round_size
    if noise_per_proposal is None:
        noise_per_proposal = 1
        for size in event_shape:
            noise_per_proposal *= size
    while n_pending and used < max_trials:
        per_row_budget = max(1, ROUND_ELEMENT_BUDGET // (n_pending * max(1, noise_per_proposal)))
        k_round = int(min(k, max_trials - used, per_row_budget))
        proposal, log_q_minus_log_p, accept_u = propose(pending, used, k_round)
        drawn = int(proposal.shape[1])
        if drawn == 0:
            break
        success = accept_u < residual_acceptance_from_log_ratio(log_q_minus_log_p)
        index = torch.arange(drawn, device=device)
        first = torch.where(success, index, drawn).amin(dim=1)       # drawn where none
        done = first < drawn
        finished = torch.nonzero(done).squeeze(1)                    # synchronises
        if finished.numel():
            rows = pending[finished]
            values[rows] = proposal[finished, first[finished]].to(dtype)
            trials[rows] = used + first[finished] + 1
            pending = pending[torch.nonzero(~done).squeeze(1)]
            n_pending = int(pending.numel())
        used += drawn
        if doubling:
            k *= 2
    if n_pending:
        raise ResidualBudgetExceeded(pending, used)
    return values, trials


def first_success_residual_loop(n_rows: int, event_shape: tuple[int, ...],
                                propose: ProposalFn, *, device: torch.device | str,
                                dtype: torch.dtype, max_trials: int = DEFAULT_MAX_TRIALS,
                                ) -> tuple[Tensor, Tensor]:
    """The sequential loop's schedule: one proposal per pending row per round, until each row
    succeeds (vectorised over rows; same law and, on the same stream, same values as
    ``cspd_ref.speculative.first_success_residual_loop``)."""
    return first_success_residual_batched(n_rows, event_shape, propose, device=device,
                                          dtype=dtype, max_trials=max_trials,
                                          first_round_size=1, doubling=False)


# --------------------------------------------------------------------- token residual samplers
def rows_of(mixture: GaussianMixture, rows: Tensor) -> GaussianMixture:
    """The mixture(s) for ``rows``, shaped to broadcast against ``(len(rows), k)`` proposals."""
    if tuple(mixture.batch_shape) == ():
        return mixture
    return mixture.index_batch(rows[:, None])


def token_proposal_fn(draft: GaussianMixture, target: GaussianMixture,
                      noise: ResidualNoise) -> ProposalFn:
    """Proposals ``y ~ p`` for the residual of tokens, scored by ``log q(y) - log p(y)``."""

    def propose(rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        comp_u, normals, accept_u = noise.take(rows, start, k)
        if normals.shape[-1] != target.dim:
            raise ValueError(f"residual_noise: items must hold d = {target.dim} normals, got "
                             f"{normals.shape[-1]}")
        p_rows = rows_of(target, rows)
        q_rows = rows_of(draft, rows)
        y = p_rows.sample_from_noise_unchecked(comp_u.to(target.device),
                                               normals.to(target.device))
        return (y, q_rows.log_prob_unchecked(y) - p_rows.log_prob_unchecked(y),
                accept_u.to(target.device))

    return propose


def residual_sample_batched(draft: GaussianMixture, target: GaussianMixture, n_rows: int,
                            noise: ResidualNoise, *, max_trials: int = DEFAULT_MAX_TRIALS,
                            ) -> tuple[Tensor, Tensor]:
    """Residual ``(p - q)^+ / TV`` by batched proposals, first success in index order."""
    return first_success_residual_batched(n_rows, (target.dim,),
                                          token_proposal_fn(draft, target, noise),
                                          device=target.device, dtype=target.dtype,
                                          max_trials=max_trials)


def residual_sample_loop(draft: GaussianMixture, target: GaussianMixture, n_rows: int,
                         noise: ResidualNoise, *, max_trials: int = DEFAULT_MAX_TRIALS,
                         ) -> tuple[Tensor, Tensor]:
    """Residual by the sequential loop's schedule (one proposal per row per round)."""
    return first_success_residual_loop(n_rows, (target.dim,),
                                       token_proposal_fn(draft, target, noise),
                                       device=target.device, dtype=target.dtype,
                                       max_trials=max_trials)


def equal_scale_gaussians(draft: GaussianMixture, target: GaussianMixture) -> bool:
    """True when both are single Gaussians (K = 1) with identical diagonal scales
    (exact equality, as ``cspd_ref``; one synchronisation)."""
    if not (draft.is_single_gaussian and target.is_single_gaussian):
        return False
    try:
        q_scale, p_scale = torch.broadcast_tensors(draft.scales, target.scales)
    except RuntimeError:
        return False
    return bool(torch.equal(q_scale, p_scale))


def reflection_map(x: Tensor, mean_draft: Tensor, mean_target: Tensor, scale: Tensor) -> Tensor:
    """The reflection coupling ``y = mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)``.

    ``e = S^{-1}(mu_p - mu_q) / ||S^{-1}(mu_p - mu_q)||``. In whitened coordinates this is the
    reflection through the hyperplane bisecting the two means: an isometry sending
    ``N(mu_q, S^2)`` to ``N(mu_p, S^2)`` and ``{q > p}`` onto ``{p > q}``. Where
    ``mu_p == mu_q`` it returns ``x`` (such a row is never rejected). Arguments broadcast over
    leading axes; the last axis is d. Computed in ``compute_dtype``, returned in ``x.dtype``.
    No synchronisation.
    """
    ct = compute_dtype(x.dtype)
    xc, mu_q, mu_p, s = (t.to(ct) for t in (x, mean_draft, mean_target, scale))
    direction = (mu_p - mu_q) / s
    norm = torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
    positive = norm > 0
    e = torch.where(positive, direction / torch.where(positive, norm, 1.0), 0.0)
    w = (xc - mu_q) / s
    reflected = w - 2.0 * (w * e).sum(dim=-1, keepdim=True) * e
    y = mu_p + s * reflected
    return torch.where(positive, y, xc).to(x.dtype)


def residual_sample_reflection(draft: GaussianMixture, target: GaussianMixture,
                               rejected_drafts: Tensor, rows: Tensor | None = None) -> Tensor:
    """Residual samples for rejected drafts by the reflection coupling (docs/algorithms.md §3.3).

    Args:
        draft, target: single Gaussians (K = 1) with the same scales, batch ``()`` or ``(n,)``.
        rejected_drafts: ``(m, d)`` drafts that failed the acceptance test.
        rows: their row indices when the distributions are batched over rows.

    Raises:
        ValueError: if the pair is not two single Gaussians with equal scales.
    """
    if not equal_scale_gaussians(draft, target):
        raise ValueError("residual: 'reflection' needs single Gaussians (K = 1) with equal "
                         "scales for draft and target")
    q = draft.index_batch(rows) if rows is not None and tuple(draft.batch_shape) else draft
    p = target.index_batch(rows) if rows is not None and tuple(target.batch_shape) else target
    return reflection_map(rejected_drafts, q.means[..., 0, :], p.means[..., 0, :],
                          p.scales[..., 0, :])


# --------------------------------------------------------------------- the whole sampler
def resolve_residual_method(residual: str, draft: GaussianMixture,
                            target: GaussianMixture) -> str:
    """Map ``"auto"`` to ``"reflection"`` (single Gaussians, equal scales) or ``"batched"``."""
    if not isinstance(residual, str) or residual not in RESIDUAL_METHODS:
        raise ValueError(f"residual: expected one of {RESIDUAL_METHODS}, got {residual!r}")
    if residual == "auto":
        return "reflection" if equal_scale_gaussians(draft, target) else "batched"
    if residual == "reflection" and not equal_scale_gaussians(draft, target):
        raise ValueError("residual: 'reflection' needs single Gaussians (K = 1) with equal "
                         "scales for draft and target")
    return residual


def check_pair(draft: GaussianMixture, target: GaussianMixture) -> None:
    """Validate a draft/target pair for token sampling."""
    require_mixture(draft, "draft")
    require_mixture(target, "target")
    require_same_event(draft, target)
    for name, dist in (("draft", draft), ("target", target)):
        require_batch_shape(dist.batch_shape, name)


def speculative_sample_from_noise(
    draft: GaussianMixture,
    target: GaussianMixture,
    draft_component_uniforms: Any,
    draft_normals: Any,
    accept_uniforms: Any,
    residual_noise: ResidualNoise | None,
    *,
    residual: str = "auto",
    max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Speculative sampling as a pure function of its noise (docs/noise.md §1).

    ``x = draft.sample_from_noise(draft_component_uniforms, draft_normals)``; accept iff
    ``log u < log p(x) - log q(x)``; rejected rows are resampled from ``(p - q)^+ / TV`` by the
    chosen residual method, global row ``i``'s proposals drawn from ``residual_noise`` row ``i``
    (unused by reflection). Noise tensors are cast to the distributions' ``compute_dtype``
    after their ranges are checked.

    Args:
        draft, target: ``gpu_impl.GaussianMixture``, batch shape ``()`` or ``(n,)``, same
            dtype and device.
        draft_component_uniforms: ``(n,)`` in [0, 1).
        draft_normals: ``(n, d)``.
        accept_uniforms: ``(n,)`` in [0, 1).
        residual_noise: a ``ResidualNoise`` stream (``ResidualNoiseArrays`` or
            ``ResidualNoiseGenerator``); may be ``None`` for ``residual="reflection"``.
        residual: ``"auto" | "loop" | "batched" | "reflection"``.
        max_trials: safety cap on residual proposals per row; exceeding it raises.

    Returns:
        ``SpeculativeResult`` (``samples`` in the distributions' dtype).

    Raises:
        ValueError: naming the bad argument (docs/contract.md §4).
        ResidualBudgetExceeded: rows unfinished after ``max_trials`` proposals.
    """
    check_pair(draft, target)
    method = resolve_residual_method(residual, draft, target)
    max_trials = require_int(max_trials, "max_trials", minimum=1)
    device, ct = target.device, target.compute_dtype
    u_c = require_half_open_unit_interval(
        as_tensor(draft_component_uniforms, "draft_component_uniforms", ndim=1, device=device),
        "draft_component_uniforms")
    n = int(u_c.shape[0])
    z = require_shape(as_tensor(draft_normals, "draft_normals", ndim=2, device=device),
                      (n, target.dim), "draft_normals")
    u_acc = require_half_open_unit_interval(
        require_shape(as_tensor(accept_uniforms, "accept_uniforms", ndim=1, device=device),
                      (n,), "accept_uniforms"), "accept_uniforms")
    for name, dist in (("draft", draft), ("target", target)):
        require_batch_shape(dist.batch_shape, name, n)
    if method != "reflection" and residual_noise is None:
        raise ValueError(f"residual_noise: a noise stream is required for residual={method!r}")
    if residual_noise is not None:
        require_noise_stream(residual_noise)

    x = draft.sample_from_noise_unchecked(u_c.to(ct), z.to(ct))
    accepted = accept_from_uniforms(log_acceptance_ratio(draft, target, x), u_acc)
    return _resolve_rejections(draft, target, x, accepted, method, residual_noise, max_trials)


def _resolve_rejections(draft: GaussianMixture, target: GaussianMixture, x: Tensor,
                        accepted: Tensor, method: str, residual_noise: ResidualNoise | None,
                        max_trials: int) -> SpeculativeResult:
    """The residual stage: replace rejected rows of ``x`` (data-dependent shapes)."""
    n = int(x.shape[0])
    samples = x.clone()
    trials = torch.zeros(n, dtype=torch.int64, device=x.device)
    rejected = torch.nonzero(~accepted).squeeze(1)
    if rejected.numel():
        if method == "reflection":
            samples[rejected] = residual_sample_reflection(draft, target, x[rejected], rejected)
        else:
            assert residual_noise is not None
            sub_draft = draft.index_batch(rejected) if tuple(draft.batch_shape) else draft
            sub_target = target.index_batch(rejected) if tuple(target.batch_shape) else target
            sampler = residual_sample_loop if method == "loop" else residual_sample_batched
            stream = RowSubsetNoise(residual_noise, rejected)
            with global_rows(rejected):
                values, used = sampler(sub_draft, sub_target, int(rejected.numel()), stream,
                                       max_trials=max_trials)
            samples[rejected] = values
            trials[rejected] = used
    return SpeculativeResult(samples=samples, accepted=accepted, trials=trials)


def speculative_sample(draft: GaussianMixture, target: GaussianMixture, n: int,
                       generator: torch.Generator, *, residual: str = "auto",
                       max_trials: int = DEFAULT_MAX_TRIALS) -> SpeculativeResult:
    """Draw ``n`` tokens whose law is exactly ``target``, speculatively from ``draft``.

    The PyTorch counterpart of ``cspd_ref.speculative_sample`` (docs/algorithms.md §3, §7). Noise is
    drawn from ``generator`` on the distributions' device, in ``compute_dtype``, in the order:
    draft component uniforms ``(n,)``, draft normals ``(n, d)``, acceptance uniforms ``(n,)``,
    then residual proposals on demand.

    Args:
        draft: the draft ``q`` (batch ``()`` or ``(n,)``).
        target: the target ``p`` (batch ``()`` or ``(n,)``).
        n: number of tokens.
        generator: a ``torch.Generator`` on the distributions' device (required: randomness is
            explicit).
        residual: ``"auto"`` (reflection for equal-scale single Gaussians, batched otherwise),
            ``"loop"``, ``"batched"`` or ``"reflection"``.
        max_trials: safety cap on residual proposals per row (raises, never substitutes).

    Example:
        >>> import torch, gpu_impl
        >>> q = gpu_impl.GaussianMixture([1.0], [[0.0]], [[1.0]])
        >>> p = gpu_impl.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])
        >>> out = gpu_impl.speculative_sample(q, p, 1000, torch.Generator().manual_seed(0))
        >>> tuple(out.samples.shape), out.accepted.dtype
        ((1000, 1), torch.bool)
    """
    check_pair(draft, target)
    n = require_int(n, "n")
    device, ct = target.device, target.compute_dtype
    generator = require_generator(generator, device)
    method = resolve_residual_method(residual, draft, target)
    max_trials = require_int(max_trials, "max_trials", minimum=1)
    for name, dist in (("draft", draft), ("target", target)):
        require_batch_shape(dist.batch_shape, name, n)
    u_c = torch.rand(n, generator=generator, device=device, dtype=ct)
    z = torch.randn((n, target.dim), generator=generator, device=device, dtype=ct)
    u_acc = torch.rand(n, generator=generator, device=device, dtype=ct)
    x = draft.sample_from_noise_unchecked(u_c, z)
    accepted = accept_from_uniforms(log_acceptance_ratio(draft, target, x), u_acc)
    noise = ResidualNoiseGenerator(generator, target.dim, device=device, dtype=ct)
    return _resolve_rejections(draft, target, x, accepted, method, noise, max_trials)
