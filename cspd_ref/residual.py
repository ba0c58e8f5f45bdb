"""The residual stage of speculative sampling (docs/algorithms.md §3.3, §3.4), float64 reference.

A rejected row is resampled from the residual ``r = (p - q)^+ / TV`` without computing TV:
propose ``y ~ p`` and accept it iff ``u' < -expm1(min(0, log q(y) - log p(y))) = (1 - q/p)^+``.
Since ``r / p <= 1 / TV`` this is rejection sampling with bound ``1/TV``; each trial succeeds
with probability TV, so the number of trials is Geometric(TV) (proofs/test_residual_bounded).

* ``residual_sample_loop``: each row proposes one at a time until it succeeds.
* ``residual_sample_batched``: every still-pending row draws ``k`` proposals per round and
  keeps the *first* success in index order — the same law as the loop; on the same proposal
  stream the two return identical values.
* ``residual_sample_reflection``: single Gaussians with equal diagonal scale ``S``: the
  rejected draft maps to ``mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)`` (maximal reflection
  coupling), exact in one pass.

The proposals come from a ``ResidualNoise`` stream (docs/noise.md §1, "The residual stream"):
``ResidualNoiseArrays`` (explicit, finite) or ``ResidualNoiseGenerator`` (a
``numpy.random.Generator``). A safety cap exists only to stop a runaway loop: it raises
``ResidualBudgetExceeded``; it never substitutes a value (a fallback value is biased, see
``proofs/test_nonexact_variants``).

Twin module: ``gpu_impl.residual`` (same public names, same order; ``ResidualBudgetExceeded``
is this class, re-exported there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.distributions import GaussianMixture
from cspd_ref.validation import (
    FloatArray,
    IntArray,
    as_float64,
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
"""Proposals per pending row in the first batched round (then doubling)."""

ROUND_ELEMENT_BUDGET = 1 << 22
"""Upper bound on proposal floats drawn in one batched round (memory, not law)."""

__all__ = [  # noqa: RUF022 (definition order, the same in the twin module)
    "ResidualMethod",
    "RESIDUAL_METHODS",
    "DEFAULT_MAX_TRIALS",
    "FIRST_ROUND_SIZE",
    "ROUND_ELEMENT_BUDGET",
    "ResidualBudgetExceeded",
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


class ResidualBudgetExceeded(RuntimeError):
    """Raised when rows are still unfinished after the safety cap of residual proposals
    (docs/algorithms.md §3.4).

    The one class for both packages: ``gpu_impl`` raises and re-exports this class, so
    ``except cspd_ref.ResidualBudgetExceeded`` also catches ``gpu_impl``'s.

    Attributes:
        unfinished_rows: int64 NumPy array of the rows that had no accepted residual proposal,
            numbered as in the caller's batch (``gpu_impl`` converts its tensors with
            ``.cpu().numpy()``).
        max_trials: the number of proposals each of them examined.
    """

    def __init__(self, unfinished_rows: ArrayLike, max_trials: int) -> None:
        self.unfinished_rows: IntArray = np.asarray(unfinished_rows, dtype=np.int64).reshape(-1)
        self.max_trials = int(max_trials)
        count = int(self.unfinished_rows.size)
        shown = self.unfinished_rows[:10].tolist()
        super().__init__(
            f"{count} row(s) unfinished after {self.max_trials} residual proposals each "
            f"(rows {shown}{'...' if count > 10 else ''}); no value was substituted. "
            "TV(p, q) is probably tiny for these rows: raise max_trials or use "
            "residual='reflection' where the scales are equal."
        )


# --------------------------------------------------------------------- the residual test
def residual_acceptance_from_log_ratio(log_q_minus_log_p: ArrayLike) -> FloatArray:
    """``(1 - q(y)/p(y))^+ = -expm1(min(0, log q(y) - log p(y)))`` for a proposal ``y ~ p``,
    from the log-density difference (docs/algorithms.md §3.3)."""
    return -np.expm1(np.minimum(0.0, np.asarray(log_q_minus_log_p, dtype=np.float64)))


def residual_acceptance_probability(log_q: ArrayLike, log_p: ArrayLike) -> FloatArray:
    """``-expm1(min(0, log q(y) - log p(y)))``: ``r(y) TV / p(y)``, rejection sampling of the
    residual ``r`` from ``p`` with bound ``1/TV`` (docs/algorithms.md §3.3)."""
    return residual_acceptance_from_log_ratio(
        np.asarray(log_q, dtype=np.float64) - np.asarray(log_p, dtype=np.float64))


# --------------------------------------------------------------------- residual noise streams
class ResidualNoise(Protocol):
    """A per-row stream of residual-proposal noise (docs/noise.md §1).

    ``take(rows, start, k)`` returns items ``start .. start + k - 1`` of each listed row's own
    stream: component uniforms ``(m, k)``, standard normals ``(m, k, D)``, acceptance uniforms
    ``(m, k)`` (``m = len(rows)``); a finite stream returns fewer than ``k`` near its end. The
    caller tracks the position (the engines keep every listed row at the same ``start``), so a
    stream holds no state and can be reused (as ``gpu_impl.residual.ResidualNoise``).
    """

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]: ...


class ResidualNoiseArrays:
    """A finite, explicit residual noise stream: row ``i``'s ``j``-th proposal uses
    ``component_uniforms[i, j]``, ``normals[i, j]`` and ``accept_uniforms[i, j]``
    (as ``gpu_impl.residual.ResidualNoiseArrays``).

    Feeding the same arrays to the loop and to the batched sampler gives identical results.
    Its length ``M`` acts as a cap: a row with no success among its ``M`` proposals raises
    ``ResidualBudgetExceeded``. Stateless: the same object can feed several calls.

    Args:
        component_uniforms: ``(N, M)`` in [0, 1).
        normals: ``(N, M, D)`` finite.
        accept_uniforms: ``(N, M)`` in [0, 1).
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

    @property
    def dim(self) -> int:
        """Size D of each item's normal vector."""
        return int(self.normals.shape[2])

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        k = max(0, min(k, self.length - start))
        cols = start + np.arange(k)[None, :]
        r = rows[:, None]
        return (self.component_uniforms[r, cols], self.normals[r, cols],
                self.accept_uniforms[r, cols])


