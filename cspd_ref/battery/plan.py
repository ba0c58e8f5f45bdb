"""Planning a ``verify`` call: tiers, the number of checks, sample sizes, detectable effects.

Every check of a call is judged at (at worst) the Bonferroni level ``alpha / n_checks``, where
``n_checks`` is an upper bound on the checks the call will run, fixed before sampling
(``plan_for``; it must count what ``cspd_ref.battery.checks`` assembles for the case). The
sample size is planned so that each one-dimensional check detects its tier's KS distance with
probability ``POWER`` at that level (``planned_sample_size``, from the DKW bound of
``cspd_ref.stats.planning``), and ``detectable_effects`` states what a call at a given ``n``
can and cannot see (docs/battery.md §4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.distributions import GaussianMixture, logsumexp
from cspd_ref.stats.directions import case_directions
from cspd_ref.stats.planning import (
    atom_detectable_mass,
    binomial_detectable_deviation,
    ks2_detectable_distance,
    ks_detectable_distance,
    ks_sample_size,
)
from cspd_ref.stats.precision import FloatFormat
from cspd_ref.theory import TVBounds

POWER = 0.99
"""Detection probability the sizes are planned for."""
MAX_PLANNING_DISTANCE = 0.5
"""A call whose checks cannot see even this KS distance (at power ``POWER``) is refused."""


@dataclass(frozen=True)
class Tier:
    """Planned KS distances of one tier.

    Attributes:
        token: one-sample KS distance for closed-form token and diffusion targets.
        two_sample: two-sample KS distance for nonlinear diffusion heads.
        sequence: one-sample KS distance per Rosenblatt column for AR sequences.

    Examples:
        >>> TIERS["full"].token, TIERS["quick"].token
        (0.005, 0.03)
    """

    token: float
    two_sample: float
    sequence: float


TIERS: dict[str, Tier] = {
    "quick": Tier(token=0.03, two_sample=0.08, sequence=0.08),
    "full": Tier(token=0.005, two_sample=0.02, sequence=0.03),
}


@dataclass(frozen=True)
class DetectableEffect:
    """The smallest effect one family of checks flags with probability ``>= POWER``.

    Attributes:
        value: the effect size (a KS distance, an acceptance-rate deviation, ...).
        meaning: what ``value`` measures, in words.

    Examples:
        >>> str(DetectableEffect(0.005, "KS distance along a tested direction"))
        '0.005 (KS distance along a tested direction)'
    """

    value: float
    meaning: str

    def __str__(self) -> str:
        return f"{self.value:.4g} ({self.meaning})"


@dataclass(frozen=True)
class BatteryPlan:
    """How many checks a call runs (an upper bound, fixed before sampling) and its size.

    Attributes:
        n_checks: upper bound on the number of checks (the Bonferroni divisor).
        distance: the KS distance the sample size is planned for.
        two_sample: the checks compare with reference draws (nonlinear diffusion heads).
        sequence: the checks are on Rosenblatt columns of sequences (AR cases).

    Examples:
        >>> BatteryPlan(n_checks=6, distance=0.03, two_sample=False, sequence=False).n_checks
        6
    """

    n_checks: int
    distance: float
    two_sample: bool
    sequence: bool


def plan_for(case: Any, n_projections: int, tier: Tier) -> BatteryPlan:
    """The number of checks the battery will run on ``case`` (upper bound) and the planned
    KS distance.

    Examples:
        >>> from cspd_ref.builtin_cases import ar_mixture_case
        >>> from cspd_ref.cases import demo_case
        >>> plan_for(demo_case(), 4, TIERS["full"])
        BatteryPlan(n_checks=20, distance=0.005, two_sample=False, sequence=False)
        >>> plan_for(ar_mixture_case(), 4, TIERS["quick"]).sequence
        True
    """
    if isinstance(case, ARCase):
        columns = case.seq_len * case.dim
        return BatteryPlan(columns + 4, tier.sequence, False, True)
    target = case.target
    if isinstance(case, DiffusionCase) and target is None:
        d = case.dim
        return BatteryPlan(d + (n_projections if d > 1 else 0) + 2, tier.two_sample, True,
                           False)
    directions = len(case_directions(case.draft, target))
    randoms = n_projections if target.dim > 1 else 0
    rosenblatt = 3 if target.dim > 1 else 0
    counts = 2 if isinstance(case, Case) else 0
    return BatteryPlan(directions + randoms + rosenblatt + 2 + 1 + counts, tier.token, False,
                       False)


def planned_sample_size(plan: BatteryPlan, alpha: float) -> int:
    """``n`` so that each check, at level ``alpha / plan.n_checks``, detects its planned KS
    distance with probability ``POWER`` (``ks_sample_size``; two-sample checks need about four
    times as many rows: ``ks2_detectable_distance``).

    Examples:
        >>> planned_sample_size(BatteryPlan(20, 0.03, False, False), 1e-4)
        19296
    """
    level = alpha / plan.n_checks
    if plan.two_sample:
        n = ks_sample_size(plan.distance, level, POWER)
        while ks2_detectable_distance(n, level, POWER) > plan.distance:
            n = math.ceil(n * 1.1)
        return n
    return ks_sample_size(plan.distance, level, POWER)


def minimum_sample_size(plan: BatteryPlan, alpha: float) -> int:
    """The smallest ``n`` at which the call's checks can see a KS distance of
    ``MAX_PLANNING_DISTANCE`` (and the MMD test has its training and betting rows).

    Examples:
        >>> minimum_sample_size(BatteryPlan(20, 0.03, False, False), 1e-4)
        70
        >>> minimum_sample_size(BatteryPlan(8, 0.08, True, False), 1e-4)
        289
    """
    level = alpha / plan.n_checks
    n = ks_sample_size(MAX_PLANNING_DISTANCE, level, POWER)
    if plan.two_sample:
        while ks2_detectable_distance(n, level, POWER) > MAX_PLANNING_DISTANCE:
            n += 1
        n = max(n, 4 * 50)
    return n


def largest_cell_probability(samples: np.ndarray, target: GaussianMixture,
                             fmt: FloatFormat) -> float:
    """An upper bound on the target probability of any rounding cell ``atom_check`` uses here:
    the peak-density bound ``sum_k w_k prod_j 1 / (sqrt(2 pi) s_kj)`` times the product of the
    columns' largest cell widths ``ulp(max_i |x_ij|)`` (clipped to [1e-300, 1]).

    Examples:
        >>> import numpy as np
        >>> from cspd_ref import DiagGaussian
        >>> from cspd_ref.stats.precision import float_format
        >>> p = DiagGaussian([0.0], [1.0])
        >>> cell = largest_cell_probability(np.array([[0.5], [1.5]]), p, float_format("float32"))
        >>> bool(np.isclose(cell, np.spacing(np.float32(1.5)) / np.sqrt(2 * np.pi)))
        True
    """
    with np.errstate(divide="ignore"):
        log_peaks = (np.log(target.weights) - np.log(target.scales).sum(axis=-1)
                     - 0.5 * target.dim * math.log(2.0 * math.pi))
    log_peak = float(logsumexp(log_peaks))
    log_volume = float(np.log(fmt.spacing(np.abs(samples).max(axis=0))).sum())
    return float(min(1.0, max(1e-300, math.exp(min(0.0, max(-690.0, log_peak + log_volume))))))


def detectable_effects(plan: BatteryPlan, n: int, alpha: float, n_checks: int,
                       bounds: TVBounds | None, resolution: str,
                       cell_probability: float | None = None) -> dict[str, DetectableEffect]:
    """What this call detects with probability ``>= POWER`` per check family, at the per-check
    level ``alpha / n_checks`` (``ks_detectable_distance``, ``ks2_detectable_distance``,
    ``binomial_detectable_deviation``: guarantees, not approximations).

    Examples:
        >>> effects = detectable_effects(BatteryPlan(20, 0.03, False, False), 19296, 1e-4, 20,
        ...                              None, "float64")
        >>> sorted(effects), round(effects["ks_projection"].value, 4)
        (['ks2_log_density', 'ks_projection'], 0.03)
    """
    level = alpha / max(1, n_checks)
    if plan.sequence:
        return {"ks_rosenblatt": DetectableEffect(ks_detectable_distance(n, level, POWER),
                                                  "KS distance of one Rosenblatt column")}
    if plan.two_sample:
        return {"ks2_projection": DetectableEffect(
            ks2_detectable_distance(n, level, POWER),
            "KS distance along a tested direction, two-sample")}
    band = "" if resolution == "float64" else f", plus the {resolution} rounding band"
    out = {
        "ks_projection": DetectableEffect(ks_detectable_distance(n, level, POWER),
                                          f"KS distance along a tested direction{band}"),
        "ks2_log_density": DetectableEffect(ks2_detectable_distance(n, level, POWER),
                                            "KS distance of log p or log p - log q, two-sample"),
    }
    if cell_probability is not None:
        out["atoms"] = DetectableEffect(
            atom_detectable_mass(n, level, POWER, cell_probability),
            "share of the output on one value (a point mass)")
    if bounds is not None:
        out["acceptance_binomial"] = DetectableEffect(
            binomial_detectable_deviation(n, (1.0 - bounds.upper, 1.0 - bounds.lower), level,
                                          POWER),
            f"acceptance-rate deviation beyond the TV interval ±{bounds.half_width:.2g}")
    return out
