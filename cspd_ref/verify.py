"""``verify``: judge a sampler against its target with the statistical battery (SPEC §5).

A sampler follows the contract ``sampler(case, n, seed) -> (n, d)`` (a NumPy array or a torch
tensor; sequence samplers return ``(n, L, d)``). It may instead return an object with
``.samples`` and, optionally, ``.accepted`` and ``.trials`` (like ``SpeculativeResult``): then the
acceptance count and the residual trial counts are tested too.

Checks, by case type:

* ``Case`` (closed-form mixture target): one-sample KS of random unit projections against the
  exact projected mixture CDF; uniformity and lag-1 independence of the Rosenblatt transform;
  the atom check; acceptance ``~ Binomial(n, 1 - TV)`` and trials ``~ Geometric(TV)`` when
  exposed.
* ``DiffusionCase``: as ``Case`` on the target chain's closed-form marginal when it has one
  (no acceptance/trial checks: aligned trajectories accept at ``E[1 - TV(last steps)]``);
  otherwise two-sample KS on projections and an MMD permutation test against direct target
  chain samples.
* ``ARCase``: the target's Rosenblatt transform of the sequences: pooled uniformity, a KS per
  column, lag-1 independence, and the atom check.

All p-values of one call are combined by Holm's step-down procedure at ``alpha``: the verdict
``equivalent`` is False iff Holm rejects at least one null, so an exact sampler is flagged with
probability at most ``alpha`` per call (any dependence between the checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cspd_ref.ar import ar_rosenblatt
from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.stats import (
    CheckResult,
    acceptance_binomial_test,
    atom_check,
    dkw_detectable_distance,
    dkw_sample_size,
    geometric_trials_test,
    holm,
    ks_one_sample,
    ks_projections,
    ks_two_sample_projections,
    mmd_permutation_test,
    pit_independence,
    pit_uniformity,
    random_unit_directions,
)
from cspd_ref.theory import tv_distance
from cspd_ref.validation import require_int

DEFAULT_ALPHA = 1e-4
"""Family-wise false-alarm probability of one ``verify`` call."""
DEFAULT_EPSILON = 0.03
"""KS distance the default sample size is planned for (DKW at the per-check level)."""
DEFAULT_PROJECTIONS = 4
MMD_MAX_SAMPLES = 2000
BATTERY_STREAM = 0xBA77E27
"""Entropy mixed into the seed of the battery's own randomness (directions, MC TV, PIT)."""

AnyCase = Case | DiffusionCase | ARCase


