"""``verify``: judge a sampler against its target with the statistical battery (docs/battery.md).

A sampler follows the contract ``sampler(case, n, seed) -> (n, d)`` (a NumPy array or a torch
tensor, in any float dtype including float16/bfloat16; sequence samplers return ``(n, L, d)``).
It may instead return an object with ``.samples`` and, optionally, ``.accepted`` and ``.trials``
(like ``SpeculativeResult``): then the acceptance count and the residual trial counts are
tested too.

The null hypothesis of a call: the output is an exact draw from the case's target law, rounded
to the output's dtype (round to nearest; the battery allows one unit in the last place per
value), and, when exposed, the acceptance and trial counts follow the speculative-sampling laws.

Checks, by case type (every p-value is exact, a bound, or valid by construction at every level;
the argument is in each check's docstring):

* ``Case`` (closed-form mixture target):
  - one-sample KS of projections against the exact projected mixture CDF, along every coordinate
    axis, along the draft–target directions the case parameters determine
    (``stats.directions``), and along random directions (drawn from the battery's seed, never
    from the data), each allowing the output's rounding;
  - two-sample KS of the log-likelihood ratio ``log p(x) - log q(x)`` and of ``log p(x)`` against
    an exact target sample of the same size rounded to the same dtype (the direction in which
    "mass leaks toward the draft" shows, and over/under-dispersion in any direction);
  - uniformity and consecutive-column independence of the target's Rosenblatt transform (float32
    and float64 output; see ``rosenblatt_checks``);
  - the atom check at the output's native resolution;
  - acceptance ``~ Binomial(n, 1 - TV)`` and trials ``~ Geometric(TV)`` when exposed, TV exact or
    in a guaranteed Monte Carlo interval whose miss probability is part of the p-value.
* ``DiffusionCase``: as ``Case`` on the chains' closed-form marginals when they have them (the
  draft chain's marginal gives the draft–target directions and ``log q``; no count checks);
  otherwise, against an equally large sample of the target chain run directly: exact
  two-sample KS along the axes and random directions, the kernel MMD test by betting, and
  the atom check.
* ``ARCase``: the target's Rosenblatt transform of the sequences: pooled uniformity, a KS per
  column, consecutive-column independence, and the atom check.

All p-values of one call are combined by Holm's step-down procedure at ``alpha``: ``equivalent``
is False iff Holm rejects at least one null, so an exact sampler is flagged with probability at
most ``alpha`` per call, under any dependence between the checks.

Sizes. ``tier="full"`` (the default) plans ``n`` so that a law at KS distance ``>= 0.005`` along
any tested direction is flagged with probability ``>= 0.99`` by that direction's check alone, at
the per-check level ``alpha / (number of checks)`` (Bonferroni, the worst case of Holm): about
10^6 tokens. ``tier="quick"`` (KS distance 0.03, about 10^4 tokens) is for broad sweeps over many
cases. Sequence and nonlinear-diffusion cases have their own planned distances
(``TIERS``). ``Verdict.detectable`` states what the call could and could not see.

Modules: this one runs the battery and holds its result (``verify``, ``iter_verify``,
``verify_many``, ``Verdict``); the sampler-output contract is ``cspd_ref.battery.output``, the
planning ``cspd_ref.battery.plan``, the checks per case type ``cspd_ref.battery.checks``, the
statistical tests ``cspd_ref.stats``. The names callers use are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cspd_ref.battery.checks import (
    count_checks,
    finite_check,
    mixture_checks,
    sequence_checks,
    two_sample_checks,
)
from cspd_ref.battery.output import (
    SamplerOutput,
    SamplerOutputError,
    expected_shape,
    normalise_output,
)
from cspd_ref.battery.plan import (
    MAX_PLANNING_DISTANCE,
    POWER,
    TIERS,
    BatteryPlan,
    DetectableEffect,
    Tier,
    detectable_effects,
    largest_cell_probability,
    minimum_sample_size,
    plan_for,
    planned_sample_size,
)
from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.stats import CheckResult, holm
from cspd_ref.stats.precision import float_format
from cspd_ref.theory import TVBounds
from cspd_ref.validation import require_int

__all__ = [
    "BATTERY_STREAM",
    "DEFAULT_ALPHA",
    "DEFAULT_PROJECTIONS",
    "MAX_PLANNING_DISTANCE",
    "POWER",
    "TIERS",
    "BatteryPlan",
    "DetectableEffect",
    "SamplerOutput",
    "SamplerOutputError",
    "Tier",
    "Verdict",
    "iter_verify",
    "minimum_sample_size",
    "normalise_output",
    "plan_for",
    "planned_sample_size",
    "verify",
    "verify_many",
]

DEFAULT_ALPHA = 1e-4
"""Family-wise false-alarm probability of one ``verify`` call."""
DEFAULT_PROJECTIONS = 4
"""Random unit directions per call, besides the directions the case determines."""
BATTERY_STREAM = 0xBA77E27
"""Entropy mixed into the seed of the battery's own randomness (directions, references, TV)."""


