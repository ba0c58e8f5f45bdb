"""The synchronisation-free fault check of the denoising loops (docs/algorithms.md §7).

The loops of ``gpu_impl.diffusion`` and ``gpu_impl.diffusion_sampling`` must not read tensor
values on the host (no ``.item()``, no branch on a tensor), yet a mean function returning NaN
or a scale function returning a non-positive scale must be refused with a ``ValueError`` naming
the callable and the step (docs/contract.md §4). So each step adds ``transition_health(m, s)``
to a 0-d tensor started by ``zero_health``: ``(sum m + sum log s) * 0`` is 0 while every mean is
finite and every scale positive and finite, and NaN from the first fault on (``log 0 = -inf``,
``log`` of a negative number is NaN, ``inf * 0`` is NaN). ``check_health`` reads it once after
the loop and, on NaN, calls a ``replay_checked`` closure that re-runs the loop with the checking
``GaussianChain.transition`` to raise the named error. (``cspd_ref`` checks every step eagerly
and needs none of this.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gpu_impl.validation import compute_dtype

if TYPE_CHECKING:
    from gpu_impl.diffusion import GaussianChain

__all__ = ["check_health", "replay_checked", "transition_health", "zero_health"]


def zero_health(x: Tensor) -> Tensor:
    """A 0-d zero in ``compute_dtype(x.dtype)`` on ``x``'s device: the health before the loop."""
    return torch.zeros((), dtype=compute_dtype(x.dtype), device=x.device)


def transition_health(mean: Tensor, scale: Tensor) -> Tensor:
    """``(sum m + sum log s) * 0``: 0, or NaN when a mean is not finite or a scale is not
    positive and finite (``log`` of 0 is -inf, of a negative number NaN; ``inf * 0`` is NaN).
    Sync-free; summed in float32 at least so that 16-bit sums cannot overflow."""
    ct = compute_dtype(mean.dtype)
    return (mean.sum(dtype=ct) + torch.log(scale.to(ct)).sum()) * 0.0


def check_health(health: Tensor, locate: Callable[[], None]) -> None:
    """After the loop (one sync): on a NaN ``health`` call ``locate`` (a checked replay, which
    raises ``ValueError`` naming the callable and the step); if it does not raise, raise a
    ``ValueError`` naming ``mean_fn``."""
    if not bool(torch.isfinite(health)):
        locate()
        raise ValueError("mean_fn: returned NaN/inf (or scale_fn a non-positive scale) in the "
                         "denoising loop; the checked replay did not reproduce it")


def replay_checked(chains: list[tuple[GaussianChain, str]], starts: list[Tensor], eps: Tensor,
                   steps: int, *, follow: int | None = None) -> None:
    """Re-run trajectories with the checking ``GaussianChain.transition`` (raises at the first
    fault, naming ``owner + "mean_fn"`` or ``owner + "scale_fn"`` and the step).

    ``chains[i] = (chain, owner)`` runs from ``starts[i]``, ``x_{t-1} = m + tau s eps[T - t]``,
    for ``steps`` transitions (the last one, when ``steps > len(eps)``, only evaluated); with
    ``follow`` set, every chain is evaluated at the states of ``chains[follow]`` (the joint
    criterion scores both chains on one trajectory).
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