@dataclass(frozen=True)
class SamplerOutput:
    """What a sampler returned, converted to NumPy (dtype kept for the atom check)."""

    samples: np.ndarray
    accepted: np.ndarray | None = None
    trials: np.ndarray | None = None


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
        detectable_distance: the KS distance a single check flags with probability
            >= 1 - alpha at this n (DKW at level alpha / #checks, doubled by the triangle
            inequality).
        output: the sampler's output (kept for reports).
    """

    equivalent: bool
    checks: tuple[CheckResult, ...]
    adjusted_pvalues: tuple[float, ...]
    alpha: float
    n: int
    seed: int
    case_name: str
    detectable_distance: float
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

    def summary(self) -> str:
        """A few human-readable lines."""
        head = (f"{self.case_name}: {'EQUIVALENT' if self.equivalent else 'NOT EQUIVALENT'} "
                f"(n={self.n}, seed={self.seed}, {len(self.checks)} checks, Holm at "
                f"alpha={self.alpha:g}, min adjusted p={self.min_adjusted_pvalue:.3g})")
        lines = [head]
        for c in self.failed:
            lines.append(f"  failed: {c.name}: statistic {c.statistic:.4g}, p={c.pvalue:.3g} "
                         f"— {c.compared}")
        return "\n".join(lines)


def to_numpy(value: Any, name: str) -> np.ndarray:
    """A NumPy view of an array or (CPU/GPU) torch tensor, keeping float32/float64."""
    if hasattr(value, "detach"):
        value = value.detach()
        if getattr(value, "dtype", None) is not None and str(value.dtype) in (
                "torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise ValueError(f"{name}: sampler returned an object array")
    return array


def normalise_output(raw: Any) -> SamplerOutput:
    """Accept an array/tensor or an object with ``.samples`` (+ ``.accepted``, ``.trials``)."""
    if hasattr(raw, "samples"):
        accepted = getattr(raw, "accepted", None)
        trials = getattr(raw, "trials", None)
        return SamplerOutput(
            samples=to_numpy(raw.samples, "samples"),
            accepted=None if accepted is None else to_numpy(accepted, "accepted").astype(bool),
            trials=None if trials is None else to_numpy(trials, "trials").astype(np.int64),
        )
    return SamplerOutput(samples=to_numpy(raw, "samples"))


def planned_sample_size(epsilon: float, alpha: float, n_checks: int) -> int:
    """DKW sample size so that one check at level ``alpha / n_checks`` (Bonferroni, the worst
    case of Holm) has a critical KS distance of at most ``epsilon``."""
    return dkw_sample_size(epsilon, alpha / n_checks)


def finite_check(samples: np.ndarray) -> CheckResult | None:
    """A failing check when the samples contain NaN/inf (None when all are finite)."""
    bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
    if bad == 0:
        return None
    return CheckResult(name="finite", statistic=float(bad), pvalue=0.0, n=int(samples.shape[0]),
                       compared="count of NaN/inf values in the samples",
                       null="a sampler of a continuous law with finite support points "
                            "returns finite values")


def mixture_checks(samples: np.ndarray, target: Any, rng: np.random.Generator,
                   n_projections: int) -> list[CheckResult]:
    """KS on projections (or the 1-D KS), Rosenblatt uniformity/independence, atoms."""
    x = samples.astype(np.float64)
    d = target.dim
    if d == 1:
        checks = [ks_one_sample(x[:, 0], target.cdf, name="ks_1d",
                                compared="samples vs the target's exact CDF")]
    else:
        directions = random_unit_directions(d, n_projections, rng)
        checks = ks_projections(x, target, directions)
        u = target.rosenblatt(x)
        checks.append(pit_uniformity(u))
        checks.append(pit_independence(u))
    checks.append(atom_check(samples, target.log_prob))
    return checks


def count_checks(out: SamplerOutput, case: Case, rng: np.random.Generator) -> list[CheckResult]:
    """Acceptance ~ Binomial(n, 1 - TV), residual trials ~ Geometric(TV) (when exposed)."""
    checks: list[CheckResult] = []
    if out.accepted is None:
        return checks
    n = int(out.accepted.shape[0])
    # 2n Monte Carlo points keep the TV's error well below the binomial one (if MC is needed).
    tv = tv_distance(case.target, case.draft, rng=rng, n_samples=max(20_000, 2 * n))
    checks.append(acceptance_binomial_test(int(out.accepted.sum()), n, tv.value, tv.stderr))
    if out.trials is not None:
        trials = out.trials[~out.accepted]
        # Reflection resamples without proposals (trials == 0): nothing geometric to test.
        if trials.size and np.all(trials >= 1):
            checks.append(geometric_trials_test(trials, tv.value, tv.stderr, rng=rng))
        elif trials.size and np.any(trials >= 1):
            checks.append(CheckResult(
                name="trials_consistent", statistic=float(np.sum(trials == 0)), pvalue=0.0,
                n=int(trials.size), compared="rejected rows reporting 0 residual trials next to "
                "rows reporting >= 1", null="a residual sampler reports trials for all "
                "rejected rows or for none"))
    return checks


def sequence_checks(samples: np.ndarray, case: ARCase) -> list[CheckResult]:
    """Target Rosenblatt transform of sequences: pooled uniformity, per-column KS, lag-1
    independence, atoms."""
    u = ar_rosenblatt(case.target, case.schedule, samples.astype(np.float64))
    checks = [pit_uniformity(u)]
    for j in range(u.shape[1]):
        checks.append(ks_one_sample(u[:, j], lambda v: v, name=f"ks_rosenblatt[{j}]",
                                    compared=f"Rosenblatt column {j} (generation order) vs "
                                             "U(0, 1)"))
    if u.shape[1] >= 2:
        checks.append(pit_independence(u))
    checks.append(atom_check(samples.reshape(samples.shape[0], -1)))
    return checks


def two_sample_checks(samples: np.ndarray, reference: np.ndarray, rng: np.random.Generator,
                      n_projections: int) -> list[CheckResult]:
    """Two-sample KS on projections and an MMD permutation test (subsampled to 2000 rows)."""
    x, y = samples.astype(np.float64), reference.astype(np.float64)
    d = x.shape[1]
    directions = random_unit_directions(d, n_projections if d > 1 else 1, rng)
    checks = ks_two_sample_projections(x, y, directions)
    m = min(MMD_MAX_SAMPLES, x.shape[0], y.shape[0])
    checks.append(mmd_permutation_test(x[:m], y[:m], rng))
    checks.append(atom_check(samples))
    return checks


def expected_shape(case: AnyCase, n: int) -> tuple[int, ...]:
    """``(n, d)`` for token cases, ``(n, L, d)`` for sequences."""
    if isinstance(case, ARCase):
        return (n, case.seq_len, case.dim)
    return (n, case.dim)


def verify(sampler: Callable[..., Any], case: AnyCase, *, seed: int = 0, n: int | None = None,
           alpha: float = DEFAULT_ALPHA, epsilon: float = DEFAULT_EPSILON,
           n_projections: int = DEFAULT_PROJECTIONS, keep_output: bool = False) -> Verdict:
    """Run the battery on ``sampler`` for ``case`` and return a ``Verdict`` (SPEC §5).

    Null hypothesis of the whole call: the sampler's output follows the case's target law
    exactly (and, when exposed, its acceptance and trial counts follow the speculative-sampling
    laws). Under it ``P(equivalent is False) <= alpha``.

    Args:
        sampler: ``sampler(case, n, seed)`` per the SPEC §5 contract.
        case: a ``Case``, ``DiffusionCase`` or ``ARCase``.
        seed: passed to the sampler; the battery's own randomness is seeded from it too,
            on an independent stream.
        n: samples to request; default planned by DKW from ``epsilon`` and ``alpha``.
        alpha: family-wise level of this call (Holm over all its checks).
        epsilon: KS distance the default ``n`` is planned for.
        n_projections: random unit directions for the projection KS tests (d > 1).
        keep_output: keep the sampler's output in the verdict (for reports).

    Raises:
        ValueError: for a bad argument or a sampler output of the wrong shape.
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
    n_projections = require_int(n_projections, "n_projections", minimum=1)
    planned_checks = max(1, n_projections + 5)
    if n is None:
        n = planned_sample_size(epsilon, alpha, planned_checks)
    n = require_int(n, "n", minimum=2)

    out = normalise_output(sampler(case, n, seed))
    shape = expected_shape(case, n)
    if out.samples.shape != shape:
        raise ValueError(f"sampler: returned samples of shape {out.samples.shape}, expected "
                         f"{shape} (SPEC §5 contract sampler(case, n, seed))")
    if not np.issubdtype(out.samples.dtype, np.floating):
        raise ValueError(f"sampler: returned dtype {out.samples.dtype}, expected floating point")
    rng = np.random.default_rng([seed, BATTERY_STREAM])

    checks: list[CheckResult] = []
    bad = finite_check(out.samples)
    if bad is not None:
        checks.append(bad)
    else:
        checks.extend(battery_for(case, out, rng, n_projections))
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
        detectable_distance=2.0 * dkw_detectable_distance(n, alpha / max(1, len(checks))),
        output=out if keep_output else None,
    )


