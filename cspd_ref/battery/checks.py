"""The checks ``verify`` runs, assembled per case type from ``cspd_ref.stats`` (docs/battery.md).

* ``mixture_checks`` (a closed-form target: ``Case``, linear ``DiffusionCase``): one-sample KS
  along the case's directions and random ones (``projection_checks``), two-sample KS of
  ``log p`` and ``log p - log q`` (``log_density_checks``), the Rosenblatt checks when the
  output's rounding allows them (``rosenblatt_checks``), the atom check;
* ``count_checks`` (a ``Case`` whose sampler exposes ``.accepted``/``.trials``): acceptance
  ``~ Binomial(n, 1 - TV)`` and residual trials ``~ Geometric(TV)`` over a guaranteed TV
  interval;
* ``sequence_checks`` (``ARCase``): the target's Rosenblatt transform of the sequences;
* ``two_sample_checks`` (a ``DiffusionCase`` without a closed form): against direct draws of
  the target chain;
* ``finite_check``: NaN/inf output fails before any of these.

The battery's own randomness (random directions, reference samples, the TV interval, the PIT
randomization) comes from the ``rng`` passed in, which ``verify`` seeds independently of the
sampler; the functions draw from it in a fixed order. ``cspd_ref.battery.plan.plan_for`` counts
the checks assembled here.
"""

from __future__ import annotations

import math

import numpy as np

