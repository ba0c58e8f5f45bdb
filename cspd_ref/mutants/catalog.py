"""The gross mutant catalog: each known-bad sampler paired with a case on which its law differs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cspd_ref import GaussianMixture
from cspd_ref.builtin_cases import ar_mixture_case, linear_chain_case
from cspd_ref.cases import Case, demo_case
from cspd_ref.mutants.ar import (
    ar_bonus_group_from_draft,
    ar_groups_kept_after_rejection,
    ar_scored_on_verified_prefix,
)
from cspd_ref.mutants.diffusion import (
    noiseless_last_step,
    unaligned_target_last_step,
    variance_as_scale_in_last_step,
)
from cspd_ref.mutants.token import (
    capped_residual_keeps_draft,
    capped_residual_with_fallback,
    draft_as_residual_proposal,
    draft_without_verification,
    inner_temperature,
    missing_clip_in_residual,
    ratio_direction_flipped,
    reflection_with_unequal_scales,
    residual_reuses_draft_noise,
    residual_skips_rejection_test,
    shared_rng_stream,
    unnormalised_mixture_weights,
    variances_passed_as_scales,
)

FloatArray = np.ndarray


@dataclass(frozen=True)
class Mutant:
    """A known-bad sampler and a case on which its law differs from the target's."""

    name: str
    mistake: str
    sampler: Callable[[Any, int, int], Any]
    case: Callable[[], Any]
    n: int | None = None
    """Sample size when the default plan is not enough for near-certain detection."""



# --------------------------------------------------------------------------- the cases
def mixture_case() -> Case:
    """The demo case (K=3 target, K=2 draft, TV ~0.27)."""
    return demo_case()


def unequal_weight_case() -> Case:
    """A 1-D two-component target with weights (0.8, 0.2); draft a shifted copy."""
    target = GaussianMixture([0.8, 0.2], [[0.0], [3.0]], [[1.0], [0.6]])
    draft = GaussianMixture([0.8, 0.2], [[0.7], [3.5]], [[1.0], [0.6]])
    return Case(draft, target, name="unequal-weights-1d")


def unequal_scale_gaussian_case() -> Case:
    """Single Gaussians in 2-D, target scales 1.5x the draft's."""
    return Case(GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]]),
                GaussianMixture([1.0], [[1.0, 0.5]], [[1.5, 1.5]]), name="unequal-scales-2d")


def non_unit_scale_case() -> Case:
    """2-D mixtures with scales far from 1, where scale and variance differ."""
    target = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [2.0, 1.0]], [[0.4, 2.5], [0.5, 2.0]])
    draft = GaussianMixture([0.5, 0.5], [[0.3, 0.5], [1.5, 1.0]], [[0.5, 2.0], [0.5, 2.5]])
    return Case(draft, target, name="non-unit-scales-2d")


linear_diffusion_case = linear_chain_case
"""Linear chains, T = 4, d = 2 (``cspd_ref.builtin_cases.linear_chain_case``)."""
ar_case = ar_mixture_case
"""L = 6, d = 2, 4 groups (``cspd_ref.builtin_cases.ar_mixture_case``)."""


MUTANTS: tuple[Mutant, ...] = (
    Mutant("inner_temperature", "log-ratio divided by an inner temperature 2", inner_temperature,
           mixture_case),
    Mutant("ratio_direction_flipped", "log q - log p instead of log p - log q",
           ratio_direction_flipped, mixture_case),
    Mutant("capped_residual_with_fallback", "residual capped at 2 tries, fallback 0.0",
           capped_residual_with_fallback, mixture_case),
    Mutant("capped_residual_keeps_draft", "residual capped at 2 tries, keeps the draft",
           capped_residual_keeps_draft, mixture_case),
    Mutant("residual_reuses_draft_noise", "first residual proposal reuses the draft's noise",
           residual_reuses_draft_noise, mixture_case, n=40_000),
    Mutant("shared_rng_stream", "residual generator re-seeded with the draft's seed",
           shared_rng_stream, mixture_case),
    Mutant("missing_clip_in_residual", "|1 - q/p| instead of max(0, 1 - q/p)",
           missing_clip_in_residual, mixture_case),
    Mutant("draft_as_residual_proposal", "residual proposals from q instead of p",
           draft_as_residual_proposal, mixture_case),
    Mutant("unnormalised_mixture_weights", "target log-density with unnormalised weights",
           unnormalised_mixture_weights, unequal_weight_case),
    Mutant("residual_skips_rejection_test", "rejected rows replaced by a plain draw from p",
           residual_skips_rejection_test, mixture_case),
    Mutant("reflection_with_unequal_scales", "reflection coupling used with unequal scales",
           reflection_with_unequal_scales, unequal_scale_gaussian_case),
    Mutant("variances_passed_as_scales", "variances where standard deviations are expected",
           variances_passed_as_scales, non_unit_scale_case),
    Mutant("draft_without_verification", "every draft accepted", draft_without_verification,
           mixture_case),
    Mutant("noiseless_last_step", "draft's last step noiseless but scored as Gaussian",
           noiseless_last_step, linear_diffusion_case),
    Mutant("unaligned_target_last_step", "target last step evaluated at the draft's x_1",
           unaligned_target_last_step, linear_diffusion_case),
    Mutant("variance_as_scale_in_last_step", "(tau s)^2 used as the last-step scale",
           variance_as_scale_in_last_step, linear_diffusion_case),
    Mutant("ar_groups_kept_after_rejection", "later groups kept after a rejected group",
           ar_groups_kept_after_rejection, ar_case, n=2000),
    Mutant("ar_bonus_group_from_draft", "bonus group sampled from the draft",
           ar_bonus_group_from_draft, ar_case, n=2000),
    Mutant("ar_scored_on_verified_prefix", "drafted groups scored on the verified prefix only",
           ar_scored_on_verified_prefix, ar_case, n=2000),
)