def battery_for(case: AnyCase, out: SamplerOutput, rng: np.random.Generator,
                n_projections: int) -> list[CheckResult]:
    """The checks that apply to ``case`` (see the module docstring)."""
    if isinstance(case, ARCase):
        return sequence_checks(out.samples, case)
    if isinstance(case, DiffusionCase):
        target = case.target
        if target is not None:
            return mixture_checks(out.samples, target, rng, n_projections)
        reference = case.reference_samples(out.samples.shape[0], rng)
        return two_sample_checks(out.samples, reference, rng, n_projections)
    checks = mixture_checks(out.samples, case.target, rng, n_projections)
    checks.extend(count_checks(out, case, rng))
    return checks


def iter_verify(sampler: Callable[..., Any], cases: Sequence[AnyCase], *, seed: int = 0,
                alpha: float = DEFAULT_ALPHA, **kwargs: Any) -> Iterator[Verdict]:
    """``verify`` on several cases in turn: case ``i`` at ``alpha / len(cases)`` (Bonferroni
    across cases, so the whole run flags an exact sampler with probability <= ``alpha``) with
    seed ``seed + i``. Yields each verdict as soon as it is ready."""
    per_case = alpha / max(1, len(cases))
    for i, case in enumerate(cases):
        yield verify(sampler, case, seed=seed + i, alpha=per_case, **kwargs)


def verify_many(sampler: Callable[..., Any], cases: Sequence[AnyCase], *, seed: int = 0,
                alpha: float = DEFAULT_ALPHA, progress: bool = True,
                **kwargs: Any) -> list[Verdict]:
    """``iter_verify`` collected into a list, with a progress bar on stderr."""
    from tqdm import tqdm

    verdicts = iter_verify(sampler, cases, seed=seed, alpha=alpha, **kwargs)
    return list(tqdm(verdicts, total=len(cases), desc="verify", disable=not progress,
                     unit="case"))
