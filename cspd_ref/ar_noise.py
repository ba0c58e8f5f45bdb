"""Explicit noise for AR speculative decoding, float64 (docs/algorithms.md §5).

``cspd_ref.ar.ar_speculative_decode_from_noise`` is speculative decoding of MAR-style sequences
(docs/algorithms.md §5.2) as a pure function of an ``ARNoise``: every random number the decoder
reads is an entry of one of eight arrays, addressed by **where it is used in the decoding
process** (sequence, token position, round, draft step, slot), never by the order in which it
would be drawn. The per-sequence decoder of this package and the batched decoder of
``gpu_impl.ar`` therefore read identical values and can be compared sample by sample, and a port
to another framework can be checked against stored vectors.

Layout. ``n`` sequences of ``L`` tokens in ``R^d``, ``G`` groups of at most ``S`` tokens (the
schedule's largest group), draft length ``gamma``, ``R`` residual proposals per token; ``i`` is
the sequence, ``l`` a token position:

================================  =========================  ===================================
field                             shape                      read by
================================  =========================  ===================================
``target_component_uniforms``     ``(n, L)``                 target-alone tokens (pre-fill and
``target_normals``                ``(n, L, d)``              bonus groups), by position
``draft_component_uniforms``      ``(n, G, gamma, S)``       the draft token of round ``r``,
``draft_normals``                 ``(n, G, gamma, S, d)``    step ``j``, slot ``s``
``accept_uniforms``               ``(n, G, gamma, S)``       its acceptance test
``residual_component_uniforms``   ``(n, L, R)``              residual proposals of a rejected
``residual_normals``              ``(n, L, R, d)``           token, by position and proposal
``residual_accept_uniforms``      ``(n, L, R)``              number
================================  =========================  ===================================

How the decoder consumes it (``p`` the target's and ``q`` the draft's conditional of a token;
``sample_from_noise(u, z)`` picks component ``k = #{m < K-1 : u >= W_m}`` by inverse CDF of the
cumulative weights ``W`` and returns ``mu_k + s_k z``, docs/algorithms.md §2):

* **Target-alone tokens.** The first ``ceil(prefill G)`` groups and every bonus group are
  sampled from the target alone: position ``l`` gets
  ``p.sample_from_noise(target_component_uniforms[i, l], target_normals[i, l])``. A position is
  final once written, so each ``(i, l)`` entry is read at most once.
* **Drafts and acceptance.** Round ``r = 0, 1, ...`` is the ``r``-th speculative target pass of
  sequence ``i`` (pre-fill passes not counted). With the round starting at group ``g``, step
  ``j < k = min(gamma, G - g)`` drafts group ``g + j``; the token at its ``s``-th position (in
  schedule order) is ``x = q.sample_from_noise(draft_component_uniforms[i, r, j, s],
  draft_normals[i, r, j, s])`` and, if its group is verified (every earlier group of the round
  passed), it is accepted iff ``log accept_uniforms[i, r, j, s] < log p(x) - log q(x)``. A
  position can be drafted in several rounds (groups after a rejection are discarded and drafted
  again), so these arrays are indexed by round, not by position. Every round produces at least
  one group, so a sequence has at most ``G`` rounds. Slots ``s >= |group|`` and steps ``j >= k``
  are never read.
* **Residual.** A rejected token at position ``l`` is replaced by rejection sampling of
  ``(p - q)^+ / TV`` from ``p`` (docs/algorithms.md §3.3): proposal ``t = 0, 1, ...`` is
  ``y_t = p.sample_from_noise(residual_component_uniforms[i, l, t], residual_normals[i, l, t])``,
  accepted iff ``residual_accept_uniforms[i, l, t] < -expm1(min(0, log q(y_t) - log p(y_t)))``;
  the first accepted proposal is the token. A resampled token is final, so each row ``(i, l)``
  is used at most once. No success among the ``R`` proposals raises ``ResidualBudgetExceeded``
  (its ``unfinished_rows`` are the flat rows ``i * L + l``); nothing is substituted. The
  reflection residual (equal-scale single Gaussians) reads no residual noise.

Entries that are never read may hold any valid value. Uniforms lie in ``[0, 1)``, normals are
finite. ``draw_ar_noise`` fills every entry independently (uniforms ``U[0, 1)``, normals
``N(0, 1)``); with such noise the decoded sequences follow the target's law exactly, because
every value the decoder reads is a fresh independent draw, as in ``ar_speculative_decode``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from cspd_ref.distributions import GaussianMixture
from cspd_ref.speculative import (
    ResidualBudgetExceeded,
    ResidualNoise,
    ResidualNoiseArrays,
    ResidualNoiseGenerator,
    RowSubsetNoise,
    SpeculativeResult,
    log_acceptance_ratio,
)
from cspd_ref.validation import (
    BoolArray,
    FloatArray,
    IntArray,
    as_float64,
    require_generator,
    require_half_open_unit_interval,
    require_int,
)

if TYPE_CHECKING:
    from cspd_ref.ar_model import GroupSchedule

DEFAULT_RESIDUAL_TRIALS = 64
"""Residual proposals per position drawn by ``draw_ar_noise`` unless told otherwise. A rejected
token whose pair has total variation ``TV`` needs more with probability ``(1 - TV)^R`` (then the
decoder raises): pass more for pairs with small TV."""

UNIFORM_FIELDS = ("target_component_uniforms", "draft_component_uniforms", "accept_uniforms",
                  "residual_component_uniforms", "residual_accept_uniforms")
FIELD_NDIMS = {"target_component_uniforms": 2, "target_normals": 3,
               "draft_component_uniforms": 4, "draft_normals": 5, "accept_uniforms": 4,
               "residual_component_uniforms": 3, "residual_normals": 4,
               "residual_accept_uniforms": 3}


@dataclass(frozen=True, kw_only=True)
class ARNoise:
    """Every random number of one AR speculative decode, indexed by where it is used.

    The layout and the rules by which the decoder reads it are in this module's docstring.
    Arrays are converted to float64 on construction. The fields are keyword-only: they are
    declared in the layout's order (the order ``draw_ar_noise`` draws them, target-alone fields
    first), which is not the package's draft-before-target argument order.

    Attributes:
        target_component_uniforms: ``(n, L)`` in [0, 1).
        target_normals: ``(n, L, d)``.
        draft_component_uniforms: ``(n, G, gamma, S)`` in [0, 1).
        draft_normals: ``(n, G, gamma, S, d)``.
        accept_uniforms: ``(n, G, gamma, S)`` in [0, 1).
        residual_component_uniforms: ``(n, L, R)`` in [0, 1).
        residual_normals: ``(n, L, R, d)``.
        residual_accept_uniforms: ``(n, L, R)`` in [0, 1).

    Raises:
        ValueError: naming the field, for a wrong number of dimensions, shapes that disagree
            between fields, NaN/inf, or uniforms outside [0, 1).
    """

    target_component_uniforms: FloatArray
    target_normals: FloatArray
    draft_component_uniforms: FloatArray
    draft_normals: FloatArray
    accept_uniforms: FloatArray
    residual_component_uniforms: FloatArray
    residual_normals: FloatArray
    residual_accept_uniforms: FloatArray

    def __post_init__(self) -> None:
        for f in fields(self):
            array = as_float64(getattr(self, f.name), f.name, ndim=FIELD_NDIMS[f.name])
            if f.name in UNIFORM_FIELDS:
                require_half_open_unit_interval(array, f.name)
            object.__setattr__(self, f.name, array)
        n, L, d = self.target_normals.shape
        P, gamma, S = self.draft_component_uniforms.shape[1:]
        R = self.residual_component_uniforms.shape[2]
        for name, shape in expected_shapes(n, L, d, P, gamma, S, R).items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name}: expected shape {shape} (n={n}, L={L}, d={d}, "
                                 f"G={P}, gamma={gamma}, S={S}, R={R} from the other fields), "
                                 f"got {getattr(self, name).shape}")

    @property
    def n(self) -> int:
        """Number of sequences."""
        return int(self.target_normals.shape[0])

    @property
    def seq_len(self) -> int:
        """Tokens per sequence L."""
        return int(self.target_normals.shape[1])

    @property
    def dim(self) -> int:
        """Token dimension d."""
        return int(self.target_normals.shape[2])

    @property
    def num_rounds(self) -> int:
        """Rounds provided per sequence (the ``G`` axis)."""
        return int(self.draft_component_uniforms.shape[1])

    @property
    def gamma(self) -> int:
        """Draft steps per round."""
        return int(self.draft_component_uniforms.shape[2])

    @property
    def group_width(self) -> int:
        """Slots per draft step S (the largest group size)."""
        return int(self.draft_component_uniforms.shape[3])

    @property
    def residual_trials(self) -> int:
        """Residual proposals per position R."""
        return int(self.residual_component_uniforms.shape[2])

    def require_layout(self, seq_len: int, num_groups: int, group_width: int, dim: int,
                       gamma: int, name: str = "noise") -> None:
        """Raise ``ValueError`` naming ``name.<field>`` unless the shapes are those of a decode
        with these ``L, G, S, d, gamma`` (any ``n`` and ``R``)."""
        shapes = expected_shapes(self.n, seq_len, dim, num_groups, gamma, group_width,
                                 self.residual_trials)
        for field_name, shape in shapes.items():
            got = getattr(self, field_name).shape
            if got != shape:
                raise ValueError(f"{name}.{field_name}: expected shape {shape} for n={self.n}, "
                                 f"L={seq_len}, d={dim}, G={num_groups}, gamma={gamma}, "
                                 f"S={group_width}, R={self.residual_trials}; got {got}")

    def residual_stream(self) -> ResidualNoiseArrays:
        """The residual arrays as one ``ResidualNoiseArrays`` whose row ``i * L + l`` is
        position ``l`` of sequence ``i``."""
        rows = self.n * self.seq_len
        return ResidualNoiseArrays(
            self.residual_component_uniforms.reshape(rows, self.residual_trials),
            self.residual_normals.reshape(rows, self.residual_trials, self.dim),
            self.residual_accept_uniforms.reshape(rows, self.residual_trials))


def expected_shapes(n: int, L: int, d: int, G: int, gamma: int, S: int,
                    R: int) -> dict[str, tuple[int, ...]]:
    """The shape of every ``ARNoise`` field for these sizes."""
    return {"target_component_uniforms": (n, L), "target_normals": (n, L, d),
            "draft_component_uniforms": (n, G, gamma, S), "draft_normals": (n, G, gamma, S, d),
            "accept_uniforms": (n, G, gamma, S), "residual_component_uniforms": (n, L, R),
            "residual_normals": (n, L, R, d), "residual_accept_uniforms": (n, L, R)}


def draw_ar_noise(n: int, schedule: GroupSchedule, dim: int, *, rng: np.random.Generator,
                  gamma: int = 2, residual_trials: int = DEFAULT_RESIDUAL_TRIALS) -> ARNoise:
    """Draw an ``ARNoise`` for ``n`` sequences: every entry independent, uniforms ``U[0, 1)``
    (``rng.random``), normals ``N(0, 1)`` (``rng.standard_normal``), the fields drawn in
    declaration order, each as one array in C order.

    Decoding with such noise is exact (module docstring); ``residual_trials`` (``R``) bounds the
    residual proposals per rejected token (the decoder raises when a token needs more).
    """
    from cspd_ref.ar_model import GroupSchedule

    if not isinstance(schedule, GroupSchedule):
        raise ValueError(f"schedule: expected a cspd_ref.ar.GroupSchedule, got "
                         f"{type(schedule).__name__}")
    n = require_int(n, "n")
    dim = require_int(dim, "dim", minimum=1)
    gamma = require_int(gamma, "gamma", minimum=1)
    R = require_int(residual_trials, "residual_trials")
    rng = require_generator(rng)
    S = max(len(group) for group in schedule.groups)
    shapes = expected_shapes(n, schedule.seq_len, dim, schedule.num_groups, gamma, S, R)
    arrays = {name: rng.random(shape) if name in UNIFORM_FIELDS else rng.standard_normal(shape)
              for name, shape in shapes.items()}
    return ARNoise(**arrays)


def require_ar_noise(noise: Any, name: str = "noise") -> ARNoise:
    """Raise ``ValueError`` naming ``name`` unless ``noise`` is a ``cspd_ref`` ``ARNoise``."""
    if not isinstance(noise, ARNoise):
        raise ValueError(f"{name}: expected a cspd_ref.ar_noise.ARNoise (draw one with "
                         f"draw_ar_noise), got {type(noise).__name__}")
    return noise


@dataclass(frozen=True)
class ARDecodeTrace:
    """What the from-noise decoder decided, in the noise's layout (for comparisons and ports).

    Attributes:
        accepted: ``(n, G, gamma, S)`` bool, True where the drafted token of round ``r``, step
            ``j``, slot ``s`` passed its acceptance test.
        accept_log_ratios: ``(n, G, gamma, S)``, ``log p(x) - log q(x)`` of every token whose
            acceptance test was made (its group verified), NaN elsewhere.
        residual_trials: ``(n, L)`` int64, residual proposals examined for the token at that
            position (0 where none: accepted, target-alone, or reflection).
        residual_log_ratios: ``(n, L, R)``, ``log p(y_t) - log q(y_t)`` of every examined
            residual proposal ``t < residual_trials[i, l]``, NaN elsewhere; proposal ``t`` was
            accepted iff ``residual_accept_uniforms[i, l, t] < -expm1(min(0, -ratio))``.
    """

    accepted: BoolArray
    accept_log_ratios: FloatArray
    residual_trials: IntArray
    residual_log_ratios: FloatArray


# --------------------------------------------------------------------- noise sources
class DecodeNoise(Protocol):
    """Where the AR decoder of ``cspd_ref.ar`` gets its randomness (one decode loop serves
    ``ar_speculative_decode`` and ``ar_speculative_decode_from_noise``)."""

    max_trials: int

    def target_sample(self, i: int, law: GaussianMixture, pos: IntArray) -> FloatArray: ...

    def draft_sample(self, i: int, r: int, j: int, law: GaussianMixture,
                     pos: IntArray) -> FloatArray: ...

    def accept_uniforms(self, i: int, r: int, j: int, m: int) -> FloatArray: ...

    def residual(self, i: int, pos: IntArray) -> ResidualNoise: ...

    def budget_error(self, i: int, pos: IntArray,
                     exc: ResidualBudgetExceeded) -> ResidualBudgetExceeded: ...


class GeneratorDecodeNoise:
    """The noise of ``ar_speculative_decode``: fresh draws from a Generator, in call order.

    Target-alone and draft groups: ``law.sample(1, rng=rng)`` (component uniforms, then normals);
    acceptance: ``rng.random(m)``; residual proposals from one ``ResidualNoiseGenerator``.
    """

    def __init__(self, dim: int, *, rng: np.random.Generator, max_trials: int) -> None:
        self.rng = rng
        self.stream = ResidualNoiseGenerator(dim, rng=rng)
        self.max_trials = max_trials

    def target_sample(self, i: int, law: GaussianMixture, pos: IntArray) -> FloatArray:
        """Tokens at ``pos`` of sequence ``i`` from the target alone: ``(m, d)``."""
        return law.sample(1, rng=self.rng)[0]

    def draft_sample(self, i: int, r: int, j: int, law: GaussianMixture,
                     pos: IntArray) -> FloatArray:
        """Draft tokens of round ``r``, step ``j``: ``(m, d)``."""
        return law.sample(1, rng=self.rng)[0]

    def accept_uniforms(self, i: int, r: int, j: int, m: int) -> FloatArray:
        """Acceptance uniforms of round ``r``, step ``j``: ``(m,)``."""
        return self.rng.random(m)

    def residual(self, i: int, pos: IntArray) -> ResidualNoise:
        """The residual stream of the tokens at ``pos`` (local row ``s`` is ``pos[s]``)."""
        return self.stream

    def budget_error(self, i: int, pos: IntArray,
                     exc: ResidualBudgetExceeded) -> ResidualBudgetExceeded:
        """The exception to raise when the residual of tokens at ``pos`` ran out."""
        return exc


class ArrayDecodeNoise:
    """The noise of ``ar_speculative_decode_from_noise``: reads an ``ARNoise`` by position."""

    def __init__(self, noise: ARNoise) -> None:
        self.noise = noise
        self.stream = noise.residual_stream()
        self.max_trials = max(1, noise.residual_trials)

    def target_sample(self, i: int, law: GaussianMixture, pos: IntArray) -> FloatArray:
        """Tokens at ``pos`` of sequence ``i`` from the target alone: ``(m, d)``."""
        return law.sample_from_noise(self.noise.target_component_uniforms[i, pos],
                                     self.noise.target_normals[i, pos])

    def draft_sample(self, i: int, r: int, j: int, law: GaussianMixture,
                     pos: IntArray) -> FloatArray:
        """Draft tokens of round ``r``, step ``j``: ``(m, d)``."""
        m = pos.size
        return law.sample_from_noise(self.noise.draft_component_uniforms[i, r, j, :m],
                                     self.noise.draft_normals[i, r, j, :m])

    def accept_uniforms(self, i: int, r: int, j: int, m: int) -> FloatArray:
        """Acceptance uniforms of round ``r``, step ``j``: ``(m,)``."""
        return self.noise.accept_uniforms[i, r, j, :m]

    def residual(self, i: int, pos: IntArray) -> ResidualNoise:
        """The residual stream of the tokens at ``pos`` (local row ``s`` is ``i * L + pos[s]``)."""
        return RowSubsetNoise(self.stream, i * self.noise.seq_len + pos)

    def budget_error(self, i: int, pos: IntArray,
                     exc: ResidualBudgetExceeded) -> ResidualBudgetExceeded:
        """``exc`` with its rows (slots of the group) renumbered as flat rows ``i * L + l``."""
        rows = i * self.noise.seq_len + pos[exc.unfinished_rows]
        return ResidualBudgetExceeded(rows, exc.max_trials)


class TraceRecorder:
    """Collects an ``ARDecodeTrace`` while a from-noise decode runs."""

    def __init__(self, noise: ARNoise) -> None:
        self.noise = noise
        shape = noise.accept_uniforms.shape
        self.accepted = np.zeros(shape, dtype=bool)
        self.accept_log_ratios = np.full(shape, np.nan)
        self.residual_trials = np.zeros((noise.n, noise.seq_len), dtype=np.int64)
        self.residual_log_ratios = np.full(noise.residual_accept_uniforms.shape, np.nan)

    def record_group(self, i: int, r: int, j: int, pos: IntArray, draft: GaussianMixture,
                     target: GaussianMixture, x: FloatArray, out: SpeculativeResult) -> None:
        """Record the verification of the group drafted at round ``r``, step ``j``."""
        m = pos.size
        self.accepted[i, r, j, :m] = out.accepted
        self.accept_log_ratios[i, r, j, :m] = log_acceptance_ratio(draft, target, x)
        self.residual_trials[i, pos] = out.trials
        for s in np.flatnonzero(out.trials):
            t, position = int(out.trials[s]), int(pos[s])
            p, q = target.index_batch(s), draft.index_batch(s)
            y = p.sample_from_noise(self.noise.residual_component_uniforms[i, position, :t],
                                    self.noise.residual_normals[i, position, :t])
            self.residual_log_ratios[i, position, :t] = p.log_prob(y) - q.log_prob(y)

    def result(self) -> ARDecodeTrace:
        """The collected trace."""
        return ARDecodeTrace(accepted=self.accepted, accept_log_ratios=self.accept_log_ratios,
                             residual_trials=self.residual_trials,
                             residual_log_ratios=self.residual_log_ratios)


__all__ = ["DEFAULT_RESIDUAL_TRIALS", "ARDecodeTrace", "ARNoise", "DecodeNoise", "draw_ar_noise"]
