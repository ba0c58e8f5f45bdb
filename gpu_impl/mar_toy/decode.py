"""Target-only and speculative generation with the MAR-style toy, as pure functions of explicit
noise (docs/mar_toy.md §4; docs/algorithms.md §4.2, §5).

**Noise** (``MARNoise``), indexed by (image, order position): the start ``x_T``, the steps
``eps_T .. eps_1`` and one acceptance uniform per token. Whichever chain draws the token at a
position uses that position's noise: the target-only decoder its target chain; the speculative
decoder the draft chain, then the target's chain aligned on the same ``x_T, eps_T .. eps_2``.
When a drafted group is discarded its noise is reused by the next draft of that group: nothing
kept depends on it (the decisions of a round look only at groups up to the first rejected one),
so it is still independent of everything kept.

**Speculative generation** (``speculative_generate``), per image and round:

1. the draft proposes groups ``g .. g+gamma-1`` one pass at a time, each token by its full
   diffusion chain, keeping its last-step mean ``m_q`` (``x = m_q + sigma_1 eps_1``);
2. one target pass conditions every drafted group on the draft's earlier groups (the model is
   causal over groups) and runs the target head on the same ``x_T, eps_T .. eps_2`` to its
   last-step mean ``m_p``; equal last-step scales, so ``speculative_reflection_step`` accepts
   with probability ``min(1, p/q)`` and replaces a rejected token by its reflection, an exact
   residual draw (docs/algorithms.md §3.3, §4.2);
3. groups are walked in order: the first group with any rejection is kept with its resampled
   tokens and every later drafted group is discarded; if none is rejected, the same target pass
   gives the next group's conditionals and its tokens are sampled from the target (the bonus
   group, run in the same head batch).

Given the shared noises, each accepted-or-reflected token follows the target's last step; the
shared noises are those of a genuine target trajectory, so every kept token follows the
target's conditional given the kept earlier groups, and the output follows the target-only
generator's law exactly (docs/algorithms.md §4.2, §5.2). ``tests/test_mar_toy.py`` checks
the decoders on shared noise (a draft equal to the target reproduces target-only generation),
and
``python -m gpu_impl.mar_toy.bench --battery N`` runs the two-sample battery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from gpu_impl.ar_model import prefill_groups, require_prefill
from gpu_impl.fused import speculative_reflection_step
from gpu_impl.mar_toy.model import GroupCausalTransformer, MARToy
from gpu_impl.mar_toy.schedule import GroupLayout
from gpu_impl.validation import (
    require_generator,
    require_half_open_unit_interval,
    require_int,
)

__all__ = ["GenerationStats", "MARNoise", "draw_mar_noise", "speculative_generate",
           "target_generate", "to_image_space"]


@dataclass(frozen=True)
class MARNoise:
    """Noise of one generation, by (image, order position) (module docstring).

    Attributes:
        starts: ``(B, N, d)``, the chain starts ``x_T``.
        eps: ``(T, B, N, d)``; ``eps[i]`` is ``eps_{T-i}``, so ``eps[:T-1]`` are ``eps_T ..
            eps_2`` and ``eps[T-1]`` is ``eps_1``.
        accept_uniforms: ``(B, N)`` in [0, 1).
    """

    starts: Tensor
    eps: Tensor
    accept_uniforms: Tensor


def draw_mar_noise(batch: int, model: MARToy, *, generator: torch.Generator) -> MARNoise:
    """Standard normal ``x_T``, ``eps`` and uniform acceptance noise for ``batch`` images, on the
    model's device and in its dtype, drawn in that order from ``generator``."""
    b = require_int(batch, "batch", minimum=1)
    ref = model.transformer.position
    require_generator(generator, ref.device)
    c = model.config
    shape = (b, c.num_tokens, c.token_dim)
    x_T = torch.randn(shape, generator=generator, device=ref.device, dtype=ref.dtype)
    eps = torch.randn((c.diffusion_steps, *shape), generator=generator, device=ref.device,
                      dtype=ref.dtype)
    uniforms = torch.rand(shape[:2], generator=generator, device=ref.device, dtype=ref.dtype)
    return MARNoise(x_T, eps, uniforms)


@dataclass
class GenerationStats:
    """Counts of one generation (all images together).

    ``groups_examined`` counts drafted groups whose acceptance was decided (up to and including
    the first rejected group of a round); ``groups_accepted`` those wholly accepted, so
    ``acceptance = groups_accepted / groups_examined`` estimates the per-group acceptance ``a``
    of docs/algorithms.md §5.3. ``tokens_rejected`` counts rejected tokens among those kept;
    ``per_round_rows`` is the number of images still generating at each round."""

    draft_passes: int = 0
    target_passes: int = 0
    rounds: int = 0
    groups_examined: int = 0
    groups_accepted: int = 0
    tokens_drafted: int = 0
    tokens_rejected: int = 0
    per_round_rows: list[int] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.groups_accepted / self.groups_examined if self.groups_examined else 1.0


