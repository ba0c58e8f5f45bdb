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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cspd_ref.ar import ar_rosenblatt
from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.distributions import GaussianMixture, logsumexp
from cspd_ref.stats import (
    CheckResult,
    acceptance_binomial_test,
    atom_check,
    geometric_trials_test,
    holm,
    ks_one_sample,
    ks_projections,
    ks_two_sample,
    ks_two_sample_projections,
    mmd_betting_test,
    pit_independence,
    pit_uniformity,
    random_unit_directions,
)
from cspd_ref.stats.directions import case_directions
from cspd_ref.stats.ks import uniform_cdf
from cspd_ref.stats.planning import (
    atom_detectable_mass,
    binomial_detectable_deviation,
    ks2_detectable_distance,
    ks_detectable_distance,
    ks_sample_size,
)
from cspd_ref.stats.precision import FloatFormat, float_format
from cspd_ref.theory import TVBounds, tv_bounds
from cspd_ref.validation import require_int

DEFAULT_ALPHA = 1e-4
"""Family-wise false-alarm probability of one ``verify`` call."""
DEFAULT_PROJECTIONS = 4
"""Random unit directions per call, besides the directions the case determines."""
POWER = 0.99
"""Detection probability the sizes are planned for."""
BATTERY_STREAM = 0xBA77E27
"""Entropy mixed into the seed of the battery's own randomness (directions, references, TV)."""
TV_MONTE_CARLO_SAMPLES = (20_000, 2_000_000)
"""Monte Carlo draws for the TV interval when no closed form applies: ``4 n`` within these
bounds (the interval's half-width is then about a quarter to a third of the binomial test's
resolution)."""
ROSENBLATT_ROWS = 2**18
"""The Rosenblatt checks use the first this many rows (a fixed, data-independent subsample):
its pooled test still holds ``rows x d`` values, and the per-row cost is ``K d``."""
TV_MISS_SHARE = 0.1
"""Share of the acceptance check's level spent on the TV interval missing the true TV."""
MAX_PLANNING_DISTANCE = 0.5
"""A call whose checks cannot see even this KS distance (at power ``POWER``) is refused."""
ROSENBLATT_ROUNDING_LIMIT = 0.01
"""Rosenblatt checks run when the output's rounding moves PIT values by at most this fraction of
the KS resolution ``1/sqrt(n)`` (always for float64; float32 unless scales are tiny next to the
values; never for 16-bit output)."""


@dataclass(frozen=True)
class Tier:
    """Planned KS distances of one tier.

    Attributes:
        token: one-sample KS distance for closed-form token and diffusion targets.
        two_sample: two-sample KS distance for nonlinear diffusion heads.
        sequence: one-sample KS distance per Rosenblatt column for AR sequences.
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
    """

    value: float
    meaning: str

    def __str__(self) -> str:
        return f"{self.value:.4g} ({self.meaning})"


@dataclass(frozen=True)
class SamplerOutput:
    """What a sampler returned, converted to NumPy, with its native floating format."""

    samples: np.ndarray
    accepted: np.ndarray | None = None
    trials: np.ndarray | None = None
    resolution: str = "float64"


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
        """The checks whose Holm-adjusted p-value is <= alpha."""
        return tuple(c for c, p in zip(self.checks, self.adjusted_pvalues, strict=True)
                     if p <= self.alpha)

    @property
    def min_adjusted_pvalue(self) -> float:
        """The smallest Holm-adjusted p-value (the verdict's margin)."""
        return min(self.adjusted_pvalues) if self.adjusted_pvalues else 1.0

    @property
    def detectable_distance(self) -> float:
        """The KS distance this call's main one-dimensional checks detect with probability
        ``>= POWER`` (projections, or Rosenblatt columns, or two-sample projections)."""
        for family in ("ks_projection", "ks_rosenblatt", "ks2_projection"):
            if family in self.detectable:
                return self.detectable[family].value
        return math.nan

    def summary(self) -> str:
        """A few human-readable lines: the verdict, failed checks, what it could not see."""
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


class SamplerOutputError(ValueError):
    """The sampler's output breaks the contract of ``docs/contract.md``: samples of the wrong
    shape or a non-float dtype, ``accepted`` not a bool array of length n, ``trials`` not
    non-negative integers of length n. ``verify`` cannot judge such output."""