from cspd_ref.ar import ar_rosenblatt
from cspd_ref.battery.output import SamplerOutput
from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.distributions import GaussianMixture
from cspd_ref.stats import (
    CheckResult,
    acceptance_binomial_test,
    atom_check,
    geometric_trials_test,
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
from cspd_ref.stats.precision import FloatFormat, float_format
from cspd_ref.theory import TVBounds, tv_bounds

TV_MONTE_CARLO_SAMPLES = (20_000, 2_000_000)
"""Monte Carlo draws for the TV interval when no closed form applies: ``4 n`` within these
bounds (the interval's half-width is then about a quarter to a third of the binomial test's
resolution)."""
ROSENBLATT_ROWS = 2**18
"""The Rosenblatt checks use the first this many rows (a fixed, data-independent subsample):
its pooled test still holds ``rows x d`` values, and the per-row cost is ``K d``."""
TV_MISS_SHARE = 0.1
"""Share of the acceptance check's level spent on the TV interval missing the true TV."""
ROSENBLATT_ROUNDING_LIMIT = 0.01
"""Rosenblatt checks run when the output's rounding moves PIT values by at most this fraction of
the KS resolution ``1/sqrt(n)`` (always for float64; float32 unless scales are tiny next to the
values; never for 16-bit output)."""


def finite_check(samples: np.ndarray) -> CheckResult | None:
    """A failing check when the samples contain NaN/inf (None when all are finite).

    Examples:
        >>> import numpy as np
        >>> finite_check(np.zeros((3, 2))) is None
        True
        >>> finite_check(np.array([[0.0], [np.nan]])).statistic
        1.0
    """
    bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
    if bad == 0:
        return None
    return CheckResult(name="finite", statistic=float(bad), pvalue=0.0, n=int(samples.shape[0]),
                       compared="count of NaN/inf values in the samples",
                       null="a sampler of a continuous law with finite support points "
                            "returns finite values", min_pvalue=0.0)


def coordinate_rounding(samples: np.ndarray, fmt: FloatFormat) -> np.ndarray | None:
    """Per-value rounding bound allowed by the projection checks (None for float64 output, the
    reference's own arithmetic).

    * float16/bfloat16: one unit in the last place of the value (the final round to nearest
      moves an exact value by at most half of it; the other half allows one rounded
      intermediate at the same resolution, e.g. sampling in float32 and casting the result);
    * float32: the larger of that and one ulp of the column's largest magnitude, which also
      covers ``mean + scale * z`` computed in float32 (rounded at the data's scale); at float32
      resolution the band costs no power at any n the battery plans.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.stats.precision import float_format
        >>> x = np.array([[0.5, 1.0], [2.0, 0.25]])
        >>> coordinate_rounding(x, float_format("float64")) is None
        True
        >>> coordinate_rounding(x, float_format("float16"))
        array([[0.00048828, 0.00097656],
               [0.00195312, 0.00024414]])
    """
    if fmt.name == "float64":
        return None
    own = fmt.spacing(samples)
    if fmt.is_half:
        return own
    return np.maximum(own, fmt.spacing(np.abs(samples).max(axis=0))[None, :])


def projection_checks(x: np.ndarray, draft: GaussianMixture | None, target: GaussianMixture, *,
                      rng: np.random.Generator, n_projections: int,
                      tolerance: np.ndarray | None) -> list[CheckResult]:
    """Exact one-sample KS along the case's directions and random ones (``ks_projections``).

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.cases import demo_case
        >>> case = demo_case()
        >>> x = case.target.sample(2000, rng=np.random.default_rng(0))
        >>> checks = projection_checks(x, case.draft, case.target, rng=np.random.default_rng(1),
        ...                            n_projections=2, tolerance=None)
        >>> [c.name for c in checks][:3], checks[-1].name
        (['ks_axis[0]', 'ks_axis[1]', 'ks_mean_difference'], 'ks_random[1]')
    """
    chosen = case_directions(draft, target)
    vectors = [c.vector for c in chosen]
    labels = [c.label for c in chosen]
    if target.dim > 1:
        random = random_unit_directions(target.dim, n_projections, rng=rng)
        vectors.extend(random)
        labels.extend(f"random[{i}]" for i in range(random.shape[0]))
    if target.dim == 1:
        labels = ["1d"]
    return ks_projections(x, target, np.asarray(vectors), labels=labels,
                          coordinate_tolerance=tolerance)


def log_density_checks(x: np.ndarray, draft: GaussianMixture | None, target: GaussianMixture,
                       fmt: FloatFormat, *, rng: np.random.Generator) -> list[CheckResult]:
    """Two-sample KS of ``log p(x)`` and ``log p(x) - log q(x)`` against an exact target sample
    of the same size rounded to the output's format.

    Under the null the sampler's rows and the rounded reference rows are iid from one law (the
    target rounded to ``fmt``), so any fixed statistic of them is too and the exact two-sample
    KS test (``ks_two_sample``, equal sizes) is valid; rounding needs no allowance.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.cases import demo_case
        >>> from cspd_ref.stats.precision import float_format
        >>> case = demo_case()
        >>> x = case.target.sample(2000, rng=np.random.default_rng(0))
        >>> [c.name for c in log_density_checks(x, case.draft, case.target,
        ...                                     float_format("float64"),
        ...                                     rng=np.random.default_rng(1))]
        ['ks2_log_target', 'ks2_log_ratio']
    """
    n = x.shape[0]
    reference = fmt.round(target.sample(n, rng=rng))
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
    the change of the posterior weights through earlier coordinates).

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.cases import demo_case
        >>> from cspd_ref.stats.precision import float_format
        >>> target = demo_case().target
        >>> x = target.sample(1000, rng=np.random.default_rng(0))
        >>> [rosenblatt_rounding_ok(x, target, float_format(name))
        ...  for name in ("float64", "float32", "bfloat16")]
        [True, True, False]
    """
    if fmt.name == "float64":
        return True
    if fmt.is_half:
        return False
    ulp = fmt.spacing(np.abs(x).max(axis=0))
    move = 0.3989422804014327 * float(np.max(ulp / target.scales.min(axis=0)))
    return move * math.sqrt(x.shape[0]) <= ROSENBLATT_ROUNDING_LIMIT


def rosenblatt_checks(x: np.ndarray, target: GaussianMixture) -> list[CheckResult]:
    """Pooled uniformity and consecutive-column independence of the Rosenblatt transform of the
    first ``ROSENBLATT_ROWS`` rows.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.cases import demo_case
        >>> target = demo_case().target
        >>> x = target.sample(1000, rng=np.random.default_rng(0))
        >>> [c.name for c in rosenblatt_checks(x, target)]
        ['pit_uniformity', 'pit_independence[0]']
    """
    u = target.rosenblatt(x[:ROSENBLATT_ROWS])
    checks = [pit_uniformity(u), pit_independence(u, offset=0)]
    if u.shape[1] >= 3:
        checks.append(pit_independence(u, offset=1))
    return checks


def mixture_checks(out: SamplerOutput, draft: GaussianMixture | None, target: GaussianMixture,
                   *, rng: np.random.Generator,
                   n_projections: int) -> tuple[list[CheckResult], list[str]]:
    """Projections, log-density statistics, Rosenblatt, atoms for a closed-form target; returns
    the checks and the reasons for the checks skipped.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.cases import mixture_1d_case
        >>> case = mixture_1d_case()
        >>> out = SamplerOutput(case.target.sample(2000, rng=np.random.default_rng(0)))
        >>> checks, skipped = mixture_checks(out, case.draft, case.target,
        ...                                  rng=np.random.default_rng(1), n_projections=4)
        >>> [c.name for c in checks], skipped
        (['ks_1d', 'ks2_log_target', 'ks2_log_ratio', 'atoms'], [])
    """
    fmt = float_format(out.resolution)
    x = out.samples.astype(np.float64)
    skipped: list[str] = []
    checks = projection_checks(x, draft, target, rng=rng, n_projections=n_projections,
                               tolerance=coordinate_rounding(x, fmt))
    checks.extend(log_density_checks(x, draft, target, fmt, rng=rng))
    if target.dim > 1:
        if rosenblatt_rounding_ok(x, target, fmt):
            checks.extend(rosenblatt_checks(x, target))
        else:
            skipped.append(f"Rosenblatt checks: {fmt.name} rounding is not negligible next to "
                           "the target's scales (projections and log-density checks cover it)")
    checks.append(atom_check(out.samples, target.log_prob, resolution=fmt.name))
    return checks, skipped


def count_checks(out: SamplerOutput, case: Case, level: float, *,
                 rng: np.random.Generator) -> tuple[list[CheckResult], TVBounds | None]:
    """Acceptance ~ Binomial(n, 1 - TV), residual trials ~ Geometric(TV) (when exposed).

    TV is exact, or in a Monte Carlo interval missing the true TV with probability at most
    ``TV_MISS_SHARE * level`` (added to both p-values: valid at every level). Returns the
    checks and the TV interval (None when the sampler exposes no accept mask).

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.cases import mixture_1d_case
        >>> from cspd_ref.speculative import speculative_sample
        >>> case = mixture_1d_case()
        >>> result = speculative_sample(case.draft, case.target, 2000, np.random.default_rng(0))
        >>> out = SamplerOutput(result.samples, result.accepted, result.trials)
        >>> checks, bounds = count_checks(out, case, 1e-5, rng=np.random.default_rng(1))
        >>> [c.name for c in checks], bounds.method
        (['acceptance_binomial', 'geometric_trials'], 'crossings_1d')
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
            checks.append(geometric_check(trials, bounds, rng=rng))
        elif trials.size and np.any(trials >= 1):
            checks.append(CheckResult(
                name="trials_consistent", statistic=float(np.sum(trials == 0)), pvalue=0.0,
                n=int(trials.size), compared="rejected rows reporting 0 residual trials next to "
                "rows reporting >= 1", null="a residual sampler reports trials for all "
                "rejected rows or for none", min_pvalue=0.0))
    return checks, bounds


