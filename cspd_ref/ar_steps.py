"""The steps of AR speculative decoding, one sequence at a time, float64 (docs/algorithms.md §5.2).

One verification round of ``cspd_ref.ar``'s decoder is, in order:

1. ``draft_step``: the draft proposes ``k = min(gamma, G - g)`` groups autoregressively;
2. ``score_step``: one target pass scores every drafted group given the draft's earlier groups,
   and gives the bonus group's law;
3. ``verify_step``: the acceptance tests in group order; the first group with a rejection keeps
   its residual samples and every later group is discarded;
4. ``bonus_step``: when every drafted group passed, the bonus group is drawn from the target.

``prefill_groups_step`` generates the first groups from the target alone, before any round.
Every step works on **one sequence** (``index`` ``i``, tokens ``(L, d)``) and reads its
randomness from a ``cspd_ref.ar_noise.DecodeNoise``, so the generator-driven and the
noise-driven decoders share them. Twin of ``gpu_impl.ar_steps`` (same names, same order), whose
steps work on the batch of active sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

from cspd_ref.ar_model import ARModel, GroupSchedule
from cspd_ref.ar_noise import DecodeNoise, TraceRecorder
from cspd_ref.distributions import GaussianMixture
from cspd_ref.speculative import (
    ResidualBudgetExceeded,
    resolve_residual_method,
    verify_draft_from_noise,
)
from cspd_ref.validation import BoolArray, FloatArray, IntArray

__all__ = [  # noqa: RUF022 (definition order, the same in the twin module)
    "prefill_groups_step",
    "draft_step",
    "score_step",
    "verify_step",
    "bonus_step",
]


@dataclass(frozen=True)
class _Drafted:
    """The groups a round drafted for sequence ``index``: ``tokens`` ``(L, d)`` (a copy of the
    sequence with the drafted groups written in), ``positions`` and draft ``laws`` per group."""

    index: int
    round: int
    start: int
    tokens: FloatArray
    positions: list[IntArray]
    laws: list[GaussianMixture]


@dataclass(frozen=True)
class _Scored:
    """The target pass of a round: ``laws`` of the drafted groups, then the bonus group's law
    when one is due (``bonus_positions`` not None)."""

    laws: list[GaussianMixture]
    bonus_positions: IntArray | None


def prefill_groups_step(target: ARModel, schedule: GroupSchedule, source: DecodeNoise,
                        index: int, tokens: FloatArray, known: BoolArray,
                        n_prefill: int) -> int:
    """Generate the first ``min(n_prefill, G)`` groups of one sequence from the target alone,
    one target pass per group (noise ``source.target_sample``); returns how many.

    Writes into ``tokens`` ``(L, d)`` and ``known`` ``(L,)`` of sequence ``index``."""
    count = min(n_prefill, schedule.num_groups)
    for g in range(count):
        pos = schedule.positions(g)
        tokens[pos] = source.target_sample(index, target.conditionals(tokens, known, pos), pos)
        known[pos] = True
    return count


def draft_step(draft: ARModel, schedule: GroupSchedule, source: DecodeNoise, index: int,
               rnd: int, start: int, length: int, tokens: FloatArray,
               known: BoolArray) -> _Drafted:
    """Round ``rnd`` of one sequence: the draft proposes groups ``start .. start+length-1``
    autoregressively (draft step ``j`` from ``source.draft_sample(index, rnd, j, ...)``), each
    conditioned on the known tokens and the draft's earlier groups. ``tokens`` and ``known`` are
    not modified (the drafts live in a copy)."""
    draft_tokens = tokens.copy()
    draft_known = known.copy()
    positions: list[IntArray] = []
    laws: list[GaussianMixture] = []
    for j in range(length):
        pos = schedule.positions(start + j)
        law = draft.conditionals(draft_tokens, draft_known, pos)
        draft_tokens[pos] = source.draft_sample(index, rnd, j, law, pos)
        draft_known[pos] = True
        positions.append(pos)
        laws.append(law)
    return _Drafted(index, rnd, start, draft_tokens, positions, laws)


def score_step(target: ARModel, schedule: GroupSchedule, drafted: _Drafted, known: BoolArray,
               bonus_group: bool) -> _Scored:
    """One target pass for one sequence: the target's law of every drafted group ``start + j``
    given the known tokens and the draft's groups ``start .. start+j-1`` (group-causal
    attention), plus, when ``bonus_group`` and a group is left after the drafted ones, the law
    of that bonus group given all drafted groups. Draws no randomness."""
    laws: list[GaussianMixture] = []
    scored_known = known.copy()
    for pos in drafted.positions:
        laws.append(target.conditionals(drafted.tokens, scored_known, pos))
        scored_known[pos] = True
    bonus = drafted.start + len(drafted.positions)
    if not bonus_group or bonus >= schedule.num_groups:
        return _Scored(laws, None)
    pos = schedule.positions(bonus)
    laws.append(target.conditionals(drafted.tokens, scored_known, pos))
    return _Scored(laws, pos)


def verify_step(source: DecodeNoise, drafted: _Drafted, scored: _Scored, tokens: FloatArray,
                known: BoolArray, residual: str, trace: TraceRecorder | None = None) -> int:
    """The acceptance tests of one sequence's round, group by group in order; returns the number
    of drafted groups accepted in full.

    Group ``j``'s tokens are accepted iff ``log u < log p(x) - log q(x)``
    (``source.accept_uniforms``), rejected ones resampled from the residual (``source.residual``,
    method ``residual`` resolved per group); the group is written into ``tokens`` / ``known``.
    At the first group with a rejection the walk stops: the later groups are discarded."""
    i, r = drafted.index, drafted.round
    for j, pos in enumerate(drafted.positions):
        q_law, p_law = drafted.laws[j], scored.laws[j]
        method = resolve_residual_method(residual, q_law, p_law)
        u = source.accept_uniforms(i, r, j, pos.size)
        try:
            out = verify_draft_from_noise(q_law, p_law, drafted.tokens[pos], u,
                                          source.residual(i, pos), method=method,
                                          max_trials=source.max_trials)
        except ResidualBudgetExceeded as exc:
            error = source.budget_error(i, pos, exc)
            if error is exc:
                raise
            raise error from None
        if trace is not None:
            trace.record_group(i, r, j, pos, q_law, p_law, drafted.tokens[pos], out)
        tokens[pos] = out.samples
        known[pos] = True
        if not out.accepted.all():
            return j
    return len(drafted.positions)


def bonus_step(source: DecodeNoise, drafted: _Drafted, scored: _Scored, accepted: int,
               tokens: FloatArray, known: BoolArray) -> bool:
    """The bonus group of one sequence: when all drafted groups were ``accepted`` and the target
    pass scored a bonus group, draw it from the target (``source.target_sample``) into
    ``tokens`` / ``known``; returns whether it did."""
    k = len(drafted.positions)
    if accepted < k or scored.bonus_positions is None:
        return False
    pos = scored.bonus_positions
    tokens[pos] = source.target_sample(drafted.index, scored.laws[k], pos)
    known[pos] = True
    return True