def native_format(value: Any) -> FloatFormat:
    """The floating format of an array or tensor (bfloat16/float16 tensors included)."""
    raw = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    dtype = str(raw).replace("torch.", "")
    try:
        return float_format(dtype)
    except ValueError:
        raise SamplerOutputError(f"sampler: returned samples of dtype {dtype}, expected floating "
                                 "point (float64, float32, float16 or bfloat16)") from None


def to_numpy(value: Any, name: str) -> np.ndarray:
    """A NumPy copy/view of an array or (CPU/GPU) torch tensor. 16-bit float tensors become
    float32 (exactly: every float16/bfloat16 value is a float32); their native format is read
    with ``native_format`` before conversion."""
    if hasattr(value, "detach"):
        value = value.detach()
        if str(getattr(value, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise SamplerOutputError(f"sampler: {name} cannot be read as an array ({exc})") from exc
    if array.dtype == object:
        raise SamplerOutputError(f"sampler: {name} is an object array")
    return array


def accepted_mask(value: Any, n: int) -> np.ndarray:
    """``accepted`` as a bool array of shape ``(n,)``; raises ``SamplerOutputError`` for any
    other dtype (0/1 floats or integers are refused, not coerced) or length."""
    array = to_numpy(value, "accepted")
    if array.dtype != np.bool_:
        raise SamplerOutputError(f"sampler: accepted must be a bool array, got dtype "
                                 f"{array.dtype}")
    if array.shape != (n,):
        raise SamplerOutputError(f"sampler: accepted must have shape ({n},), got "
                                 f"{array.shape}")
    return array


def trial_counts(value: Any, n: int) -> np.ndarray:
    """``trials`` as an int64 array of shape ``(n,)``; raises ``SamplerOutputError`` unless it
    holds non-negative integers (an integer dtype, not bool) of that length."""
    array = to_numpy(value, "trials")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise SamplerOutputError(f"sampler: trials must be an integer array, got dtype "
                                 f"{array.dtype}")
    if array.shape != (n,):
        raise SamplerOutputError(f"sampler: trials must have shape ({n},), got {array.shape}")
    if array.size and int(array.min()) < 0:
        raise SamplerOutputError(f"sampler: trials must be >= 0, got a minimum of "
                                 f"{int(array.min())}")
    return array.astype(np.int64)


def normalise_output(raw: Any, n: int, shape: tuple[int, ...]) -> SamplerOutput:
    """Accept an array/tensor or an object with ``.samples`` (+ ``.accepted``, ``.trials``),
    check it against the contract for ``n`` rows of ``shape`` (``SamplerOutputError``
    otherwise) and record the samples' native floating format."""
    if raw is None:
        raise SamplerOutputError("sampler: returned None, expected samples")
    samples = raw.samples if hasattr(raw, "samples") else raw
    resolution = native_format(samples).name
    array = to_numpy(samples, "samples")
    if array.shape != shape:
        raise SamplerOutputError(f"sampler: returned samples of shape {array.shape}, expected "
                                 f"{shape} (contract sampler(case, n, seed), docs/contract.md)")
    accepted = getattr(raw, "accepted", None)
    trials = getattr(raw, "trials", None)
    return SamplerOutput(
        samples=array,
        accepted=None if accepted is None else accepted_mask(accepted, n),
        trials=None if trials is None else trial_counts(trials, n),
        resolution=resolution,
    )


def finite_check(samples: np.ndarray) -> CheckResult | None:
    """A failing check when the samples contain NaN/inf (None when all are finite)."""
    bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
    if bad == 0:
        return None
    return CheckResult(name="finite", statistic=float(bad), pvalue=0.0, n=int(samples.shape[0]),
                       compared="count of NaN/inf values in the samples",
                       null="a sampler of a continuous law with finite support points "
                            "returns finite values", min_pvalue=0.0)


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class BatteryPlan:
    """How many checks a call runs (an upper bound, fixed before sampling) and its size."""

    n_checks: int
    distance: float
    two_sample: bool
    sequence: bool


def plan_for(case: Any, n_projections: int, tier: Tier) -> BatteryPlan:
    """The number of checks the battery will run on ``case`` (upper bound) and the planned
    KS distance."""
    if isinstance(case, ARCase):
        columns = case.seq_len * case.dim
        return BatteryPlan(columns + 4, tier.sequence, False, True)
    target = case.target
    if isinstance(case, DiffusionCase) and target is None:
        d = case.dim
        return BatteryPlan(d + (n_projections if d > 1 else 0) + 2, tier.two_sample, True,
                           False)
    directions = len(case_directions(target, case.draft))
    randoms = n_projections if target.dim > 1 else 0
    rosenblatt = 3 if target.dim > 1 else 0
    counts = 2 if isinstance(case, Case) else 0
    return BatteryPlan(directions + randoms + rosenblatt + 2 + 1 + counts, tier.token, False,
                       False)


def planned_sample_size(plan: BatteryPlan, alpha: float) -> int:
    """``n`` so that each check, at level ``alpha / plan.n_checks``, detects its planned KS
    distance with probability ``POWER`` (``ks_sample_size``; two-sample checks need about four
    times as many rows: ``ks2_detectable_distance``)."""
    level = alpha / plan.n_checks
    if plan.two_sample:
        n = ks_sample_size(plan.distance, level, POWER)
        while ks2_detectable_distance(n, level, POWER) > plan.distance:
            n = math.ceil(n * 1.1)
        return n
    return ks_sample_size(plan.distance, level, POWER)


def minimum_sample_size(plan: BatteryPlan, alpha: float) -> int:
    """The smallest ``n`` at which the call's checks can see a KS distance of
    ``MAX_PLANNING_DISTANCE`` (and the MMD test has its training and betting rows)."""
    level = alpha / plan.n_checks
    n = ks_sample_size(MAX_PLANNING_DISTANCE, level, POWER)
    if plan.two_sample:
        while ks2_detectable_distance(n, level, POWER) > MAX_PLANNING_DISTANCE:
            n += 1
        n = max(n, 4 * 50)
    return n


# --------------------------------------------------------------------------- the checks
def coordinate_rounding(samples: np.ndarray, fmt: FloatFormat) -> np.ndarray | None:
    """Per-value rounding bound allowed by the projection checks (None for float64 output, the
    reference's own arithmetic).

    * float16/bfloat16: one unit in the last place of the value (the final round to nearest
      moves an exact value by at most half of it; the other half allows one rounded
      intermediate at the same resolution, e.g. sampling in float32 and casting the result);
    * float32: the larger of that and one ulp of the column's largest magnitude, which also
      covers ``mean + scale * z`` computed in float32 (rounded at the data's scale); at float32
      resolution the band costs no power at any n the battery plans.
    """
    if fmt.name == "float64":
        return None
    own = fmt.spacing(samples)
    if fmt.is_half:
        return own
    return np.maximum(own, fmt.spacing(np.abs(samples).max(axis=0))[None, :])


def projection_checks(x: np.ndarray, target: GaussianMixture, draft: GaussianMixture | None,
                      rng: np.random.Generator, n_projections: int,
                      tolerance: np.ndarray | None) -> list[CheckResult]:
    """Exact one-sample KS along the case's directions and random ones (``ks_projections``)."""
    chosen = case_directions(target, draft)
    vectors = [c.vector for c in chosen]
    labels = [c.label for c in chosen]
    if target.dim > 1:
        random = random_unit_directions(target.dim, n_projections, rng)
        vectors.extend(random)
        labels.extend(f"random[{i}]" for i in range(random.shape[0]))
    if target.dim == 1:
        labels = ["1d"]
    return ks_projections(x, target, np.asarray(vectors), labels=labels,
                          coordinate_tolerance=tolerance)


def log_density_checks(x: np.ndarray, target: GaussianMixture, draft: GaussianMixture | None,
                       fmt: FloatFormat, rng: np.random.Generator) -> list[CheckResult]:
    """Two-sample KS of ``log p(x)`` and ``log p(x) - log q(x)`` against an exact target sample
    of the same size rounded to the output's format.

    Under the null the sampler's rows and the rounded reference rows are iid from one law (the
    target rounded to ``fmt``), so any fixed statistic of them is too and the exact two-sample
    KS test (``ks_two_sample``, equal sizes) is valid; rounding needs no allowance.
    """
    n = x.shape[0]
    reference = fmt.round(target.sample(n, rng))
    log_p_x, log_p_ref = target.log_prob(x), target.log_prob(reference)
    checks = [ks_two_sample(log_p_x, log_p_ref, name="ks2_log_target",
                            compared="log p(x) of the samples vs of an exact target sample "
                                     f"rounded to {fmt.name}")]
    if draft is not None:
        checks.append(ks_two_sample(log_p_x - draft.log_prob(x),
                                    log_p_ref - draft.log_prob(reference),
                                    name="ks2_log_ratio",
                                    compared="log p(x) - log q(x) of the samples vs of an exact "
                                             f"target sample rounded to {fmt.name}"))
    return checks


def rosenblatt_rounding_ok(x: np.ndarray, target: GaussianMixture, fmt: FloatFormat) -> bool:
    """Whether the output's rounding is negligible for the Rosenblatt checks: the largest move
    of a conditional CDF value through its own coordinate, ``phi(0) ulp / min scale``, is below
    ``ROSENBLATT_ROUNDING_LIMIT / sqrt(n)`` (an approximation: it bounds the direct term, not
    the change of the posterior weights through earlier coordinates)."""
    if fmt.name == "float64":
        return True
    if fmt.is_half:
        return False
    ulp = fmt.spacing(np.abs(x).max(axis=0))
    move = 0.3989422804014327 * float(np.max(ulp / target.scales.min(axis=0)))
    return move * math.sqrt(x.shape[0]) <= ROSENBLATT_ROUNDING_LIMIT


def rosenblatt_checks(x: np.ndarray, target: GaussianMixture) -> list[CheckResult]:
    """Pooled uniformity and consecutive-column independence of the Rosenblatt transform of the
    first ``ROSENBLATT_ROWS`` rows."""
    u = target.rosenblatt(x[:ROSENBLATT_ROWS])
    checks = [pit_uniformity(u), pit_independence(u, offset=0)]
    if u.shape[1] >= 3:
        checks.append(pit_independence(u, offset=1))
    return checks


def mixture_checks(out: SamplerOutput, target: GaussianMixture, draft: GaussianMixture | None,
                   rng: np.random.Generator, n_projections: int) -> tuple[list[CheckResult],
                                                                           list[str]]:
    """Projections, log-density statistics, Rosenblatt, atoms for a closed-form target."""
    fmt = float_format(out.resolution)
    x = out.samples.astype(np.float64)
    skipped: list[str] = []
    checks = projection_checks(x, target, draft, rng, n_projections,
                               coordinate_rounding(x, fmt))
    checks.extend(log_density_checks(x, target, draft, fmt, rng))
    if target.dim > 1:
        if rosenblatt_rounding_ok(x, target, fmt):
            checks.extend(rosenblatt_checks(x, target))
        else:
            skipped.append(f"Rosenblatt checks: {fmt.name} rounding is not negligible next to "
                           "the target's scales (projections and log-density checks cover it)")
    checks.append(atom_check(out.samples, target.log_prob, resolution=fmt.name))
    return checks, skipped


def count_checks(out: SamplerOutput, case: Case, rng: np.random.Generator,
                 level: float) -> tuple[list[CheckResult], TVBounds | None]:
    """Acceptance ~ Binomial(n, 1 - TV), residual trials ~ Geometric(TV) (when exposed).

    TV is exact, or in a Monte Carlo interval missing the true TV with probability at most
    ``TV_MISS_SHARE * level`` (added to both p-values: valid at every level).
    """
    checks: list[CheckResult] = []
    if out.accepted is None:
        return checks, None
    n = int(out.accepted.shape[0])
    low, high = TV_MONTE_CARLO_SAMPLES
    bounds = tv_bounds(case.draft, case.target, miss_probability=TV_MISS_SHARE * level,
                       rng=rng, n_samples=min(high, max(low, 4 * n)))
    interval = (bounds.lower, bounds.upper)
    checks.append(acceptance_binomial_test(int(out.accepted.sum()), n, bounds.value,
                                           tv_interval=interval,
                                           miss_probability=bounds.miss_probability))
    if out.trials is not None:
        trials = out.trials[~out.accepted]
        # Reflection resamples without proposals (trials == 0): nothing geometric to test.
        if trials.size and np.all(trials >= 1):
            checks.append(geometric_check(trials, bounds, rng))
        elif trials.size and np.any(trials >= 1):
            checks.append(CheckResult(
                name="trials_consistent", statistic=float(np.sum(trials == 0)), pvalue=0.0,
                n=int(trials.size), compared="rejected rows reporting 0 residual trials next to "
                "rows reporting >= 1", null="a residual sampler reports trials for all "
                "rejected rows or for none", min_pvalue=0.0))
    return checks, bounds


def geometric_check(trials: np.ndarray, bounds: TVBounds,
                    rng: np.random.Generator) -> CheckResult:
    """``geometric_trials_test`` over the TV interval."""
    return geometric_trials_test(trials, bounds.value, tv_interval=(bounds.lower, bounds.upper),
                                 miss_probability=bounds.miss_probability, rng=rng)


def sequence_checks(samples: np.ndarray, case: ARCase, resolution: str) -> list[CheckResult]:
    """Target Rosenblatt transform of sequences: pooled uniformity, per-column KS,
    consecutive-column independence, atoms."""
    u = ar_rosenblatt(case.target, case.schedule, samples.astype(np.float64))
    checks = [pit_uniformity(u)]
    for j in range(u.shape[1]):
        checks.append(ks_one_sample(u[:, j], uniform_cdf, name=f"ks_rosenblatt[{j}]",
                                    compared=f"Rosenblatt column {j} (generation order) vs "
                                             "U(0, 1)",
                                    null="the column's PIT values are iid U(0, 1)"))
    if u.shape[1] >= 2:
        checks.append(pit_independence(u, offset=0))
    if u.shape[1] >= 3:
        checks.append(pit_independence(u, offset=1))
    checks.append(atom_check(samples.reshape(samples.shape[0], -1), resolution=resolution))
    return checks


def two_sample_checks(out: SamplerOutput, case: DiffusionCase, rng: np.random.Generator,
                      n_projections: int) -> list[CheckResult]:
    """Against an equally large sample of the target chain run directly (rounded to the
    output's format): exact two-sample KS along the axes and random directions, the MMD test
    by betting, atoms."""
    fmt = float_format(out.resolution)
    x = out.samples.astype(np.float64)
    y = fmt.round(case.reference_samples(x.shape[0], rng))
    d = x.shape[1]
    vectors = [np.eye(d)[j] for j in range(d)]
    labels = [f"axis[{j}]" for j in range(d)]
    if d > 1:
        random = random_unit_directions(d, n_projections, rng)
        vectors.extend(random)
        labels.extend(f"random[{i}]" for i in range(random.shape[0]))
    checks = ks_two_sample_projections(x, y, np.asarray(vectors), labels=labels)
    checks.append(mmd_betting_test(x, y, rng, witness_points=min(250, x.shape[0] // 4)))
    checks.append(atom_check(out.samples, resolution=fmt.name))
    return checks


def expected_shape(case: Any, n: int) -> tuple[int, ...]:
    """``(n, d)`` for token cases, ``(n, L, d)`` for sequences."""
    if isinstance(case, ARCase):
        return (n, case.seq_len, case.dim)
    return (n, case.dim)


def largest_cell_probability(samples: np.ndarray, target: GaussianMixture,
                             fmt: FloatFormat) -> float:
    """An upper bound on the target probability of any rounding cell ``atom_check`` uses here:
    the peak-density bound ``sum_k w_k prod_j 1 / (sqrt(2 pi) s_kj)`` times the product of the
    columns' largest cell widths ``ulp(max_i |x_ij|)`` (clipped to [1e-300, 1])."""
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
    ``binomial_detectable_deviation``: guarantees, not approximations)."""
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
        checks.extend(two_sample_checks(out, case, rng, n_projections))
    else:
        target = case.target
        assert target is not None
        found, skipped = mixture_checks(out, target, case.draft, rng, n_projections)
        checks.extend(found)
        cell_probability = largest_cell_probability(out.samples.astype(np.float64), target,
                                                    float_format(out.resolution))
        if isinstance(case, Case):
            counts, bounds = count_checks(out, case, rng, alpha / plan.n_checks)
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
    seed ``seed + i``. Yields each verdict as soon as it is ready."""
    per_case = alpha / max(1, len(cases))
    for i, case in enumerate(cases):
        yield verify(sampler, case, seed=seed + i, alpha=per_case, **kwargs)


def verify_many(sampler: Callable[..., Any], cases: Sequence[Case | DiffusionCase | ARCase], *,
                seed: int = 0, alpha: float = DEFAULT_ALPHA, progress: bool = True,
                **kwargs: Any) -> list[Verdict]:
    """``iter_verify`` collected into a list, with a progress bar on stderr."""
    from tqdm import tqdm

    verdicts = iter_verify(sampler, cases, seed=seed, alpha=alpha, **kwargs)
    return list(tqdm(verdicts, total=len(cases), desc="verify", disable=not progress,
                     unit="case"))