@dataclass(frozen=True)
class Verdict:
    """The result of ``verify``.

    Attributes:
        equivalent: False iff Holm's procedure at ``alpha`` rejects at least one check's null.
        checks: every individual ``CheckResult``.
        adjusted_pvalues: Holm-adjusted p-values, aligned with ``checks``.
        alpha: the family-wise level of this call.
        n: samples requested from the sampler.
        seed: the seed passed to the sampler.
        case_name: the case's name.
        tier: ``"quick"``, ``"full"`` or ``"custom"`` (an explicit ``n``).
        resolution: the output's native floating format.
        detectable: per check family, the smallest effect flagged with probability
            ``>= POWER`` by that family's checks alone at this ``n`` and level (a guarantee
            from the DKW and exact binomial bounds; the measured power curves are in
            ``reports/power.md``).
        skipped: checks that did not run, with the reason.
        output: the sampler's output (kept for reports).

    Examples:
        >>> from cspd_ref.stats import CheckResult
        >>> check = CheckResult("ks_1d", 0.2, 1e-7, 100, "x vs F", "iid from F", 0.0)
        >>> v = Verdict(equivalent=False, checks=(check,), adjusted_pvalues=(1e-7,), alpha=1e-4,
        ...             n=100, seed=0, case_name="toy", tier="custom")
        >>> [c.name for c in v.failed], v.min_adjusted_pvalue
        (['ks_1d'], 1e-07)
    """

    equivalent: bool
    checks: tuple[CheckResult, ...]
    adjusted_pvalues: tuple[float, ...]
    alpha: float
    n: int
    seed: int
    case_name: str
    tier: str = "full"
    resolution: str = "float64"
    detectable: dict[str, DetectableEffect] = field(default_factory=dict, compare=False)
    skipped: tuple[str, ...] = ()
    output: SamplerOutput | None = field(default=None, repr=False, compare=False)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The checks whose Holm-adjusted p-value is <= alpha.

        Examples:
            >>> from cspd_ref.stats import CheckResult
            >>> ok = CheckResult("ks_1d", 0.01, 0.5, 100, "x vs F", "iid from F", 0.0)
            >>> Verdict(True, (ok,), (0.5,), 1e-4, 100, 0, "toy").failed
            ()
        """
        return tuple(c for c, p in zip(self.checks, self.adjusted_pvalues, strict=True)
                     if p <= self.alpha)

    @property
    def min_adjusted_pvalue(self) -> float:
        """The smallest Holm-adjusted p-value (the verdict's margin; 1 without checks).

        Examples:
            >>> Verdict(True, (), (), 1e-4, 100, 0, "toy").min_adjusted_pvalue
            1.0
        """
        return min(self.adjusted_pvalues) if self.adjusted_pvalues else 1.0

    @property
    def detectable_distance(self) -> float:
        """The KS distance this call's main one-dimensional checks detect with probability
        ``>= POWER`` (projections, or Rosenblatt columns, or two-sample projections; NaN when
        the call ran none of them).

        Examples:
            >>> effect = DetectableEffect(0.03, "KS distance")
            >>> Verdict(True, (), (), 1e-4, 100, 0, "toy",
            ...         detectable={"ks_projection": effect}).detectable_distance
            0.03
        """
        for family in ("ks_projection", "ks_rosenblatt", "ks2_projection"):
            if family in self.detectable:
                return self.detectable[family].value
        return math.nan

    def summary(self) -> str:
        """A few human-readable lines: the verdict, failed checks, what it could not see.

        Examples:
            >>> print(Verdict(True, (), (), 1e-4, 100, 0, "toy", tier="custom").summary())
            toy: EQUIVALENT (n=100, seed=0, tier=custom, output float64, 0 checks, Holm at \
alpha=0.0001, min adjusted p=1)
        """
        head = (f"{self.case_name}: {'EQUIVALENT' if self.equivalent else 'NOT EQUIVALENT'} "
                f"(n={self.n}, seed={self.seed}, tier={self.tier}, output {self.resolution}, "
                f"{len(self.checks)} checks, Holm at alpha={self.alpha:g}, min adjusted "
                f"p={self.min_adjusted_pvalue:.3g})")
        lines = [head]
        for c in self.failed:
            lines.append(f"  failed: {c.name}: statistic {c.statistic:.4g}, p={c.pvalue:.3g} "
                         f"— {c.compared}")
        if self.detectable:
            lines.append("  could not see (power < 99% below these): " + "; ".join(
                f"{family}: {effect}" for family, effect in self.detectable.items()))
        for reason in self.skipped:
            lines.append(f"  skipped: {reason}")
        return "\n".join(lines)


def verify(sampler: Callable[..., Any], case: Case | DiffusionCase | ARCase, *, seed: int = 0,
           n: int | None = None, alpha: float = DEFAULT_ALPHA, tier: str = "full",
           n_projections: int = DEFAULT_PROJECTIONS, keep_output: bool = False) -> Verdict:
    """Run the battery on ``sampler`` for ``case`` and return a ``Verdict`` (docs/contract.md §3).

    Null hypothesis of the whole call: the sampler's output follows the case's target law
    exactly, up to rounding to its dtype (and, when exposed, its acceptance and trial counts
    follow the speculative-sampling laws). Under it ``P(equivalent is False) <= alpha``.

    Args:
        sampler: ``sampler(case, n, seed)`` per the contract of docs/contract.md.
        case: a ``Case``, ``DiffusionCase`` or ``ARCase``.
        seed: passed to the sampler; the battery's own randomness is seeded from it too,
            on an independent stream.
        n: samples to request; default planned by ``tier``.
        alpha: family-wise level of this call (Holm over all its checks).
        tier: ``"full"`` (default: KS distance 0.005 for token cases, about 10^6 samples) or
            ``"quick"`` (KS distance 0.03, about 10^4; for broad sweeps).
        n_projections: random unit directions besides the case's own (d > 1).
        keep_output: keep the sampler's output in the verdict (for reports).

    Raises:
        ValueError: for a bad argument, or an ``n`` too small for any meaningful claim (the
            message names the minimum).
        SamplerOutputError: (a ``ValueError``) the sampler's output breaks the contract:
            samples of the wrong shape or dtype, ``accepted`` not bool of length n, ``trials``
            not non-negative integers of length n.

    Examples:
        >>> from cspd_ref.cases import demo_case
        >>> from cspd_ref.samplers import token_sampler
        >>> verdict = verify(token_sampler("auto"), demo_case(), tier="quick")
        >>> verdict.equivalent, verdict.n
        (True, 19296)
    """
    if not callable(sampler):
        raise ValueError("sampler: must be callable as sampler(case, n, seed)")
    if not isinstance(case, Case | DiffusionCase | ARCase):
        raise ValueError(f"case: expected a Case, DiffusionCase or ARCase, got "
                         f"{type(case).__name__}")
    seed = require_int(seed, "seed")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1), got {alpha}")
    if tier not in TIERS:
        raise ValueError(f"tier: expected one of {sorted(TIERS)}, got {tier!r}")
    n_projections = require_int(n_projections, "n_projections", minimum=1)
    plan = plan_for(case, n_projections, TIERS[tier])
    tier_name = tier
    if n is None:
        n = planned_sample_size(plan, alpha)
    else:
        n = require_int(n, "n", minimum=1)
        tier_name = "custom"
    minimum = minimum_sample_size(plan, alpha)
    if n < minimum:
        raise ValueError(f"n: {n} samples cannot support any claim at alpha={alpha:g} with "
                         f"{plan.n_checks} checks (no check could see even a KS distance of "
                         f"{MAX_PLANNING_DISTANCE}); use n >= {minimum}")

    out = normalise_output(sampler(case, n, seed), n, expected_shape(case, n))
    rng = np.random.default_rng([seed, BATTERY_STREAM])

    checks: list[CheckResult] = []
    skipped: list[str] = []
    bounds: TVBounds | None = None
    cell_probability: float | None = None
    bad = finite_check(out.samples)
    if bad is not None:
        checks.append(bad)
    elif isinstance(case, ARCase):
        checks.extend(sequence_checks(out.samples, case, out.resolution))
    elif isinstance(case, DiffusionCase) and case.target is None:
        checks.extend(two_sample_checks(out, case, rng=rng, n_projections=n_projections))
    else:
        target = case.target
        assert target is not None
        found, skipped = mixture_checks(out, case.draft, target, rng=rng,
                                        n_projections=n_projections)
        checks.extend(found)
        cell_probability = largest_cell_probability(out.samples.astype(np.float64), target,
                                                    float_format(out.resolution))
        if isinstance(case, Case):
            counts, bounds = count_checks(out, case, alpha / plan.n_checks, rng=rng)
            checks.extend(counts)
    adjusted = holm([c.pvalue for c in checks])
    equivalent = bool(np.all(adjusted > alpha))
    return Verdict(
        equivalent=equivalent,
        checks=tuple(checks),
        adjusted_pvalues=tuple(float(p) for p in adjusted),
        alpha=alpha,
        n=n,
        seed=seed,
        case_name=getattr(case, "name", type(case).__name__),
        tier=tier_name,
        resolution=out.resolution,
        detectable=detectable_effects(plan, n, alpha, len(checks), bounds, out.resolution,
                                      cell_probability),
        skipped=tuple(skipped),
        output=out if keep_output else None,
    )


def iter_verify(sampler: Callable[..., Any], cases: Sequence[Case | DiffusionCase | ARCase], *,
                seed: int = 0, alpha: float = DEFAULT_ALPHA, **kwargs: Any) -> Iterator[Verdict]:
    """``verify`` on several cases in turn: case ``i`` at ``alpha / len(cases)`` (Bonferroni
    across cases, so the whole run flags an exact sampler with probability <= ``alpha``) with
    seed ``seed + i``. Yields each verdict as soon as it is ready.

    Examples:
        >>> from cspd_ref.cases import mixture_1d_case
        >>> from cspd_ref.samplers import token_sampler
        >>> cases = [mixture_1d_case(), mixture_1d_case()]
        >>> [(v.seed, v.alpha) for v in iter_verify(token_sampler(), cases, n=2000, alpha=1e-4)]
        [(0, 5e-05), (1, 5e-05)]
    """
    per_case = alpha / max(1, len(cases))
    for i, case in enumerate(cases):
        yield verify(sampler, case, seed=seed + i, alpha=per_case, **kwargs)


def verify_many(sampler: Callable[..., Any], cases: Sequence[Case | DiffusionCase | ARCase], *,
                seed: int = 0, alpha: float = DEFAULT_ALPHA, progress: bool = True,
                **kwargs: Any) -> list[Verdict]:
    """``iter_verify`` collected into a list, with a progress bar on stderr.

    Examples:
        >>> from cspd_ref.cases import mixture_1d_case
        >>> from cspd_ref.samplers import token_sampler
        >>> verdicts = verify_many(token_sampler(), [mixture_1d_case()], n=2000, progress=False)
        >>> [v.equivalent for v in verdicts]
        [True]
    """
    from tqdm import tqdm

    verdicts = iter_verify(sampler, cases, seed=seed, alpha=alpha, **kwargs)
    return list(tqdm(verdicts, total=len(cases), desc="verify", disable=not progress,
                     unit="case"))