class ResidualNoiseGenerator:
    """An unbounded residual noise stream drawn on demand from a ``numpy.random.Generator``.

    Per call: component uniforms ``(m, k)``, then normals ``(m, k, dim)``, then acceptance
    uniforms ``(m, k)`` — fresh draws, so ``start`` is not needed (the order of
    ``gpu_impl.residual.ResidualNoiseGenerator``).
    """

    def __init__(self, dim: int, *, rng: np.random.Generator) -> None:
        self.rng = require_generator(rng)
        self.dim = require_int(dim, "dim", minimum=1)

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        m = rows.size
        return (self.rng.random((m, k)), self.rng.standard_normal((m, k, self.dim)),
                self.rng.random((m, k)))


def require_noise_stream(value: Any, name: str = "residual_noise") -> ResidualNoise:
    """Raise unless ``value`` is a residual noise stream (an object with ``take(rows, start, k)``;
    raw arrays are refused: wrap them in ``ResidualNoiseArrays``)."""
    if (value is None or isinstance(value, np.ndarray | list | tuple)
            or not callable(getattr(value, "take", None))):
        raise ValueError(f"{name}: expected a ResidualNoise stream (ResidualNoiseArrays or "
                         f"ResidualNoiseGenerator), got {type(value).__name__}")
    return value


