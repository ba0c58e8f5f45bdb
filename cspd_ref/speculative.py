"""Exact speculative sampling of one continuous token (docs/algorithms.md §3), float64 reference.

Draft ``q``, target ``p`` (``GaussianMixture``\\ s, batch shape ``()`` or ``(n,)``).

1. Draw ``x ~ q`` and accept iff ``log u < log p(x) - log q(x)`` with ``u ~ U[0, 1)``.
   ``P(accept) = ∫ q min(1, p/q) = 1 - TV(p, q)``.
2. On rejection draw from the residual ``r = (p - q)^+ / TV`` without computing TV: propose
   ``y ~ p`` and accept it iff ``u' < -expm1(min(0, log q(y) - log p(y))) = (1 - q/p)^+``.
   Since ``r / p <= 1 / TV`` this is rejection sampling with bound ``1/TV``; each trial succeeds
   with probability TV, so the number of trials is Geometric(TV) (proofs/test_residual_bounded).

   * ``residual_sample_loop``: each row proposes one at a time until it succeeds.
   * ``residual_sample_batched``: every still-pending row draws ``k`` proposals per round and
     keeps the *first* success in index order — the same law as the loop; on the same proposal
     stream the two return identical values.
   * ``residual_sample_reflection``: single Gaussians with equal diagonal scale ``S``: the
     rejected draft maps to ``mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)`` (maximal reflection
     coupling), exact in one pass.

A safety cap exists only to stop a runaway loop: it raises ``ResidualBudgetExceeded``; it
never substitutes a value (a fallback value is biased, see ``proofs/test_nonexact_variants``).

Randomness is explicit: ``*_from_noise`` functions are pure functions of their noise arrays, and
``speculative_sample`` draws that noise from a ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.distributions import (
    GaussianMixture,
    require_mixture,
    require_same_event,
)
from cspd_ref.validation import (
    BoolArray,
    FloatArray,
    IntArray,
    as_float64,
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
ROUND_ELEMENT_BUDGET = 1 << 22
"""Upper bound on proposal floats drawn in one batched round (memory, not law)."""


class ResidualBudgetExceeded(RuntimeError):
    """Raised when rows are still unfinished after the safety cap of residual proposals.

    Attributes:
        unfinished_rows: indices of the rows that had no accepted residual proposal.
        max_trials: the cap that was reached.
    """

    def __init__(self, unfinished_rows: IntArray, max_trials: int) -> None:
        self.unfinished_rows = np.asarray(unfinished_rows)
        self.max_trials = max_trials
        super().__init__(
            f"{self.unfinished_rows.size} row(s) unfinished after {max_trials} residual proposals "
            f"each (first rows {self.unfinished_rows[:10].tolist()}); "
            "no value was substituted. TV(p, q) is probably tiny for these rows: raise max_trials "
            "or use residual='reflection' where the scales are equal."
        )


@dataclass(frozen=True)
class SpeculativeResult:
    """Output of a speculative sampler (docs/algorithms.md §3.5).

    Attributes:
        samples: ``(n, d)`` float64 samples, distributed exactly as the target.
        accepted: ``(n,)`` bool, True where the draft was accepted.
        trials: ``(n,)`` int64, residual proposals examined up to and including the accepted one
            (0 for accepted rows and for the reflection residual, which needs no proposals).
    """

    samples: FloatArray
    accepted: BoolArray
    trials: IntArray


# --------------------------------------------------------------------- the acceptance test
def log_acceptance_ratio(draft: GaussianMixture, target: GaussianMixture,
                         x: ArrayLike) -> FloatArray:
    """``log p(x) - log q(x)``, formed from log-densities (never from densities)."""
    return target.log_prob(x) - draft.log_prob(x)


def accept_from_uniforms(log_ratio: ArrayLike, uniforms: ArrayLike) -> BoolArray:
    """Accept iff ``log u < log p(x) - log q(x)``, i.e. with probability ``min(1, p/q)``.

    ``u == 0`` gives ``log u = -inf`` and is accepted (a null event).
    """
    lr = np.asarray(log_ratio, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_u = np.log(np.asarray(uniforms, dtype=np.float64))
    return np.asarray(log_u < lr)


def residual_acceptance_probability(log_q: ArrayLike, log_p: ArrayLike) -> FloatArray:
    """``(1 - q(y)/p(y))^+ = -expm1(min(0, log q(y) - log p(y)))`` for a proposal ``y ~ p``.

    This is ``r(y) TV / p(y)``: rejection sampling of ``r`` from ``p`` with bound ``1/TV``.
    """
    diff = np.asarray(log_q, dtype=np.float64) - np.asarray(log_p, dtype=np.float64)
    return -np.expm1(np.minimum(0.0, diff))


# --------------------------------------------------------------------- residual noise streams
class ResidualNoise(Protocol):
    """A per-row stream of residual-proposal noise.

    ``take(rows, start, k)`` returns items ``start .. start + k - 1`` of each listed row's own
    stream: component uniforms ``(m, k)``, standard normals ``(m, k, d)``, acceptance uniforms
    ``(m, k)`` (``m = len(rows)``); a finite stream returns fewer than ``k`` near its end. The
    caller tracks the position (the engines keep every listed row at the same ``start``), so a
    stream holds no state and can be reused (as ``gpu_impl.speculative.ResidualNoise``).
    """

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]: ...


class ResidualNoiseArrays:
    """A finite, explicit residual noise stream: row ``i``'s j-th proposal uses
    ``component_uniforms[i, j]``, ``normals[i, j]`` and ``accept_uniforms[i, j]``.

    Feeding the same arrays to the loop and to the batched sampler gives identical results.
    Its length ``M`` acts as a cap: a row with no success among its ``M`` proposals raises.
    """

    def __init__(self, component_uniforms: ArrayLike, normals: ArrayLike,
                 accept_uniforms: ArrayLike) -> None:
        self.component_uniforms = require_half_open_unit_interval(
            as_float64(component_uniforms, "component_uniforms", ndim=2), "component_uniforms")
        n, m = self.component_uniforms.shape
        self.normals = as_float64(normals, "normals", ndim=3)
        if self.normals.shape[:2] != (n, m):
            raise ValueError(f"normals: expected shape ({n}, {m}, d), got {self.normals.shape}")
        self.accept_uniforms = require_half_open_unit_interval(
            require_shape(as_float64(accept_uniforms, "accept_uniforms", ndim=2), (n, m),
                          "accept_uniforms"), "accept_uniforms")

    @property
    def length(self) -> int:
        """Number of proposals available per row."""
        return int(self.component_uniforms.shape[1])

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        k = max(0, min(k, self.length - start))
        cols = start + np.arange(k)[None, :]
        r = rows[:, None]
        return (self.component_uniforms[r, cols], self.normals[r, cols],
                self.accept_uniforms[r, cols])


class ResidualNoiseGenerator:
    """An unbounded residual noise stream drawn on demand from a ``numpy.random.Generator``.

    Per call: component uniforms, then normals, then acceptance uniforms — fresh draws, so
    ``start`` is not needed.
    """

    def __init__(self, rng: np.random.Generator, dim: int) -> None:
        self.rng = require_generator(rng)
        self.dim = require_int(dim, "dim", minimum=1)

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        m = rows.size
        return (self.rng.random((m, k)), self.rng.standard_normal((m, k, self.dim)),
                self.rng.random((m, k)))


# --------------------------------------------------------------------- first-success engine
ProposalFn = Callable[[IntArray, int, int],
                      tuple[FloatArray, FloatArray, FloatArray, FloatArray]]
"""``propose(rows, start, k) -> (values (m, k, *event), log_q (m, k), log_p (m, k),
accept_u (m, k))``: proposals ``start .. start + k - 1`` (or fewer) from the target for each
listed row, scored by both densities."""


def first_success_residual_loop(n_rows: int, event_shape: tuple[int, ...], propose: ProposalFn,
                                *, max_trials: int = DEFAULT_MAX_TRIALS,
                                ) -> tuple[FloatArray, IntArray]:
    """Sequential residual rejection sampling: each row proposes one value at a time until
    ``u' < (1 - q/p)^+``. Returns ``(values (n_rows, *event), trials (n_rows,))``.

    Raises:
        ResidualBudgetExceeded: if a row has no success within ``max_trials`` proposals (or its
            finite noise stream ends first). No value is ever substituted.
    """
    values = np.zeros((n_rows, *event_shape))
    trials = np.zeros(n_rows, dtype=np.int64)
    unfinished: list[int] = []
    for row in range(n_rows):
        rows = np.array([row])
        while True:
            if trials[row] >= max_trials:
                unfinished.append(row)
                break
            proposal, log_q, log_p, accept_u = propose(rows, int(trials[row]), 1)
            if proposal.shape[1] == 0:
                unfinished.append(row)
                break
            trials[row] += 1
            if accept_u[0, 0] < residual_acceptance_probability(log_q[0, 0], log_p[0, 0]):
                values[row] = proposal[0, 0]
                break
    if unfinished:
        raise ResidualBudgetExceeded(np.array(unfinished), int(trials[unfinished].max()))
    return values, trials


def first_success_residual_batched(n_rows: int, event_shape: tuple[int, ...],
                                   propose: ProposalFn, *,
                                   max_trials: int = DEFAULT_MAX_TRIALS,
                                   first_round_size: int = FIRST_ROUND_SIZE,
                                   ) -> tuple[FloatArray, IntArray]:
    """Batched residual rejection sampling with first-success selection.

    Each round, every pending row draws ``k`` proposals (``k`` doubles each round, bounded by a
    memory budget and by ``max_trials``) and keeps the first success in index order; rows with
    none stay pending. The selected value and the trial count (global index of the first
    success, 1-based) have exactly the law of ``first_success_residual_loop``, and on the same
    proposal stream the same values.

    Raises:
        ResidualBudgetExceeded: rows still pending after ``max_trials`` proposals.
    """
    values = np.zeros((n_rows, *event_shape))
    trials = np.zeros(n_rows, dtype=np.int64)
    pending = np.arange(n_rows)
    used = 0
    k = first_round_size
    event_size = int(np.prod(event_shape, dtype=np.int64)) if event_shape else 1
    while pending.size and used < max_trials:
        per_row_budget = max(1, ROUND_ELEMENT_BUDGET // (pending.size * event_size))
        k_round = int(min(k, max_trials - used, per_row_budget))
        proposal, log_q, log_p, accept_u = propose(pending, used, k_round)
        drawn = proposal.shape[1]
        if drawn == 0:
            break
        success = accept_u < residual_acceptance_probability(log_q, log_p)
        done = success.any(axis=1)
        first = np.argmax(success, axis=1)
        finished_rows = pending[done]
        values[finished_rows] = proposal[done, first[done]]
        trials[finished_rows] = used + first[done] + 1
        pending = pending[~done]
        used += drawn
        k *= 2
    if pending.size:
        raise ResidualBudgetExceeded(pending, used)
    return values, trials


# --------------------------------------------------------------------- token residual samplers
def rows_of(mixture: GaussianMixture, rows: IntArray) -> GaussianMixture:
    """The mixture(s) for ``rows``, shaped to broadcast against ``(len(rows), k)`` proposals."""
    if mixture.batch_shape == ():
        return mixture
    return mixture.index_batch(rows[:, None])


def token_proposal_fn(draft: GaussianMixture, target: GaussianMixture,
                      noise: ResidualNoise) -> ProposalFn:
    """Proposals ``y ~ p`` for residual sampling of tokens, scored by ``log q`` and ``log p``."""

    def propose(rows: IntArray, start: int,
                k: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        comp_u, normals, accept_u = noise.take(rows, start, k)
        p_rows = rows_of(target, rows)
        y = p_rows.sample_from_noise(comp_u, normals)
        return y, rows_of(draft, rows).log_prob(y), p_rows.log_prob(y), accept_u

    return propose


def residual_sample_loop(draft: GaussianMixture, target: GaussianMixture, n_rows: int,
                         noise: ResidualNoise, *, max_trials: int = DEFAULT_MAX_TRIALS,
                         ) -> tuple[FloatArray, IntArray]:
    """Residual ``r = (p - q)^+ / TV`` by the sequential loop: propose ``y ~ p``, accept iff
    ``u' < -expm1(min(0, log q(y) - log p(y)))`` (docs/algorithms.md §3.3). Returns
    ``(values, trials)``."""
    return first_success_residual_loop(n_rows, (target.dim,),
                                       token_proposal_fn(draft, target, noise),
                                       max_trials=max_trials)


def residual_sample_batched(draft: GaussianMixture, target: GaussianMixture, n_rows: int,
                            noise: ResidualNoise, *, max_trials: int = DEFAULT_MAX_TRIALS,
                            ) -> tuple[FloatArray, IntArray]:
    """Residual by batched proposals with first success in index order (docs/algorithms.md
    §3.3): the same law as ``residual_sample_loop`` and, on the same noise, the same values."""
    return first_success_residual_batched(n_rows, (target.dim,),
                                          token_proposal_fn(draft, target, noise),
                                          max_trials=max_trials)


def equal_scale_gaussians(draft: GaussianMixture, target: GaussianMixture) -> bool:
    """True when both are single Gaussians (K = 1) with identical diagonal scales."""
    if not (draft.is_single_gaussian and target.is_single_gaussian):
        return False
    try:
        q_scale, p_scale = np.broadcast_arrays(draft.scales, target.scales)
    except ValueError:
        return False
    return bool(np.array_equal(q_scale, p_scale))


def reflection_map(x: ArrayLike, mean_draft: ArrayLike, mean_target: ArrayLike,
                   scale: ArrayLike) -> FloatArray:
    """The reflection coupling ``y = mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)``.

    ``e = S^{-1}(mu_p - mu_q) / ||S^{-1}(mu_p - mu_q)||``. In whitened coordinates it is the
    reflection through the hyperplane bisecting the two means: an isometry sending
    ``N(mu_q, S^2)`` to ``N(mu_p, S^2)`` and ``{q > p}`` onto ``{p > q}``
    (proofs/test_reflection_coupling). Where ``mu_p == mu_q`` it returns ``x`` unchanged (such a
    row is never rejected). All arguments broadcast over leading axes; the last axis is d.
    """
    x = np.asarray(x, dtype=np.float64)
    mu_q = np.asarray(mean_draft, dtype=np.float64)
    mu_p = np.asarray(mean_target, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    direction = (mu_p - mu_q) / s
    norm = np.linalg.norm(direction, axis=-1, keepdims=True)
    e = np.divide(direction, norm, out=np.zeros_like(direction), where=norm > 0)
    w = (x - mu_q) / s
    reflected = w - 2.0 * np.sum(w * e, axis=-1, keepdims=True) * e
    y = mu_p + s * reflected
    return np.where(norm > 0, y, x)


def residual_sample_reflection(draft: GaussianMixture, target: GaussianMixture,
                               rejected_drafts: ArrayLike, rows: IntArray | None = None,
                               ) -> FloatArray:
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
    x = np.asarray(rejected_drafts, dtype=np.float64)
    q = draft.index_batch(rows) if rows is not None and draft.batch_shape != () else draft
    p = target.index_batch(rows) if rows is not None and target.batch_shape != () else target
    return reflection_map(x, q.means[..., 0, :], p.means[..., 0, :], p.scales[..., 0, :])


# --------------------------------------------------------------------- the whole sampler
def resolve_residual_method(residual: str, draft: GaussianMixture, target: GaussianMixture) -> str:
    """Map ``"auto"`` to ``"reflection"`` (single Gaussians, equal scales) or ``"batched"``."""
    if residual not in RESIDUAL_METHODS:
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
    draft_component_uniforms: ArrayLike,
    draft_normals: ArrayLike,
    accept_uniforms: ArrayLike,
    residual_noise: ResidualNoise,
    *,
    residual: str = "auto",
    max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Speculative sampling as a pure function of its noise (docs/noise.md §1).

    ``x = draft.sample_from_noise(draft_component_uniforms, draft_normals)``; accept iff
    ``log u < log p(x) - log q(x)``; rejected rows are resampled from ``(p - q)^+ / TV`` by the
    chosen residual method, drawing proposals from ``residual_noise`` (unused by reflection).

    Args:
        draft, target: batch shape ``()`` (one distribution for all rows) or ``(n,)``.
        draft_component_uniforms: ``(n,)`` in [0, 1).
        draft_normals: ``(n, d)``.
        accept_uniforms: ``(n,)`` in [0, 1).
        residual_noise: a ``ResidualNoise`` stream (``ResidualNoiseArrays`` or
            ``ResidualNoiseGenerator``).
        residual: ``"auto" | "loop" | "batched" | "reflection"``.
        max_trials: safety cap on residual proposals per row; exceeding it raises.
    """
    check_pair(draft, target)
    method = resolve_residual_method(residual, draft, target)
    max_trials = require_int(max_trials, "max_trials", minimum=1)
    u_c = require_half_open_unit_interval(
        as_float64(draft_component_uniforms, "draft_component_uniforms", ndim=1),
        "draft_component_uniforms")
    n = u_c.shape[0]
    z = require_shape(as_float64(draft_normals, "draft_normals", ndim=2), (n, target.dim),
                      "draft_normals")
    u_acc = require_half_open_unit_interval(
        require_shape(as_float64(accept_uniforms, "accept_uniforms", ndim=1), (n,),
                      "accept_uniforms"), "accept_uniforms")
    for name, dist in (("draft", draft), ("target", target)):
        require_batch_shape(dist.batch_shape, name, n)

    rows = getattr(residual_noise, "component_uniforms", None)
    if rows is not None and rows.shape[0] < n:
        raise ValueError(f"residual_noise: holds {rows.shape[0]} rows, expected at least {n} "
                         "(one per token)")
    x = draft.sample_from_noise(u_c, z)
    return verify_draft_from_noise(draft, target, x, u_acc, residual_noise, method=method,
                                   max_trials=max_trials)


