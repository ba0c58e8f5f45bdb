"""The residual stage of speculative sampling over batched tensors (docs/algorithms.md §3.3,
§3.4, §7).

The PyTorch counterpart of ``cspd_ref.residual``. A rejected row is resampled from the residual
``r = (p - q)^+ / TV`` without computing TV: propose ``y ~ p`` and accept iff
``u' < -expm1(min(0, log q(y) - log p(y))) = (1 - q/p)^+``; the number of proposals is
Geometric(TV).

* ``"loop"``: the sequential loop's schedule, one proposal per pending row per round,
  vectorised over the rows (same law and, on the same noise, same values as ``cspd_ref``).
* ``"batched"``: each round every still-pending row draws ``k`` proposals (``k`` doubles from
  round to round) and keeps the **first** success in index order; finished rows leave the
  pending set (the set is compacted, no loop over the full batch). The chosen value and trial
  count have exactly the law of the sequential loop and, on the same noise, the same values as
  ``cspd_ref``'s loop and batched samplers.
* ``"reflection"``: single Gaussians with equal diagonal scale ``S``: a rejected ``x`` maps to
  ``mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)``, ``e = S^{-1}(mu_p - mu_q) / ||.||`` (maximal
  reflection coupling), exact in one pass.

The proposals come from a ``ResidualNoise`` stream (docs/noise.md §1, "The residual stream"):
``ResidualNoiseArrays`` (row ``i``'s ``j``-th proposal uses ``arrays[i, j]``, exactly as
``cspd_ref.residual.ResidualNoiseArrays``) or ``ResidualNoiseGenerator`` (a
``torch.Generator``). A safety cap on proposals per row raises ``ResidualBudgetExceeded`` (the
class of ``cspd_ref.residual``, re-exported: one exception for both packages) naming the
unfinished rows in a NumPy array; no value is ever substituted (docs/algorithms.md §3.4).

Host synchronisation: the residual stage has data-dependent shapes (two synchronisations per
batched round); the reflection map is synchronisation-free.

Twin module: ``cspd_ref.residual`` (same public names, same order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from cspd_ref.residual import ResidualBudgetExceeded
from gpu_impl.distributions import GaussianMixture
from gpu_impl.validation import (
    as_tensor,
    compute_dtype,
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

__all__ = [  # noqa: RUF022 (definition order, the same in the twin module)
    "ResidualMethod",
    "RESIDUAL_METHODS",
    "DEFAULT_MAX_TRIALS",
    "FIRST_ROUND_SIZE",
    "ROUND_ELEMENT_BUDGET",
    "ResidualBudgetExceeded",  # re-exported: cspd_ref.residual's class, one for both packages
    "residual_acceptance_from_log_ratio",
    "residual_acceptance_probability",
    "ResidualNoise",
    "ResidualNoiseArrays",
    "ResidualNoiseGenerator",
    "require_noise_stream",
    "RowSubsetNoise",
    "global_rows",
    "ProposalFn",
    "first_success_residual_loop",
    "first_success_residual_batched",
    "rows_of",
    "token_proposal_fn",
    "residual_sample_loop",
    "residual_sample_batched",
    "equal_scale_gaussians",
    "reflection_map",
    "residual_sample_reflection",
    "resolve_residual_method",
]


# --------------------------------------------------------------------- the residual test
def residual_acceptance_from_log_ratio(log_q_minus_log_p: Tensor) -> Tensor:
    """``(1 - q(y)/p(y))^+ = -expm1(min(0, log q(y) - log p(y)))`` for a proposal ``y ~ p``,
    from the log-density difference (docs/algorithms.md §3.3)."""
    return -torch.expm1(torch.clamp(log_q_minus_log_p, max=0.0))


def residual_acceptance_probability(log_q: Tensor, log_p: Tensor) -> Tensor:
    """``-expm1(min(0, log q(y) - log p(y)))``: ``r(y) TV / p(y)``, rejection sampling of the
    residual ``r`` from ``p`` with bound ``1/TV`` (docs/algorithms.md §3.3)."""
    return residual_acceptance_from_log_ratio(log_q - log_p)


# --------------------------------------------------------------------- residual noise streams
class ResidualNoise(Protocol):
    """A per-row stream of residual-proposal noise (docs/noise.md §1).

    ``take(rows, start, k)`` returns items ``start .. start + k - 1`` of each listed row's own
    stream: component uniforms ``(m, k)``, standard normals ``(m, k, D)``, acceptance uniforms
    ``(m, k)`` (``m = len(rows)``); it may return fewer than ``k`` when a finite stream runs
    short. ``cspd_ref`` passes ``start`` the same way, so the two read identical positions.
    """

    def take(self, rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]: ...


class ResidualNoiseArrays:
    """A finite, explicit residual noise stream: row ``i``'s ``j``-th proposal uses
    ``component_uniforms[i, j]``, ``normals[i, j]`` and ``accept_uniforms[i, j]``
    (as ``cspd_ref.residual.ResidualNoiseArrays``).

    Feeding the same arrays to the loop and to the batched sampler gives identical results.
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
    uniforms ``(m, k)`` — fresh draws, so ``start`` is not needed (the order of
    ``cspd_ref.residual.ResidualNoiseGenerator``).
    """

    def __init__(self, dim: int, *, generator: torch.Generator,
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


class RowSubsetNoise:
    """View of a residual noise stream in which local row ``i`` is global row ``rows[i]``."""

    def __init__(self, noise: ResidualNoise, rows: Tensor) -> None:
        self.noise = noise
        self.rows = rows

    def take(self, rows: Tensor, start: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.noise.take(self.rows[rows], start, k)


@contextmanager
def global_rows(rows: Tensor) -> Iterator[None]:
    """Re-raise ``ResidualBudgetExceeded`` with the caller's row numbers: the engine numbers
    the rows it resamples ``0 .. m-1``; ``rows`` maps them back to the full batch."""
    try:
        yield
    except ResidualBudgetExceeded as exc:
        mapped = rows.detach().cpu().numpy()[exc.unfinished_rows]
        raise ResidualBudgetExceeded(mapped, exc.max_trials) from None


# --------------------------------------------------------------------- first-success engines
ProposalFn = Callable[[Tensor, int, int], tuple[Tensor, Tensor, Tensor]]
"""``propose(rows, start, k) -> (values (m, k, *event), log_q - log_p (m, k), accept_u (m, k))``:
proposals ``start .. start + k - 1`` (or fewer) from the target for each listed (local) row,
with the log-density difference ``log q(y) - log p(y)`` that the residual test needs.