class RowSubsetNoise:
    """View of a residual noise stream in which local row ``i`` is global row ``rows[i]``."""

    def __init__(self, noise: ResidualNoise, rows: IntArray) -> None:
        self.noise = noise
        self.rows = rows

    def take(self, rows: IntArray, start: int,
             k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        return self.noise.take(self.rows[rows], start, k)


@contextmanager
def global_rows(rows: IntArray) -> Iterator[None]:
    """Re-raise ``ResidualBudgetExceeded`` with the caller's row numbers: the engine numbers
    the rows it resamples ``0 .. m-1``; ``rows`` maps them back to the full batch."""
    try:
        yield
    except ResidualBudgetExceeded as exc:
        raise ResidualBudgetExceeded(np.asarray(rows)[exc.unfinished_rows],
                                     exc.max_trials) from None


# --------------------------------------------------------------------- first-success engines
ProposalFn = Callable[[IntArray, int, int], tuple[FloatArray, FloatArray, FloatArray]]
"""``propose(rows, start, k) -> (values (m, k, *event), log_q - log_p (m, k), accept_u (m, k))``:
proposals ``start .. start + k - 1`` (or fewer) from the target for each listed (local) row,
with the log-density difference ``log q(y) - log p(y)`` that the residual test needs.

Three values in both packages: the test ``u' < -expm1(min(0, log q - log p))`` reads only the
difference, and a proposal that knows the log-ratio directly (a joint trajectory,
docs/algorithms.md §4) need not split it into two densities."""


def first_success_residual_loop(n_rows: int, event_shape: tuple[int, ...], propose: ProposalFn,
                                *, max_trials: int = DEFAULT_MAX_TRIALS,
                                ) -> tuple[FloatArray, IntArray]:
    """Sequential residual rejection sampling (docs/algorithms.md §3.3): each row proposes one
    value at a time until ``u' < (1 - q/p)^+``.

    Returns:
        ``(values (n_rows, *event), trials (n_rows,) int64)``.

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
            proposal, log_q_minus_log_p, accept_u = propose(rows, int(trials[row]), 1)
            if proposal.shape[1] == 0:
                unfinished.append(row)
                break
            trials[row] += 1
            if accept_u[0, 0] < residual_acceptance_from_log_ratio(log_q_minus_log_p[0, 0]):
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
    """Batched residual rejection sampling with first-success selection (docs/algorithms.md
    §3.3).

    Each round, every pending row draws ``k`` proposals (``k`` doubles each round, bounded by
    ``ROUND_ELEMENT_BUDGET`` and by ``max_trials``) and keeps the first success
    ``u' < (1 - q/p)^+`` in index order; rows with none stay pending. The value and the trial
    count (the global 1-based index of the first success) have exactly the law of
    ``first_success_residual_loop`` and, on the same proposal stream, its values.

    Returns:
        ``(values (n_rows, *event), trials (n_rows,) int64)``.

    Raises:
        ResidualBudgetExceeded: rows still pending after ``max_trials`` proposals (or when a
            finite stream ends). No value is ever substituted.
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
        proposal, log_q_minus_log_p, accept_u = propose(pending, used, k_round)
        drawn = proposal.shape[1]
        if drawn == 0:
            break
        success = accept_u < residual_acceptance_from_log_ratio(log_q_minus_log_p)
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
    """Proposals ``y ~ p`` for the residual of tokens, scored by ``log q(y) - log p(y)``."""

    def propose(rows: IntArray, start: int,
                k: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        comp_u, normals, accept_u = noise.take(rows, start, k)
        if normals.shape[-1] != target.dim:
            raise ValueError(f"residual_noise: items must hold d = {target.dim} normals, got "
                             f"{normals.shape[-1]}")
        p_rows = rows_of(target, rows)
        y = p_rows.sample_from_noise(comp_u, normals)
        return y, rows_of(draft, rows).log_prob(y) - p_rows.log_prob(y), accept_u

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
    """The reflection coupling ``y = mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)``
    (docs/algorithms.md §3.3).

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


def resolve_residual_method(residual: str, draft: GaussianMixture, target: GaussianMixture) -> str:
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