def verify_draft_from_noise(draft: GaussianMixture, target: GaussianMixture, x: FloatArray,
                            accept_uniforms: FloatArray, residual_noise: ResidualNoise, *,
                            method: str, max_trials: int = DEFAULT_MAX_TRIALS,
                            ) -> SpeculativeResult:
    """Accept or resample already-drafted tokens ``x ~ q`` (``(n, d)``): the verification half of
    speculative sampling, used directly by AR decoding where the draft tokens come first.

    ``method`` is a resolved residual method (``"loop" | "batched" | "reflection"``); inputs are
    assumed validated by the caller.
    """
    n = x.shape[0]
    accepted = accept_from_uniforms(log_acceptance_ratio(draft, target, x), accept_uniforms)
    samples = x.copy()
    trials = np.zeros(n, dtype=np.int64)
    rejected = np.flatnonzero(~accepted)
    if rejected.size:
        if method == "reflection":
            samples[rejected] = residual_sample_reflection(draft, target, x[rejected], rejected)
        else:
            sub_draft = draft.index_batch(rejected) if draft.batch_shape else draft
            sub_target = target.index_batch(rejected) if target.batch_shape else target
            sampler = residual_sample_loop if method == "loop" else residual_sample_batched
            stream = RowSubsetNoise(residual_noise, rejected)
            try:
                values, used = sampler(sub_draft, sub_target, rejected.size, stream,
                                       max_trials=max_trials)
            except ResidualBudgetExceeded as exc:
                raise ResidualBudgetExceeded(rejected[exc.unfinished_rows],
                                             exc.max_trials) from None
            samples[rejected] = values
            trials[rejected] = used
    return SpeculativeResult(samples=samples, accepted=accepted, trials=trials)


