"""Generation order and group schedule of the MAR-style toy (docs/mar_toy.md §1).

MAR generates the ``N`` tokens of an image in ``G`` steps ("groups"), in a random order drawn per
image, revealing ``n_k`` tokens at step ``k`` by a cosine schedule: after step ``k`` there remain
``floor(N cos(pi/2 (k + 1) / G))`` masked tokens (at least one token per step, none left after
the last). We work in *order space*: position ``k`` of a sequence is the ``k``-th token in its
image's generation order, so group ``g`` is the contiguous range ``[start_g, start_g + n_g)`` for
every image, and the attention mask that makes the model causal over groups is the same for
every image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gpu_impl.validation import require_int

__all__ = ["GroupLayout", "cosine_group_sizes", "random_orders"]


def cosine_group_sizes(num_tokens: int, num_groups: int) -> list[int]:
    """Sizes ``n_0 .. n_{G-1}`` of MAR's cosine schedule: ``N - sum_{j <= k} n_j =
    floor(N cos(pi/2 (k + 1) / G))`` masked tokens after step ``k``, clamped so that every step
    reveals at least one token and the last step reveals the rest.

    Examples:
        >>> cosine_group_sizes(64, 16)
        [1, 1, 1, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6]
    """
    n = require_int(num_tokens, "num_tokens", minimum=1)
    g = require_int(num_groups, "num_groups", minimum=1)
    if g > n:
        raise ValueError(f"num_groups: at most num_tokens = {n} groups, got {g}")
    sizes = []
    masked = n
    for k in range(g):
        after = 0 if k == g - 1 else math.floor(n * math.cos(math.pi / 2 * (k + 1) / g))
        after = max(min(after, masked - 1), g - k - 1)
        sizes.append(masked - after)
        masked = after
    return sizes


@dataclass(frozen=True)
class GroupLayout:
    """Groups in order space: ``sizes[g]`` tokens at positions ``starts[g] ..``; ``group_of[k]``
    is the group of order position ``k``."""

    sizes: tuple[int, ...]

    @classmethod
    def cosine(cls, num_tokens: int, num_groups: int) -> GroupLayout:
        return cls(tuple(cosine_group_sizes(num_tokens, num_groups)))

    @property
    def num_groups(self) -> int:
        return len(self.sizes)

    @property
    def num_tokens(self) -> int:
        return sum(self.sizes)

    @property
    def starts(self) -> tuple[int, ...]:
        out, total = [], 0
        for size in self.sizes:
            out.append(total)
            total += size
        return tuple(out)

    def group_of(self, device: torch.device | str = "cpu") -> Tensor:
        """``(N,)`` int64: the group of every order position."""
        sizes = torch.tensor(self.sizes, device=device)
        return torch.repeat_interleave(torch.arange(self.num_groups, device=device), sizes)

    def positions(self, groups: Tensor) -> tuple[Tensor, Tensor]:
        """For a 1-D tensor of group indices (one per item), the order positions of all their
        tokens, flattened: ``(item index (M,), order position (M,))``."""
        sizes = torch.tensor(self.sizes, device=groups.device)
        starts = torch.tensor(self.starts, device=groups.device)
        counts = sizes[groups]
        items = torch.repeat_interleave(torch.arange(groups.shape[0], device=groups.device),
                                        counts)
        first = torch.cumsum(counts, 0) - counts
        within = torch.arange(items.shape[0], device=groups.device) - first[items]
        return items, starts[groups][items] + within


def random_orders(batch: int, num_tokens: int, *, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> Tensor:
    """``(batch, N)`` int64: an independent uniformly random permutation of the ``N`` image
    positions per image (``argsort`` of iid uniforms), the generation order ``order[b, k]``."""
    b = require_int(batch, "batch", minimum=1)
    n = require_int(num_tokens, "num_tokens", minimum=1)
    return torch.argsort(torch.rand((b, n), generator=generator, device=device), dim=1)
