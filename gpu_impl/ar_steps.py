"""The steps of batched AR speculative decoding (docs/algorithms.md §5.2, §7).

One verification round of ``gpu_impl.ar``'s decoder is, in order:

1. ``draft_step``: the draft proposes ``k_i = min(gamma, G - g_i)`` groups per sequence;
2. ``score_step``: one target pass scores every drafted group given the draft's earlier groups,
   and gives the bonus groups' laws;
3. ``verify_step``: the acceptance tests of every drafted token at once; per sequence the first
   group with a rejection keeps its residual samples and every later group is discarded;
4. ``bonus_step``: the sequences whose drafted groups all passed draw their bonus group from
   the target.

``prefill_groups_step`` generates the first groups from the target alone, before any round.
Every step works on **the batch of active sequences** (``index`` ``(A,)`` rows of the output,
each at its own group index ``start`` ``(A,)``; groups of unequal size through the padded
``GroupTable``) and reads its randomness from a ``gpu_impl.ar_noise.DecodeNoise``, so the
generator-driven and the noise-driven decoders share them. Twin of ``cspd_ref.ar_steps`` (same
names, same order), whose steps work on one sequence.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from gpu_impl.ar_model import ARModel, GroupTable
from gpu_impl.ar_noise import DecodeNoise, TraceRecorder
from gpu_impl.distributions import GaussianMixture
from gpu_impl.speculative import (
    accept_from_uniforms,
    global_rows,
    log_acceptance_ratio,
    resample_rejected_from_noise,
    resolve_residual_method,
)

__all__ = [  # noqa: RUF022 (definition order, the same in the twin module)
    "prefill_groups_step",
    "draft_step",
    "score_step",
    "verify_step",
    "bonus_step",
]


# --------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class _Drafted:
    """The groups a round drafted for the active sequences ``index`` ``(A,)`` (at groups
    ``start``, ``length`` groups each): ``tokens`` ``(A, L, d)`` (copies with the drafted
    groups written in) and, per drafted token (valid slots only, step by step), its active row,
    position, draft step, slot, value ``(N, d)`` and draft law (batch ``(N,)``)."""

    index: Tensor
    round: int
    start: Tensor
    length: Tensor
    tokens: Tensor
    rows: Tensor
    positions: Tensor
    steps: Tensor
    slots: Tensor
    values: Tensor
    laws: GaussianMixture


@dataclass(frozen=True)
class _Scored:
    """The target pass of a round: ``laws`` of the drafted tokens (the order of ``_Drafted``),
    ``bonus_due`` ``(A,)``, and the bonus groups' active rows, padded positions and masks
    ``(B, P)`` and laws ``(B, P)`` (None when no bonus group was scored)."""

    laws: GaussianMixture
    bonus_due: Tensor
    bonus_rows: Tensor | None
    bonus_positions: Tensor | None
    bonus_mask: Tensor | None
    bonus_laws: GaussianMixture | None


def _commit(sequences: Tensor, known: Tensor, rows: Tensor, positions: Tensor,
            values: Tensor) -> None:
    """Write final tokens ``values (N, d)`` at ``(rows, positions)`` and mark them known.

    The only place where the decoder writes into the output sequences: every
    ``(row, position)`` is written exactly once over a decode."""
    sequences[rows, positions] = values
    known[rows, positions] = True


def _cat_mixtures(laws: list[GaussianMixture]) -> GaussianMixture:
    """Concatenate mixtures of batch shape ``(N_i,)`` along the batch axis."""
    if len(laws) == 1:
        return laws[0]
    return GaussianMixture.from_parameters(torch.cat([m.weights for m in laws]),
                                           torch.cat([m.means for m in laws]),
                                           torch.cat([m.scales for m in laws]))


def _conditionals(model: ARModel, name: str, tokens: Tensor, known: Tensor,
                  positions: Tensor) -> GaussianMixture:
    """``model.conditionals`` with a (synchronisation-free) check of what it returned."""
    law = model.conditionals(tokens, known, positions)
    expected = tuple(positions.shape)
    if (not isinstance(law, GaussianMixture) or tuple(law.batch_shape) != expected
            or law.dim != model.dim or law.dtype != model.dtype):
        got = (f"batch shape {tuple(law.batch_shape)}, d = {law.dim}, {law.dtype}"
               if isinstance(law, GaussianMixture) else type(law).__name__)
        raise ValueError(f"{name}: conditionals returned {got}; expected a "
                         f"gpu_impl.GaussianMixture with batch shape {expected}, "
                         f"d = {model.dim}, {model.dtype}")
    return law


# --------------------------------------------------------------------- the steps
def prefill_groups_step(target: ARModel, schedule: GroupTable, source: DecodeNoise,
                        index: Tensor, tokens: Tensor, known: Tensor, n_prefill: int) -> int:
    """Generate the first ``min(n_prefill, G)`` groups of the sequences ``index`` ``(n,)`` (all
    at the same group) from the target alone, one batched target pass per group (noise
    ``source.target_sample``); returns how many.

    Writes into ``tokens`` ``(n, L, d)`` and ``known`` ``(n, L)``."""
    n, d = int(index.numel()), int(tokens.shape[-1])
    count = min(n_prefill, schedule.num_groups)
    for g in range(count):
        size = int(schedule.sizes[g])
        pos = schedule.positions[g, :size].expand(n, size)
        law = _conditionals(target, "target", tokens[index], known[index], pos)
        values = source.target_sample(law, index, pos)                    # (n, size, d)
        _commit(tokens, known, index.repeat_interleave(size), pos.reshape(n * size),
                values.reshape(n * size, d))
    return count


def draft_step(draft: ARModel, schedule: GroupTable, source: DecodeNoise, index: Tensor,
               rnd: int, start: Tensor, length: Tensor, tokens: Tensor,
               known: Tensor) -> _Drafted:
    """Round ``rnd`` of the active sequences ``index`` ``(A,)``: sequence ``index[a]`` drafts
    groups ``start[a] .. start[a]+length[a]-1`` autoregressively; step ``j`` is one draft pass
    on the sub-batch with ``length > j`` (noise ``source.draft_sample(..., rnd, j)``), each group
    conditioned on the known tokens and the draft's earlier groups. Padding slots are evaluated
    but never kept. ``tokens`` ``(n, L, d)`` and ``known`` ``(n, L)`` are not modified."""
    scratch, seen = tokens[index], known[index]
    rows, positions, steps, slots, values = [], [], [], [], []
    laws: list[GaussianMixture] = []
    for j in range(int(length.max())):
        rows_d = torch.nonzero(length > j).squeeze(1)
        group = start[rows_d] + j                                          # < G
        pos_d, mask_d = schedule.positions[group], schedule.mask[group]    # (B_d, P)
        q_law = _conditionals(draft, "draft", scratch[rows_d], seen[rows_d], pos_d)
        x = source.draft_sample(q_law, index[rows_d], rnd, j)              # (B_d, P, d)
        b_i, s_i = torch.nonzero(mask_d, as_tuple=True)                   # valid slots only
        flat_rows, flat_pos, flat_x = rows_d[b_i], pos_d[b_i, s_i], x[b_i, s_i]
        scratch[flat_rows, flat_pos] = flat_x
        seen[flat_rows, flat_pos] = True
        rows.append(flat_rows)
        positions.append(flat_pos)
        steps.append(torch.full_like(flat_rows, j))
        slots.append(s_i)
        values.append(flat_x)
        laws.append(q_law.index_batch((b_i, s_i)))
    return _Drafted(index, rnd, start, length, scratch, torch.cat(rows), torch.cat(positions),
                    torch.cat(steps), torch.cat(slots), torch.cat(values), _cat_mixtures(laws))


def score_step(target: ARModel, schedule: GroupTable, drafted: _Drafted, known: Tensor,
               bonus_group: bool) -> _Scored:
    """One target pass for the active sequences: step ``j`` scores group ``start + j`` given the
    known tokens and the draft's groups ``start .. start+j-1`` (group-causal attention) on the
    sub-batch with ``length > j``, and, for the sequences with ``length == j`` and a bonus due
    (``bonus_group`` and a group left after the drafted ones), the bonus group's law. Draws no
    randomness; the drafted groups' target laws come back in ``drafted``'s token order."""
    k, g_act = drafted.length, drafted.start
    bonus_due = ((g_act + k < schedule.num_groups) if bonus_group
                 else torch.zeros_like(k, dtype=torch.bool))
    seen = known[drafted.index]
    laws: list[GaussianMixture] = []
    bonus_rows, bonus_pos, bonus_mask = [], [], []
    bonus_laws: list[GaussianMixture] = []
    for j in range(int(k.max()) + 1):
        rows_t = torch.nonzero((k > j) | (bonus_due & (k == j))).squeeze(1)
        if int(rows_t.numel()) == 0:
            break
        group = g_act[rows_t] + j                                          # < G
        pos, mask = schedule.positions[group], schedule.mask[group]        # (B_t, P)
        p_law = _conditionals(target, "target", drafted.tokens[rows_t], seen[rows_t], pos)
        is_draft = k[rows_t] > j
        loc_d = torch.nonzero(is_draft).squeeze(1)
        loc_b = torch.nonzero(~is_draft).squeeze(1)
        if int(loc_b.numel()):
            bonus_rows.append(rows_t[loc_b])
            bonus_pos.append(pos[loc_b])
            bonus_mask.append(mask[loc_b])
            bonus_laws.append(p_law.index_batch(loc_b))
        if int(loc_d.numel()) == 0:
            continue
        b_i, s_i = torch.nonzero(mask[loc_d], as_tuple=True)
        seen[rows_t[loc_d][b_i], pos[loc_d][b_i, s_i]] = True
        laws.append(p_law.index_batch((loc_d[b_i], s_i)))
    if not bonus_laws:
        return _Scored(_cat_mixtures(laws), bonus_due, None, None, None, None)
    return _Scored(_cat_mixtures(laws), bonus_due, torch.cat(bonus_rows), torch.cat(bonus_pos),
                   torch.cat(bonus_mask), _cat_mixtures(bonus_laws))


def verify_step(source: DecodeNoise, drafted: _Drafted, scored: _Scored, tokens: Tensor,
                known: Tensor, residual: str, trace: TraceRecorder | None = None) -> Tensor:
    """The acceptance tests of every drafted token of the round at once; returns, per active
    sequence, the number of drafted groups accepted in full ``(A,)`` (its first group with a
    rejection, ``length`` where none).

    A token is accepted iff ``log u < log p(x) - log q(x)`` (``source.accept_uniforms``). The
    tokens of the groups up to each sequence's first rejection are kept, the rejected ones
    among them resampled from the residual (``source.residual``; ``residual`` resolved on all
    kept tokens of the round), and written into ``tokens`` ``(n, L, d)`` / ``known`` ``(n, L)``;
    later groups are discarded."""
    act, r = drafted.index, drafted.round
    rows_all, pos_all, x_all = drafted.rows, drafted.positions, drafted.values
    group_all, slot_all = drafted.steps, drafted.slots
    q_all, p_all = drafted.laws, scored.laws
    u = source.accept_uniforms(act[rows_all], r, group_all, slot_all)
    log_ratio = log_acceptance_ratio(q_all, p_all, x_all)
    ok = accept_from_uniforms(log_ratio, u)
    # First group with a rejection, per sequence (k where none).
    first_bad = drafted.length.clone().scatter_reduce(0, rows_all[~ok], group_all[~ok],
                                                      reduce="amin")
    keep = torch.nonzero(group_all <= first_bad[rows_all]).squeeze(1)
    q_keep, p_keep = q_all.index_batch(keep), p_all.index_batch(keep)
    method = resolve_residual_method(residual, q_keep, p_keep)
    seq_keep, pos_keep = act[rows_all[keep]], pos_all[keep]
    stream, residual_rows = source.residual(seq_keep, pos_keep)
    with nullcontext() if residual_rows is None else global_rows(residual_rows):
        out = resample_rejected_from_noise(q_keep, p_keep, x_all[keep], ok[keep], stream,
                                           method=method, max_trials=source.max_trials)
    _commit(tokens, known, seq_keep, pos_keep, out.samples)
    if trace is not None:
        trace.record_round(seq_keep, r, group_all[keep], slot_all[keep], pos_keep,
                           ok[keep], log_ratio[keep], q_keep, p_keep, out.trials)
    return first_bad


def bonus_step(source: DecodeNoise, drafted: _Drafted, scored: _Scored, accepted: Tensor,
               tokens: Tensor, known: Tensor) -> Tensor:
    """The bonus groups of the active sequences whose drafted groups were all ``accepted`` and
    that had a bonus group scored: drawn from the target (``source.target_sample``) into
    ``tokens`` / ``known`` (valid slots only); returns which sequences got one ``(A,)`` bool."""
    got_bonus = (accepted == drafted.length) & scored.bonus_due
    if (scored.bonus_rows is None or scored.bonus_positions is None
            or scored.bonus_mask is None or scored.bonus_laws is None):
        return got_bonus
    rows_b = scored.bonus_rows
    chosen = torch.nonzero(got_bonus[rows_b]).squeeze(1)
    if int(chosen.numel()):
        law_b = scored.bonus_laws.index_batch(chosen)                      # (B_b, P)
        seq_b, pos_b = drafted.index[rows_b[chosen]], scored.bonus_positions[chosen]
        values = source.target_sample(law_b, seq_b, pos_b)
        b_i, s_i = torch.nonzero(scored.bonus_mask[chosen], as_tuple=True)
        _commit(tokens, known, seq_b[b_i], pos_b[b_i, s_i], values[b_i, s_i])
    return got_bonus