class RowSubsetNoise:
    """View of a residual noise stream in which local row ``i`` is global row ``rows[i]``."""

    def __init__(self, noise: ResidualNoise, rows: IntArray) -> None:
        self.noise = noise
        self.rows = rows

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        return self.noise.take(self.rows[rows], start, k)


def speculative_sample(draft: GaussianMixture, target: GaussianMixture, n: int,
                       rng: np.random.Generator, *, residual: str = "auto",
                       max_trials: int = DEFAULT_MAX_TRIALS) -> SpeculativeResult:
    """Draw ``n`` tokens whose law is exactly ``target``, speculatively from ``draft``.

    Public API (docs/contract.md). The noise is drawn from ``rng`` in this order: draft component
    uniforms ``(n,)``, draft normals ``(n, d)``, acceptance uniforms ``(n,)``, then residual
    proposals on demand.

    Args:
        draft: the draft distribution ``q`` (batch ``()`` or ``(n,)``).
        target: the target distribution ``p`` (batch ``()`` or ``(n,)``).
        n: number of tokens.
        rng: a ``numpy.random.Generator``.
        residual: ``"auto"`` (reflection for equal-scale single Gaussians, batched otherwise),
            ``"loop"``, ``"batched"`` or ``"reflection"``.
        max_trials: safety cap on residual proposals per row (raises, never substitutes).

    Returns:
        ``SpeculativeResult`` with ``.samples`` ``(n, d)``, ``.accepted`` ``(n,)``, ``.trials``
        ``(n,)``.

    Example:
        >>> import numpy as np, cspd_ref
        >>> q = cspd_ref.GaussianMixture([1.0], [[0.0]], [[1.0]])
        >>> p = cspd_ref.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])
        >>> out = cspd_ref.speculative_sample(q, p, 1000, np.random.default_rng(0))
        >>> out.samples.shape, out.accepted.dtype
        ((1000, 1), dtype('bool'))
    """
    check_pair(draft, target)
    n = require_int(n, "n")
    rng = require_generator(rng)
    u_c = rng.random(n)
    z = rng.standard_normal((n, target.dim))
    u_acc = rng.random(n)
    return speculative_sample_from_noise(draft, target, u_c, z, u_acc,
                                         ResidualNoiseGenerator(rng, target.dim),
                                         residual=residual, max_trials=max_trials)