def _conditioning(transformer: GroupCausalTransformer, tokens: Tensor, order: Tensor,
                  rows: Tensor, positions: Tensor) -> Tensor:
    """``z`` ``(M, width)`` of the (row, order position) pairs, one transformer pass over the
    distinct rows with their queries padded to the longest (padding queries are discarded)."""
    perm = torch.argsort(rows, stable=True)
    rows_sorted, positions_sorted = rows[perm], positions[perm]
    unique_rows, counts = torch.unique_consecutive(rows_sorted, return_counts=True)
    which = torch.repeat_interleave(torch.arange(unique_rows.shape[0], device=rows.device),
                                    counts)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.shape[0], device=rows.device) - first[which]
    queries = torch.zeros((unique_rows.shape[0], int(counts.max())), dtype=torch.long,
                          device=rows.device)
    queries[which, slot] = positions_sorted
    z = transformer(tokens[unique_rows], order[unique_rows], queries)
    out = torch.empty((rows.shape[0], z.shape[-1]), dtype=z.dtype, device=z.device)
    out[perm] = z[which, slot]
    return out


def _target_group_step(model: MARToy, layout: GroupLayout, tokens: Tensor, order: Tensor,
                       noise: MARNoise, group: int) -> None:
    """Sample group ``group`` of every image from the target, in place in ``tokens``."""
    b = tokens.shape[0]
    rows, positions = layout.positions(torch.full((b,), group, device=tokens.device))
    z = _conditioning(model.transformer, tokens, order, rows, positions)
    steps = noise.eps[:, rows, positions]
    mean, scale = model.last_step(noise.starts[rows, positions], steps[:-1], z)
    tokens[rows, positions] = mean + scale * steps[-1]


def _require_inputs(model: MARToy, order: Tensor, noise: MARNoise) -> None:
    """Shapes, devices and dtypes of ``order`` and ``noise`` against ``model``; ``order`` a
    permutation per image; the acceptance uniforms in [0, 1) (two synchronisations)."""
    c = model.config
    ref = model.transformer.position
    if not isinstance(order, Tensor) or order.ndim != 2 or order.shape[1] != c.num_tokens:
        raise ValueError(f"order: expected a tensor of shape (B, {c.num_tokens}), got "
                         f"{getattr(order, 'shape', type(order).__name__)}")
    if order.dtype != torch.long or order.device != ref.device:
        raise ValueError(f"order: expected int64 on {ref.device}, got {order.dtype} on "
                         f"{order.device}")
    positions = torch.arange(c.num_tokens, device=order.device)
    if not bool((torch.sort(order, dim=1).values == positions).all()):
        raise ValueError("order: every row must be a permutation of the image positions")
    expected = (order.shape[0], c.num_tokens, c.token_dim)
    for name, value, shape in (("starts", noise.starts, expected),
                               ("eps", noise.eps, (c.diffusion_steps, *expected)),
                               ("accept_uniforms", noise.accept_uniforms, expected[:2])):
        if tuple(value.shape) != shape:
            raise ValueError(f"noise: {name} of shape {shape} expected, got "
                             f"{tuple(value.shape)}")
        if value.dtype != ref.dtype or value.device != ref.device:
            raise ValueError(f"noise: {name} must be {ref.dtype} on {ref.device} (the model's), "
                             f"got {value.dtype} on {value.device}")
    require_half_open_unit_interval(noise.accept_uniforms, "noise.accept_uniforms")


@torch.no_grad()
def target_generate(model: MARToy, order: Tensor,
                    noise: MARNoise) -> tuple[Tensor, GenerationStats]:
    """Generate with the target alone: ``G`` passes, group by group (MAR's own loop).

    Returns ``(tokens (B, N, d) in order space, stats)``; ``to_image_space`` puts the tokens
    where ``order`` says."""
    _require_inputs(model, order, noise)
    layout = model.config.layout()
    tokens = torch.zeros_like(noise.starts)
    stats = GenerationStats()
    for group in range(layout.num_groups):
        _target_group_step(model, layout, tokens, order, noise, group)
        stats.target_passes += 1
    return tokens, stats