Three values in both packages: the test ``u' < -expm1(min(0, log q - log p))`` reads only the
difference, and a proposal that knows the log-ratio directly (a joint trajectory,
docs/algorithms.md §4) need not split it into two densities."""


def first_success_residual_loop(n_rows: int, event_shape: tuple[int, ...],
                                propose: ProposalFn, *, device: torch.device | str,
                                dtype: torch.dtype, max_trials: int = DEFAULT_MAX_TRIALS,
                                ) -> tuple[Tensor, Tensor]:
    """The sequential loop's schedule (docs/algorithms.md §3.3): one proposal per pending row
    per round, until each row succeeds (vectorised over rows; same law and, on the same stream,
    same values as ``cspd_ref.residual.first_success_residual_loop``).

    Returns:
        ``(values (n_rows, *event), trials (n_rows,) int64)``.

    Raises:
        ResidualBudgetExceeded: if a row has no success within ``max_trials`` proposals (or its
            finite noise stream ends first). No value is ever substituted.
    """
    return first_success_residual_batched(n_rows, event_shape, propose, device=device,
                                          dtype=dtype, max_trials=max_trials,
                                          first_round_size=1, doubling=False)


def first_success_residual_batched(n_rows: int, event_shape: tuple[int, ...],
                                   propose: ProposalFn, *, device: torch.device | str,
                                   dtype: torch.dtype, max_trials: int = DEFAULT_MAX_TRIALS,
                                   first_round_size: int = FIRST_ROUND_SIZE,
                                   doubling: bool = True, noise_per_proposal: int | None = None,
                                   ) -> tuple[Tensor, Tensor]:
    """Batched residual rejection sampling with first-success selection (docs/algorithms.md
    §3.3).

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
        raise ResidualBudgetExceeded(pending.cpu().numpy(), used)
    return values, trials


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
        device = target.device
        y = p_rows.sample_from_noise_unchecked(comp_u.to(device), normals.to(device))
        log_q_minus_log_p = q_rows.log_prob_unchecked(y) - p_rows.log_prob_unchecked(y)
        return y, log_q_minus_log_p, accept_u.to(device)

    return propose


def residual_sample_loop(draft: GaussianMixture, target: GaussianMixture, n_rows: int,
                         noise: ResidualNoise, *, max_trials: int = DEFAULT_MAX_TRIALS,
                         ) -> tuple[Tensor, Tensor]:
    """Residual ``r = (p - q)^+ / TV`` by the sequential loop's schedule (one proposal per row
    per round): propose ``y ~ p``, accept iff ``u' < -expm1(min(0, log q(y) - log p(y)))``
    (docs/algorithms.md §3.3). Returns ``(values, trials)``."""
    return first_success_residual_loop(n_rows, (target.dim,),
                                       token_proposal_fn(draft, target, noise),
                                       device=target.device, dtype=target.dtype,
                                       max_trials=max_trials)


def residual_sample_batched(draft: GaussianMixture, target: GaussianMixture, n_rows: int,
                            noise: ResidualNoise, *, max_trials: int = DEFAULT_MAX_TRIALS,
                            ) -> tuple[Tensor, Tensor]:
    """Residual by batched proposals with first success in index order (docs/algorithms.md
    §3.3): the same law as ``residual_sample_loop`` and, on the same noise, the same values."""
    return first_success_residual_batched(n_rows, (target.dim,),
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
    """The reflection coupling ``y = mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)``
    (docs/algorithms.md §3.3).

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


def resolve_residual_method(residual: str, draft: GaussianMixture,
                            target: GaussianMixture) -> str:
    """Map ``"auto"`` to ``"reflection"`` (single Gaussians, equal scales) or ``"batched"``
    (docs/algorithms.md §3.3); check that ``"reflection"`` applies."""
    if not isinstance(residual, str) or residual not in RESIDUAL_METHODS:
        raise ValueError(f"residual: expected one of {RESIDUAL_METHODS}, got {residual!r}")
    if residual == "auto":
        return "reflection" if equal_scale_gaussians(draft, target) else "batched"
    if residual == "reflection" and not equal_scale_gaussians(draft, target):
        raise ValueError("residual: 'reflection' needs single Gaussians (K = 1) with equal "
                         "scales for draft and target")
    return residual
