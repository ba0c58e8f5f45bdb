"""Test cases: a draft and a target (docs/contract.md §2), and the built-in examples.

A sampler under test follows ``sampler(case, n, seed) -> (n, d)`` and must return samples whose
law is exactly ``case.target``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cspd_ref.distributions import GaussianMixture, require_mixture, require_same_event


@dataclass(frozen=True)
class Case:
    """A draft/target pair of ``GaussianMixture``\\ s (batch shape ``()``), float64 parameters.

    Attributes:
        draft: the draft ``q``.
        target: the target ``p``; a correct sampler's output follows it exactly.
        name: a short label for reports.
        tags: free-form labels (e.g. ``"equal_scales"``) used to pick which mutants apply.
    """

    draft: GaussianMixture
    target: GaussianMixture
    name: str = "case"
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        require_mixture(self.draft, "draft")
        require_mixture(self.target, "target")
        require_same_event(self.draft, self.target)
        for label, dist in (("draft", self.draft), ("target", self.target)):
            if dist.batch_shape != ():
                raise ValueError(f"{label}: a Case holds single mixtures (batch shape ()), got "
                                 f"{dist.batch_shape}")

    @property
    def dim(self) -> int:
        """Event dimension d."""
        return self.target.dim


def demo_case() -> Case:
    """The built-in 2-D case of ``cspd demo``: a 3-component target, a 2-component draft."""
    target = GaussianMixture(
        weights=[0.5, 0.3, 0.2],
        means=[[0.0, 0.0], [2.0, 1.0], [-1.5, 2.0]],
        scales=[[1.0, 0.6], [0.5, 0.8], [0.7, 0.7]],
    )
    draft = GaussianMixture(
        weights=[0.6, 0.4],
        means=[[0.3, 0.2], [1.5, 1.5]],
        scales=[[1.2, 0.8], [0.9, 1.0]],
    )
    return Case(draft=draft, target=target, name="demo-2d-mixture")


def equal_scale_gaussian_case(dim: int = 2, shift: float = 1.0) -> Case:
    """Single Gaussians with equal unit scales and means ``shift / sqrt(d)`` apart per axis:
    Mahalanobis distance ``shift``, so ``TV = 2 Phi(shift/2) - 1``."""
    mean_shift = np.full(dim, shift / np.sqrt(dim))
    draft = GaussianMixture([1.0], np.zeros((1, dim)), np.ones((1, dim)))
    target = GaussianMixture([1.0], mean_shift[None, :], np.ones((1, dim)))
    return Case(draft=draft, target=target, name=f"equal-scale-gaussians-d{dim}",
                tags=("equal_scales", "single_gaussian"))


@dataclass(frozen=True)
class DiffusionCase:
    """Diffusion-head tokens: draft and target ``GaussianChain``\\ s (docs/contract.md §2).

    ``target`` is the target chain's exact ``x_0`` law when it has a closed form (a
    ``LinearGaussianChain``), else ``None``, and then ``verify`` compares against direct target
    chain samples with two-sample tests. ``draft`` likewise. Acceptance counts are not checked
    against ``1 - TV(target, draft)``: aligned trajectories accept at ``E[1 - TV(last steps)]``.
    """

    draft_chain: Any
    target_chain: Any
    name: str = "diffusion-case"
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        from cspd_ref.diffusion import require_compatible_chains

        require_compatible_chains(self.draft_chain, self.target_chain)

    @property
    def target(self) -> GaussianMixture | None:
        """The closed-form ``x_0`` law of the target chain, or None."""
        marginal = getattr(self.target_chain, "marginal", None)
        return marginal() if callable(marginal) else None

    @property
    def draft(self) -> GaussianMixture | None:
        """The closed-form ``x_0`` law of the draft chain, or None."""
        marginal = getattr(self.draft_chain, "marginal", None)
        return marginal() if callable(marginal) else None

    @property
    def dim(self) -> int:
        """Token dimension d."""
        return int(self.target_chain.dim)

    def reference_samples(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``n`` tokens from the target chain run directly (the two-sample reference)."""
        return np.asarray(self.target_chain.sample(n, rng=rng))


@dataclass(frozen=True)
class ARCase:
    """AR sequences: draft and target ``ARModel``\\ s and the group schedule (docs/contract.md §2).

    A sequence sampler returns ``(n, L, d)``; ``verify`` applies the target's Rosenblatt
    transform, which maps target sequences to iid U(0, 1).
    """

    draft: Any
    target: Any
    schedule: Any
    name: str = "ar-case"
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        from cspd_ref.ar import check_model

        check_model(self.draft, "draft", self.schedule)
        check_model(self.target, "target", self.schedule)
        if self.draft.dim != self.target.dim:
            raise ValueError(f"target: dim {self.target.dim} differs from the draft's "
                             f"{self.draft.dim}")

    @property
    def dim(self) -> int:
        """Token dimension d."""
        return int(self.target.dim)

    @property
    def seq_len(self) -> int:
        """Sequence length L."""
        return int(self.schedule.seq_len)


def mixture_1d_case() -> Case:
    """A 1-D case: a bimodal two-component target and a single broad Gaussian draft.

    Exercises the exact 1-D KS test (no projections) and the loop/batched residual sampler
    (unequal scales, so no reflection).
    """
    target = GaussianMixture(weights=[0.55, 0.45], means=[[-1.2], [1.0]], scales=[[0.6], [0.9]])
    draft = GaussianMixture(weights=[1.0], means=[[0.0]], scales=[[1.4]])
    return Case(draft=draft, target=target, name="mixture-1d", tags=("one_dim",))