@torch.no_grad()
def speculative_generate(draft: MARToy, target: MARToy, order: Tensor, noise: MARNoise, *,
                         gamma: int, prefill: float = 0.0) -> tuple[Tensor, GenerationStats]:
    """Speculative generation with draft length ``gamma`` groups; the first
    ``ceil(prefill G)`` groups are generated by the target alone (module docstring).

    Returns ``(tokens (B, N, d) in order space, stats)``; the tokens follow the law of
    ``target_generate`` exactly."""
    g_len = require_int(gamma, "gamma", minimum=1)
    pre = require_prefill(prefill)
    if draft.config != target.config:
        raise ValueError("draft: must share the target's MARToyConfig (grid, groups, head steps)")
    q, p = draft.transformer.position, target.transformer.position
    if q.device != p.device or q.dtype != p.dtype:
        raise ValueError(f"draft: must be on the target's device and dtype ({p.device}, "
                         f"{p.dtype}), got {q.device}, {q.dtype}")
    _require_inputs(target, order, noise)
    layout = target.config.layout()
    num_groups = layout.num_groups
    dev = noise.starts.device
    tokens = torch.zeros_like(noise.starts)
    stats = GenerationStats()
    prefilled = prefill_groups(pre, num_groups)
    for group in range(prefilled):
        _target_group_step(target, layout, tokens, order, noise, group)
        stats.target_passes += 1
    next_group = torch.full((tokens.shape[0],), prefilled, dtype=torch.long, device=dev)
    while True:
        rows = torch.nonzero(next_group < num_groups).squeeze(1)
        if rows.numel() == 0:
            return tokens, stats
        stats.rounds += 1
        stats.per_round_rows.append(int(rows.numel()))
        _speculative_round(draft, target, layout, tokens, order, noise, rows, next_group, g_len,
                           stats)


def _speculative_round(draft: MARToy, target: MARToy, layout: GroupLayout, tokens: Tensor,
                       order: Tensor, noise: MARNoise, rows: Tensor, next_group: Tensor,
                       gamma: int, stats: GenerationStats) -> None:
    """One draft-then-verify round for the images ``rows``, updating ``tokens`` and
    ``next_group`` in place."""
    num_groups = layout.num_groups
    work = tokens[rows]
    orders = order[rows]
    base = next_group[rows]
    drafted_rows, drafted_positions, drafted_means, drafted_index = [], [], [], []
    for j in range(gamma):
        local = torch.nonzero(base + j < num_groups).squeeze(1)
        if local.numel() == 0:
            break
        items, positions = layout.positions(base[local] + j)
        lrows = local[items]
        grows = rows[lrows]
        z = _conditioning(draft.transformer, work, orders, lrows, positions)
        steps = noise.eps[:, grows, positions]
        mean_q, scale = draft.last_step(noise.starts[grows, positions], steps[:-1], z)
        work[lrows, positions] = mean_q + scale * steps[-1]
        drafted_rows.append(lrows)
        drafted_positions.append(positions)
        drafted_means.append(mean_q)
        drafted_index.append(torch.full_like(lrows, j))
        stats.draft_passes += 1
    lrows, positions = torch.cat(drafted_rows), torch.cat(drafted_positions)
    mean_q, index = torch.cat(drafted_means), torch.cat(drafted_index)
    drafted_groups = torch.clamp(num_groups - base, max=gamma)
    with_bonus = torch.nonzero(base + gamma < num_groups).squeeze(1)
    items, bonus_positions = layout.positions(base[with_bonus] + gamma)
    bonus_rows = with_bonus[items]
    m = lrows.shape[0]
    all_rows = torch.cat([lrows, bonus_rows])
    all_positions = torch.cat([positions, bonus_positions])
    grows = rows[all_rows]
    z = _conditioning(target.transformer, work, orders, all_rows, all_positions)
    steps = noise.eps[:, grows, all_positions]
    mean_p, scale = target.last_step(noise.starts[grows, all_positions], steps[:-1], z)
    stats.target_passes += 1
    out, accepted = speculative_reflection_step(mean_q, mean_p[:m], scale, steps[-1, :m],
                                                noise.accept_uniforms[grows[:m], positions])
    bonus = mean_p[m:] + scale * steps[-1, m:]
    rejected_index = torch.where(accepted, gamma, index)
    first_rejected = torch.full_like(base, gamma).scatter_reduce(0, lrows, rejected_index,
                                                                 reduce="amin")
    kept = index <= first_rejected[lrows]
    tokens[grows[:m][kept], positions[kept]] = out[kept]
    rejected = first_rejected < gamma
    bonus_kept = ~rejected[bonus_rows]
    tokens[grows[m:][bonus_kept], bonus_positions[bonus_kept]] = bonus[bonus_kept]
    has_bonus = torch.zeros_like(rejected)
    has_bonus[with_bonus] = True
    advance = torch.where(rejected, first_rejected + 1,
                          drafted_groups + (has_bonus & ~rejected).long())
    next_group[rows] = base + advance
    stats.groups_examined += int(torch.where(rejected, first_rejected + 1, drafted_groups).sum())
    stats.groups_accepted += int(torch.where(rejected, first_rejected, drafted_groups).sum())
    stats.tokens_drafted += m
    stats.tokens_rejected += int((~accepted[kept]).sum())


def to_image_space(tokens: Tensor, order: Tensor) -> Tensor:
    """Tokens ``(B, N, d)`` from order space to image space: image position ``order[b, k]``
    receives ``tokens[b, k]``."""
    out = torch.empty_like(tokens)
    out.scatter_(1, order[..., None].expand_as(tokens), tokens)
    return out