def geometric_check(trials: np.ndarray, bounds: TVBounds, *,
                    rng: np.random.Generator) -> CheckResult:
    """``geometric_trials_test`` over the TV interval.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.theory import TVBounds
        >>> rng = np.random.default_rng(0)
        >>> bounds = TVBounds(0.3, 0.3, 0.3, 0.0, "closed_form")
        >>> geometric_check(rng.geometric(0.3, size=500), bounds, rng=rng).pvalue > 1e-3
        True
    """
    return geometric_trials_test(trials, bounds.value, tv_interval=(bounds.lower, bounds.upper),
                                 miss_probability=bounds.miss_probability, rng=rng)


def sequence_checks(samples: np.ndarray, case: ARCase, resolution: str) -> list[CheckResult]:
    """Target Rosenblatt transform of sequences: pooled uniformity, per-column KS,
    consecutive-column independence, atoms.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.ar import ar_sample
        >>> from cspd_ref.builtin_cases import ar_mixture_case
        >>> case = ar_mixture_case()
        >>> x = ar_sample(case.target, case.schedule, 500, rng=np.random.default_rng(0))
        >>> names = [c.name for c in sequence_checks(x, case, "float64")]
        >>> names[:2], names[-2:]
        (['pit_uniformity', 'ks_rosenblatt[0]'], ['pit_independence[1]', 'atoms'])
    """
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


def two_sample_checks(out: SamplerOutput, case: DiffusionCase, *, rng: np.random.Generator,
                      n_projections: int) -> list[CheckResult]:
    """Against an equally large sample of the target chain run directly (rounded to the
    output's format): exact two-sample KS along the axes and random directions, the MMD test
    by betting, atoms.

    Examples:
        >>> import numpy as np
        >>> from cspd_ref.builtin_cases import mlp_chain_case
        >>> case = mlp_chain_case()
        >>> out = SamplerOutput(case.reference_samples(1000, rng=np.random.default_rng(0)))
        >>> [c.name for c in two_sample_checks(out, case, rng=np.random.default_rng(1),
        ...                                    n_projections=1)]
        ['ks2_axis[0]', 'ks2_axis[1]', 'ks2_random[0]', 'mmd_betting', 'atoms']
    """
    fmt = float_format(out.resolution)
    x = out.samples.astype(np.float64)
    y = fmt.round(case.reference_samples(x.shape[0], rng=rng))
    d = x.shape[1]
    vectors = [np.eye(d)[j] for j in range(d)]
    labels = [f"axis[{j}]" for j in range(d)]
    if d > 1:
        random = random_unit_directions(d, n_projections, rng=rng)
        vectors.extend(random)
        labels.extend(f"random[{i}]" for i in range(random.shape[0]))
    checks = ks_two_sample_projections(x, y, np.asarray(vectors), labels=labels)
    checks.append(mmd_betting_test(x, y, rng=rng, witness_points=min(250, x.shape[0] // 4)))
    checks.append(atom_check(out.samples, resolution=fmt.name))
    return checks
