"""Tests of the statistical battery ``cspd_ref.stats``.

Every statistical assertion is seeded and honest:

* calibration: over ``N_NULL`` seeded null draws the number of p-values ``<= 0.05`` lies in the
  binomial band that a correct test leaves with probability ``< 1e-4`` (two-sided for the exact
  tests; only the upper end for tests that are conservative by design);
* power: a known discrepancy is flagged at ``alpha = 1e-3`` for every one of several seeds;
* bad input raises ``ValueError`` whose message starts with the argument's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from cspd_ref.distributions import DiagGaussian, GaussianMixture
from cspd_ref.stats import (
    CheckResult,
    acceptance_binomial_test,
    atom_check,
    binomial_detectable_deviation,
    bonferroni,
    dkw_detectable_distance,
    dkw_sample_size,
    familywise_reject,
    geometric_trials_test,
    holm,
    ks_detectable_distance,
    ks_one_sample,
    ks_projections,
    ks_sample_size,
    ks_two_sample,
    ks_two_sample_projections,
    mmd_betting_test,
    mmd_permutation_test,
    pit_independence,
    pit_uniformity,
    random_unit_directions,
)

ALPHA = 0.05
POWER_ALPHA = 1e-3
N_NULL = 200
BAND_LEVEL = 1e-4
POWER_SEEDS = (11, 12, 13)


def rng_for(test: int, draw: int) -> np.random.Generator:
    """An independent, reproducible stream per (test, draw)."""
    return np.random.default_rng([20_251_127, test, draw])


def band(n_draws: int = N_NULL, alpha: float = ALPHA,
         level: float = BAND_LEVEL) -> tuple[int, int]:
    """Counts ``[lo, hi]`` of ``Binomial(n_draws, alpha)`` with mass ``>= 1 - level``."""
    lo = int(stats.binom.ppf(level / 2.0, n_draws, alpha))
    hi = int(stats.binom.isf(level / 2.0, n_draws, alpha))
    return lo, hi


def false_alarms(pvalue_of: Callable[[np.random.Generator], float], test: int,
                 n_draws: int = N_NULL) -> int:
    pvalues = np.array([pvalue_of(rng_for(test, draw)) for draw in range(n_draws)])
    assert np.all((pvalues >= 0.0) & (pvalues <= 1.0))
    return int(np.sum(pvalues <= ALPHA))


def assert_calibrated(count: int, *, conservative: bool = False) -> None:
    lo, hi = band()
    assert count <= hi, f"{count} false alarms of {N_NULL} at {ALPHA} (band [{lo}, {hi}])"
    if not conservative:
        assert count >= lo, f"{count} false alarms of {N_NULL} at {ALPHA} (band [{lo}, {hi}])"


def mixture_2d() -> GaussianMixture:
    return GaussianMixture([0.3, 0.7], [[0.0, 1.0], [2.0, -1.0]], [[1.0, 0.5], [0.3, 2.0]])


# --------------------------------------------------------------------------- result object
def test_check_result_is_frozen_and_validates_pvalue() -> None:
    result = CheckResult(name="x[2]", statistic=1.0, pvalue=0.5, n=3, compared="a vs b",
                         null="h0", min_pvalue=0.01)
    assert result.details.as_dict() == {} and result.direction is None
    assert result.details_dict() == {} and result.family == "x"
    assert result.can_reject(0.02) and not result.can_reject(0.01)
    assert result.rejects(0.5) and not result.rejects(0.1)
    with pytest.raises(AttributeError):
        result.pvalue = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="^pvalue"):
        CheckResult(name="x", statistic=1.0, pvalue=1.5, n=3, compared="", null="", min_pvalue=0.0)
    with pytest.raises(ValueError, match="^pvalue"):
        CheckResult(name="x", statistic=1.0, pvalue=math.nan, n=3, compared="", null="",
                    min_pvalue=0.0)
    with pytest.raises(ValueError, match="^min_pvalue"):
        CheckResult(name="x", statistic=1.0, pvalue=0.1, n=3, compared="", null="",
                    min_pvalue=0.2)


# --------------------------------------------------------------------------- KS
def test_ks_one_sample_matches_scipy_exact() -> None:
    values = rng_for(0, 0).normal(size=137)
    ours = ks_one_sample(values, stats.norm.cdf, name="ks", compared="x vs N(0,1)")
    theirs = stats.kstest(values, stats.norm.cdf, method="exact")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-15)
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-12)
    assert ours.n == 137 and ours.name == "ks" and ours.compared == "x vs N(0,1)"


def test_ks_one_sample_calibration() -> None:
    count = false_alarms(lambda rng: ks_one_sample(rng.random(200), lambda v: v).pvalue, 1)
    assert_calibrated(count)


def test_ks_one_sample_power_mean_shift() -> None:
    for seed in POWER_SEEDS:
        values = rng_for(2, seed).normal(0.2, 1.0, size=5000)
        assert ks_one_sample(values, stats.norm.cdf).pvalue <= POWER_ALPHA


def test_ks_one_sample_rounding_band_is_valid_and_reduces_to_the_exact_test() -> None:
    # Zero tolerance: the classical exact test, to the last bit.
    values = rng_for(40, 0).normal(size=500)
    plain = ks_one_sample(values, stats.norm.cdf)
    assert ks_one_sample(values, stats.norm.cdf, tolerance=0.0).pvalue == plain.pvalue
    # Exact N(1, 0.3^2) draws rounded to 8 significant bits (bfloat16): the plain test is
    # fooled by the rounding at n = 10^6, the banded one (1 ulp) is not; its statistic bounds
    # the statistic of the unrounded values from below (so its p-value from above).
    from cspd_ref.stats.precision import float_format

    bf16 = float_format("bfloat16")
    for seed in POWER_SEEDS:
        y = rng_for(40, seed).normal(size=1_000_000) * 0.3 + 1.0
        x = bf16.round(y)
        cdf = lambda v: stats.norm.cdf(v, 1.0, 0.3)
        exact = ks_one_sample(y, cdf)
        banded = ks_one_sample(x, cdf, tolerance=bf16.spacing(x))
        assert ks_one_sample(x, cdf).pvalue < 1e-8
        assert banded.statistic <= exact.statistic and banded.pvalue >= exact.pvalue


def test_ks_one_sample_rounding_band_calibration() -> None:
    from cspd_ref.stats.precision import float_format

    fp16 = float_format("float16")

    def pvalue(rng: np.random.Generator) -> float:
        x = fp16.round(rng.normal(3.0, 0.5, size=3000))
        return ks_one_sample(x, lambda v: stats.norm.cdf(v, 3.0, 0.5),
                             tolerance=fp16.spacing(x)).pvalue

    assert_calibrated(false_alarms(pvalue, 41), conservative=True)


def test_random_unit_directions() -> None:
    a = random_unit_directions(3, 2000, rng=rng_for(3, 0))
    assert a.shape == (2000, 3) and a.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-12)
    # Archimedes: a coordinate of a uniform point on the 2-sphere is U(-1, 1).
    assert ks_one_sample(a[:, 0], lambda v: (v + 1.0) / 2.0).pvalue > POWER_ALPHA
    np.testing.assert_array_equal(random_unit_directions(1, 5, rng=rng_for(3, 1)), [[1.0]])


def test_ks_projections_calibration() -> None:
    target = mixture_2d()

    def pvalue(rng: np.random.Generator) -> float:
        directions = random_unit_directions(2, 1, rng=rng)
        return ks_projections(target.sample(500, rng=rng), target, directions)[0].pvalue

    assert_calibrated(false_alarms(pvalue, 4))


def test_ks_projections_result_fields() -> None:
    target = mixture_2d()
    rng = rng_for(5, 0)
    results = ks_projections(target.sample(300, rng=rng), target,
                             random_unit_directions(2, 3, rng=rng))
    assert [r.name for r in results] == ["ks_projection[0]", "ks_projection[1]",
                                         "ks_projection[2]"]
    assert all(r.n == 300 and r.direction is not None and len(r.direction) == 2 for r in results)
    assert all(list(r.details_dict())[-1] == "direction" for r in results)


def test_ks_projections_power_mean_shift() -> None:
    # 1-D: N(0.2, 1) against N(0, 1), n = 5000.
    target_1d = DiagGaussian([0.0], [1.0])
    for seed in POWER_SEEDS:
        samples = rng_for(6, seed).normal(0.2, 1.0, size=(5000, 1))
        assert ks_projections(samples, target_1d, [[1.0]])[0].pvalue <= POWER_ALPHA
    # 3-D: a 0.2-sd shift of the first coordinate, 16 random directions, Holm.
    target_3d = DiagGaussian(np.zeros(3), np.ones(3))
    for seed in POWER_SEEDS:
        rng = rng_for(7, seed)
        samples = rng.normal(size=(5000, 3)) + np.array([0.2, 0.0, 0.0])
        results = ks_projections(samples, target_3d, random_unit_directions(3, 16, rng=rng))
        assert np.any(familywise_reject([r.pvalue for r in results], POWER_ALPHA))


def test_ks_two_sample_calibration() -> None:
    target = mixture_2d()

    def pvalue(rng: np.random.Generator) -> float:
        directions = random_unit_directions(2, 1, rng=rng)
        x, y = target.sample(300, rng=rng), target.sample(200, rng=rng)
        return ks_two_sample_projections(x, y, directions)[0].pvalue

    assert_calibrated(false_alarms(pvalue, 8))


def test_ks_two_sample_power_mean_shift() -> None:
    for seed in POWER_SEEDS:
        rng = rng_for(9, seed)
        x = rng.normal(size=(5000, 2))
        y = rng.normal(size=(5000, 2)) + np.array([0.2, 0.0])
        result = ks_two_sample_projections(x, y, [[1.0, 0.0]])[0]
        assert result.pvalue <= POWER_ALPHA
        assert result.name == "ks2_projection[0]" and result.n == 10_000


def test_ks_two_sample_is_exact_at_large_equal_sizes() -> None:
    rng = rng_for(42, 0)
    x, y = rng.normal(size=200_000), rng.normal(size=200_000)
    result = ks_two_sample(x, y)
    assert result.pvalue > POWER_ALPHA and result.min_pvalue == 0.0  # 2 / C(4e5, 2e5)
    assert ks_two_sample(x, y + 0.04).pvalue < 1e-8
    assert ks_two_sample(np.arange(3.0), np.arange(3.0) + 10.0).min_pvalue == pytest.approx(0.1)


# --------------------------------------------------------------------------- Rosenblatt / PIT
def test_pit_uniformity_calibration() -> None:
    assert_calibrated(false_alarms(lambda rng: pit_uniformity(rng.random((100, 5))).pvalue, 10))


def test_pit_uniformity_power() -> None:
    for seed in POWER_SEEDS:
        z = rng_for(11, seed).normal(size=(1000, 5))
        u = stats.norm.cdf(z + 0.2)  # PIT of samples shifted by 0.2 sd
        assert pit_uniformity(u).pvalue <= POWER_ALPHA


def test_pit_independence_calibration() -> None:
    for offset, test in ((0, 12), (1, 43)):
        count = false_alarms(
            lambda rng, o=offset: pit_independence(rng.random((300, 6)), offset=o).pvalue, test)
        assert_calibrated(count, conservative=True)  # a Bernstein bound: conservative


def test_pit_independence_power_lag_one_correlation() -> None:
    rho = 0.2
    for seed in POWER_SEEDS:
        rng = rng_for(13, seed)
        z = rng.normal(size=(3000, 6))
        for j in range(1, 6):
            z[:, j] = rho * z[:, j - 1] + math.sqrt(1.0 - rho * rho) * z[:, j]
        u = stats.norm.cdf(z)  # uniform margins, dependent neighbours
        assert pit_uniformity(u).pvalue > POWER_ALPHA / 100  # the margins are fine ...
        assert pit_independence(u, offset=0).pvalue <= POWER_ALPHA  # ... the dependence is
        assert pit_independence(u, offset=1).pvalue <= POWER_ALPHA  # caught at both offsets


def test_pit_independence_power_dependence_in_spread() -> None:
    # Correlation 0, but the spread of column j+1 depends on |column j|: the degree-2
    # Legendre terms see it.
    for seed in POWER_SEEDS:
        rng = rng_for(14, seed)
        u = rng.random((4000, 2))
        spread = 0.2 + 1.6 * np.abs(u[:, 0] - 0.5)       # in [0.2, 1.0]
        u[:, 1] = 0.5 + spread * (u[:, 1] - 0.5)
        result = pit_independence(u)
        assert abs(result.details.means["1,1"]) < 0.1
        assert result.pvalue <= POWER_ALPHA


def test_pit_independence_bound_and_floor() -> None:
    rng = rng_for(44, 0)
    identical = rng.random((500, 2))
    identical[:, 1] = identical[:, 0]
    result = pit_independence(identical)
    assert result.pvalue < 1e-30 and result.min_pvalue < result.pvalue
    # Bernstein's bound dominates the exact tail: simulated null means of phi_1 phi_1 over
    # N = 50 products exceed the bound's 1% point in at most 1% of 20000 draws.
    from cspd_ref.stats.rosenblatt import bernstein_two_sided_pvalue, shifted_legendre

    u = rng.random((20_000, 50, 2))
    means = (shifted_legendre(u[..., 0], 1) * shifted_legendre(u[..., 1], 1)).mean(axis=1)
    p = np.array([bernstein_two_sided_pvalue(m, 50, 1.0, 3.0) for m in means])
    assert np.mean(p <= 0.01) <= 0.01


def test_pit_independence_needs_enough_columns() -> None:
    with pytest.raises(ValueError, match="^u: needs at least 2 columns"):
        pit_independence(np.full((10, 1), 0.5))
    with pytest.raises(ValueError, match="^u: needs at least 3 columns"):
        pit_independence(np.full((10, 2), 0.5), offset=1)


# --------------------------------------------------------------------------- MMD
def test_mmd_calibration() -> None:
    def pvalue(rng: np.random.Generator) -> float:
        x, y = rng.normal(size=(60, 2)), rng.normal(size=(50, 2))
        return mmd_permutation_test(x, y, rng=rng, n_permutations=99).pvalue

    assert_calibrated(false_alarms(pvalue, 15))


def test_mmd_power_scale() -> None:
    for seed in POWER_SEEDS:
        rng = rng_for(16, seed)
        x, y = rng.normal(size=(1000, 2)), 1.3 * rng.normal(size=(1000, 2))
        result = mmd_permutation_test(x, y, rng=rng, n_permutations=999)
        assert result.pvalue <= POWER_ALPHA
        assert result.details.n_exceed == 0 and result.n == 2000


def test_mmd_statistic_matches_direct_formula() -> None:
    rng = rng_for(17, 0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.5
    h = 1.3
    result = mmd_permutation_test(x, y, rng=rng, n_permutations=5, bandwidth=h)

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h * h))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    direct = ((kxx.sum() - np.trace(kxx)) / (7 * 6) + (kyy.sum() - np.trace(kyy)) / (5 * 4)
              - 2 * kxy.mean())
    assert result.statistic == pytest.approx(direct, rel=1e-10)
    assert result.pvalue >= 1.0 / 6.0


def test_mmd_permutation_floor_is_one_over_b_plus_one() -> None:
    rng = rng_for(19, 0)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 5.0
    result = mmd_permutation_test(x, y, rng=rng, n_permutations=199)
    assert result.pvalue == result.min_pvalue == pytest.approx(1 / 200)


def test_mmd_betting_calibration() -> None:
    def pvalue(rng: np.random.Generator) -> float:
        x, y = rng.normal(size=(600, 2)), rng.normal(size=(600, 2))
        return mmd_betting_test(x, y, rng=rng, witness_points=100).pvalue

    assert_calibrated(false_alarms(pvalue, 45), conservative=True)


def test_mmd_betting_power_and_floor_reach_the_gate_levels() -> None:
    # A 1.2x over-dispersed law is flagged far below the gate's per-check levels (~1e-9),
    # which the permutation test (floor 1/(B+1)) could never reach.
    for seed in POWER_SEEDS:
        rng = rng_for(46, seed)
        x, y = 1.2 * rng.normal(size=(40_000, 3)), rng.normal(size=(40_000, 3))
        result = mmd_betting_test(x, y, rng=rng)
        assert result.pvalue < 1e-9 and result.min_pvalue < 1e-100
        assert result.details.mean_payoff > 0.0


# --------------------------------------------------------------------------- counts
def test_acceptance_binomial_calibration() -> None:
    n, tv = 20_000, 0.3

    def pvalue(rng: np.random.Generator) -> float:
        return acceptance_binomial_test(int(rng.binomial(n, 1.0 - tv)), n, tv).pvalue

    assert_calibrated(false_alarms(pvalue, 20))


def test_acceptance_binomial_calibration_with_tv_error() -> None:
    # The TV estimate is off by 2 standard errors, inside its +-5 se interval: no excess.
    n, tv, se = 20_000, 0.3, 0.002
    estimate = tv + 2 * se

    def pvalue(rng: np.random.Generator) -> float:
        return acceptance_binomial_test(int(rng.binomial(n, 1.0 - tv)), n, estimate,
                                        tv_interval=(estimate - 5 * se,
                                                     estimate + 5 * se)).pvalue

    assert_calibrated(false_alarms(pvalue, 21), conservative=True)


def test_acceptance_binomial_power() -> None:
    n, tv, shift = 20_000, 0.3, 0.02
    interval = (tv - 1e-3, tv + 1e-3)
    # Planned: a shift of 0.02 is beyond what the test detects with power 0.99 at 1e-3.
    assert binomial_detectable_deviation(n, (1 - interval[1], 1 - interval[0]), POWER_ALPHA,
                                         0.99) < shift - 1e-3
    for seed in POWER_SEEDS:
        accepted = int(rng_for(22, seed).binomial(n, 1.0 - tv + shift))
        assert acceptance_binomial_test(accepted, n, tv).pvalue <= POWER_ALPHA
        assert acceptance_binomial_test(accepted, n, tv, tv_interval=interval).pvalue <= (
            POWER_ALPHA)
        lower = int(rng_for(22, 100 + seed).binomial(n, 1.0 - tv - shift))
        assert acceptance_binomial_test(lower, n, tv, tv_interval=interval).pvalue <= (
            POWER_ALPHA)


def test_acceptance_binomial_values_and_edges() -> None:
    # Hand check: n = 10, k = 9, p = 0.5: P(X >= 9) = 11/1024, two-sided 22/1024.
    assert acceptance_binomial_test(9, 10, 0.5).pvalue == pytest.approx(22 / 1024, rel=1e-12)
    assert acceptance_binomial_test(5, 10, 0.5).pvalue == 1.0
    # TV = 0: everything must be accepted.
    assert acceptance_binomial_test(100, 100, 0.0).pvalue == 1.0
    assert acceptance_binomial_test(99, 100, 0.0).pvalue == 0.0
    # TV = 1: nothing may be accepted.
    assert acceptance_binomial_test(0, 100, 1.0).pvalue == 1.0
    assert acceptance_binomial_test(1, 100, 1.0).pvalue == 0.0
    # The observed rate inside the TV interval: p-value 1; outside: the nearest endpoint.
    assert acceptance_binomial_test(650, 1000, 0.3, tv_interval=(0.2, 0.4)).pvalue == 1.0
    result = acceptance_binomial_test(600, 1000, 0.3, tv_interval=(0.25, 0.35))
    assert result.details.rate_at_max == pytest.approx(0.65)
    expected = 2 * stats.binom.cdf(600, 1000, 0.65)
    assert result.pvalue == pytest.approx(expected, rel=1e-10)
    assert result.statistic == 0.6 and result.n == 1000
    # The interval's miss probability is added: the p-value stays valid with an MC TV.
    missed = acceptance_binomial_test(600, 1000, 0.3, tv_interval=(0.25, 0.35),
                                      miss_probability=1e-3)
    assert missed.pvalue == pytest.approx(expected + 1e-3, rel=1e-10)
    assert missed.min_pvalue >= 1e-3


def test_geometric_trials_calibration() -> None:
    def pvalue(rng: np.random.Generator) -> float:
        return geometric_trials_test(rng.geometric(0.3, size=400), 0.3, rng=rng).pvalue

    assert_calibrated(false_alarms(pvalue, 23))


def test_geometric_trials_calibration_with_tv_error() -> None:
    def pvalue(rng: np.random.Generator) -> float:
        trials = rng.geometric(0.3, size=400)
        return geometric_trials_test(trials, 0.31, tv_interval=(0.285, 0.335), rng=rng).pvalue

    assert_calibrated(false_alarms(pvalue, 24), conservative=True)


def test_geometric_trials_interval_bound_dominates_every_tv_inside() -> None:
    # The bound statistic is below the KS statistic at every TV of the interval, so its
    # p-value is above theirs: conservative by construction (no grid).
    rng = rng_for(47, 0)
    trials = rng.geometric(0.3, size=2000)
    bound = geometric_trials_test(trials, 0.3, tv_interval=(0.28, 0.32),
                                  rng=np.random.default_rng(5))
    for tv in np.linspace(0.28, 0.32, 41):
        point = geometric_trials_test(trials, float(tv), rng=np.random.default_rng(5))
        assert bound.statistic <= point.statistic + 1e-15
        assert bound.pvalue >= point.pvalue


def test_geometric_trials_power_wrong_tv() -> None:
    for seed in POWER_SEEDS:
        rng = rng_for(25, seed)
        trials = rng.geometric(0.3, size=2000)
        assert geometric_trials_test(trials, 0.25, rng=rng).pvalue <= POWER_ALPHA
        assert geometric_trials_test(trials, 0.25, tv_interval=(0.24, 0.26),
                                     rng=rng).pvalue <= POWER_ALPHA


def test_geometric_trials_extreme_tv_is_finite() -> None:
    rng = rng_for(26, 0)
    tiny = geometric_trials_test(rng.geometric(1e-9, size=500), 1e-9, rng=rng)
    assert 0.0 <= tiny.pvalue <= 1.0 and tiny.pvalue > POWER_ALPHA
    assert geometric_trials_test(np.ones(300, dtype=int), 1.0, rng=rng).pvalue > POWER_ALPHA
    assert geometric_trials_test([1, 2, 1], 1.0, rng=rng).pvalue <= POWER_ALPHA
    huge = geometric_trials_test([10**15, 3 * 10**15], 1e-15, tv_interval=(5e-16, 1.5e-15),
                                 rng=rng)
    assert math.isfinite(huge.statistic) and 0.0 <= huge.pvalue <= 1.0
    # TV = 0 admits no rejected row.
    assert geometric_trials_test([1, 2], 0.0, rng=rng).pvalue == 0.0


# --------------------------------------------------------------------------- atoms
def test_atom_check_calibration_float32() -> None:
    def pvalue(rng: np.random.Generator) -> float:
        return atom_check(rng.normal(size=(20_000, 1)).astype(np.float32)).pvalue

    assert_calibrated(false_alarms(pvalue, 27), conservative=True)


def test_atom_check_float32_large_n_not_flagged() -> None:
    def log_prob(x: np.ndarray) -> np.ndarray:
        return np.asarray(stats.norm.logpdf(x).sum(axis=1))

    for seed in POWER_SEEDS:
        rng = rng_for(28, seed)
        direct = rng.normal(size=100_000).astype(np.float32)
        # Arithmetic at a coarser resolution than the result's own ulp, as in mean + scale * z.
        three = np.float32(3.0)
        coarse = (three + rng.normal(size=100_000).astype(np.float32)) - three
        for samples in (direct, coarse):
            assert np.unique(samples).size < samples.size  # legitimate repeats exist
            assert atom_check(samples).pvalue > ALPHA
            assert atom_check(samples[:, None], log_prob).pvalue > ALPHA


def test_atom_check_power() -> None:
    def log_prob(x: np.ndarray) -> np.ndarray:
        return np.asarray(stats.norm.logpdf(x).sum(axis=1))

    for seed in POWER_SEEDS:
        rng = rng_for(29, seed)
        samples = rng.normal(size=(100_000, 1)).astype(np.float32)
        zeros = samples.copy()
        zeros[rng.choice(100_000, 200, replace=False)] = 0.0
        for target in (None, log_prob):
            result = atom_check(zeros, target)
            assert result.pvalue <= POWER_ALPHA
            assert result.details.max_multiplicity >= 200
            assert result.details.repeated_value == (0.0,)
        draft = samples.copy()
        draft[:200] = samples[200]  # "the draft itself", repeated
        assert atom_check(draft).pvalue <= POWER_ALPHA
        # float64, d = 3: a single repeated row is already an atom.
        x = rng.normal(size=(1000, 3))
        x[1] = x[0]
        assert atom_check(x).pvalue <= POWER_ALPHA
        assert atom_check(rng.normal(size=(1000, 3))).pvalue == 1.0
    # Degenerate: every sample identical (no spread to explain it) is an atom too.
    assert atom_check(np.zeros((100, 1), dtype=np.float32)).pvalue == 0.0
    assert atom_check(np.zeros((1, 1))).pvalue == 1.0  # a single row repeats nothing


def test_atom_check_min_cell_width_relaxes() -> None:
    rng = rng_for(31, 0)
    x = rng.normal(size=(1000, 1))
    x[1] = x[0]  # one float64 repeat: flagged at the dtype's resolution ...
    assert atom_check(x).pvalue <= POWER_ALPHA
    # ... but explained if the sampler's arithmetic is known to be as coarse as 1e-6.
    assert atom_check(x, min_cell_width=1e-6).pvalue == 1.0


# --------------------------------------------------------------------------- FWER
P_FAMILY = [0.01, 0.04, 0.03, 0.005]


def test_bonferroni_and_holm_hand_computed() -> None:
    np.testing.assert_allclose(bonferroni(P_FAMILY), [0.04, 0.16, 0.12, 0.02], rtol=1e-14)
    # sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    np.testing.assert_allclose(holm(P_FAMILY), [0.03, 0.06, 0.06, 0.02], rtol=1e-14)
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert holm([]).shape == (0,)
    np.testing.assert_array_equal(familywise_reject(P_FAMILY, 0.05), [True, False, False, True])
    np.testing.assert_array_equal(familywise_reject(P_FAMILY, 0.035), [True, False, False, True])
    np.testing.assert_array_equal(familywise_reject(P_FAMILY, 0.035, method="bonferroni"),
                                  [False, False, False, True])


def test_holm_controls_familywise_error() -> None:
    # 10 dependent null p-values per draw (equicorrelated normals): FWER <= alpha.
    def familywise_pvalue(rng: np.random.Generator) -> float:
        z = 0.6 * rng.normal() + 0.8 * rng.normal(size=10)
        return float(holm(stats.norm.sf(z)).min())

    assert_calibrated(false_alarms(familywise_pvalue, 30), conservative=True)


# --------------------------------------------------------------------------- planning
def test_dkw_planning_hand_computed() -> None:
    assert dkw_sample_size(0.1, 0.05) == 185          # ln(40)/0.02 = 184.44
    assert dkw_sample_size(0.01, 1e-4) == 49_518      # ln(20000)/2e-4 = 49517.44
    assert dkw_detectable_distance(185, 0.05) == pytest.approx(0.0998496092660267, rel=1e-12)
    assert dkw_detectable_distance(10_000, 1e-3) == pytest.approx(0.019494746035204, rel=1e-12)
    n = dkw_sample_size(0.02, 1e-3)
    assert dkw_detectable_distance(n, 1e-3) <= 0.02 < dkw_detectable_distance(n - 1, 1e-3)


def test_ks_planning_is_a_guarantee() -> None:
    # sqrt(ln(2/a)/2) + sqrt(ln(200)/2) over sqrt(n), and its inverse.
    eps = ks_detectable_distance(1_000_000, 1e-8, 0.99)
    expected = (math.sqrt(math.log(2e8) / 2) + math.sqrt(math.log(200) / 2)) / 1000
    assert eps == pytest.approx(expected, rel=1e-12)
    n = ks_sample_size(0.005, 1e-8, 0.99)
    assert ks_detectable_distance(n, 1e-8, 0.99) <= 0.005 < ks_detectable_distance(n - 1, 1e-8,
                                                                                      0.99)
    # Simulated: a law at KS distance eps (a shift of N(0, 1)) is flagged at level 1e-3 in
    # every one of 20 seeded runs at n = 20000 (the guarantee says >= 99%).
    n, level = 20_000, 1e-3
    eps = ks_detectable_distance(n, level, 0.99)
    shift = 2 * stats.norm.ppf(0.5 + eps / 2)  # sup |Phi(x - s) - Phi(x)| = 2 Phi(s/2) - 1
    flagged = [ks_one_sample(rng_for(48, r).normal(shift, 1.0, size=n), stats.norm.cdf).pvalue
               <= level for r in range(20)]
    assert all(flagged)


def test_binomial_detectable_deviation_is_exact() -> None:
    n, rate, level = 20_000, 0.7, 1e-3
    delta = binomial_detectable_deviation(n, (rate, rate), level, 0.99)
    # The rejection threshold above the rate, and the power there, from exact tails.
    k_hi = int(stats.binom.isf(level / 2, n, rate)) + 1
    assert stats.binom.sf(k_hi - 1, n, rate + delta) >= 0.99 - 1e-9
    assert stats.binom.sf(k_hi - 1, n, rate + 0.9 * delta) < 0.99
    assert 0.0 < delta < 0.03
    assert binomial_detectable_deviation(n, (rate, rate), level, 0.99) < (
        binomial_detectable_deviation(n, (rate - 0.01, rate + 0.01), level, 0.99))


# --------------------------------------------------------------------------- bad input
GOOD_2D = np.zeros((5, 2))
RNG = np.random.default_rng(0)
TARGET_2D = DiagGaussian([0.0, 0.0], [1.0, 1.0])

BAD_CALLS: list[tuple[str, Callable[[], object]]] = [
    ("values_1d", lambda: ks_one_sample(np.zeros((3, 2)), stats.norm.cdf)),
    ("values_1d", lambda: ks_one_sample([], stats.norm.cdf)),
    ("values_1d", lambda: ks_one_sample([0.0, np.nan], stats.norm.cdf)),
    ("cdf", lambda: ks_one_sample([0.0, 1.0], "norm")),  # type: ignore[arg-type]
    ("cdf", lambda: ks_one_sample([0.0, 1.0], lambda v: v + 2.0)),
    ("cdf", lambda: ks_one_sample([0.0, 1.0], lambda v: 1.0 - stats.norm.cdf(v))),
    ("cdf", lambda: ks_one_sample([0.0, 1.0], lambda v: np.full_like(v, np.nan))),
    ("d", lambda: random_unit_directions(0, 3, rng=RNG)),
    ("m", lambda: random_unit_directions(3, 0, rng=RNG)),
    ("rng", lambda: random_unit_directions(3, 2, rng=42)),  # type: ignore[arg-type]
    ("samples", lambda: ks_projections(np.zeros(5), TARGET_2D, [[1.0, 0.0]])),
    ("samples", lambda: ks_projections(np.full((5, 2), np.inf), TARGET_2D, [[1.0, 0.0]])),
    ("target", lambda: ks_projections(GOOD_2D, "N(0,1)", [[1.0, 0.0]])),  # type: ignore[arg-type]
    ("target", lambda: ks_projections(np.zeros((5, 3)), TARGET_2D, [[1.0, 0.0, 0.0]])),
    ("directions", lambda: ks_projections(GOOD_2D, TARGET_2D, [[1.0, 0.0, 0.0]])),
    ("directions", lambda: ks_projections(GOOD_2D, TARGET_2D, [[0.0, 0.0]])),
    ("y", lambda: ks_two_sample_projections(GOOD_2D, np.zeros((5, 3)), [[1.0, 0.0]])),
    ("x", lambda: ks_two_sample_projections(np.zeros((0, 2)), GOOD_2D, [[1.0, 0.0]])),
    ("u", lambda: pit_uniformity(np.array([[0.5, 1.5]]))),
    ("u", lambda: pit_uniformity(np.array([0.5, 0.2]))),
    ("u", lambda: pit_uniformity(np.array([[0.5, np.nan]]))),
    ("u", lambda: pit_independence(np.array([[0.5, -0.1], [0.2, 0.3]]))),
    ("offset", lambda: pit_independence(np.full((4, 4), 0.5), offset=2)),
    ("x", lambda: mmd_betting_test(np.zeros((5, 2)), GOOD_2D, rng=RNG)),
    ("y", lambda: mmd_betting_test(np.zeros((600, 2)), np.zeros((600, 3)), rng=RNG)),
    ("bandwidth", lambda: mmd_betting_test(np.zeros((600, 2)), np.zeros((600, 2)), rng=RNG,
                                           bandwidth=0.0)),
    ("x", lambda: mmd_permutation_test(np.zeros((1, 2)), GOOD_2D, rng=RNG)),
    ("y", lambda: mmd_permutation_test(GOOD_2D, np.zeros((5, 3)), rng=RNG)),
    ("y", lambda: mmd_permutation_test(GOOD_2D, np.full((5, 2), np.nan), rng=RNG)),
    ("rng", lambda: mmd_permutation_test(GOOD_2D, GOOD_2D, rng=None)),  # type: ignore[arg-type]
    ("n_permutations", lambda: mmd_permutation_test(GOOD_2D, GOOD_2D, rng=RNG, n_permutations=0)),
    ("bandwidth", lambda: mmd_permutation_test(GOOD_2D, GOOD_2D, rng=RNG, bandwidth=-1.0)),
    ("n", lambda: acceptance_binomial_test(1, 0, 0.3)),
    ("n_accepted", lambda: acceptance_binomial_test(11, 10, 0.3)),
    ("n_accepted", lambda: acceptance_binomial_test(2.5, 10, 0.3)),  # type: ignore[arg-type]
    ("tv", lambda: acceptance_binomial_test(5, 10, 1.2)),
    ("tv", lambda: acceptance_binomial_test(5, 10, math.nan)),
    ("tv_interval", lambda: acceptance_binomial_test(5, 10, 0.3, tv_interval=(0.4, 0.5))),
    ("tv_interval", lambda: acceptance_binomial_test(5, 10, 0.3, tv_interval=0.3)),  # type: ignore[arg-type]
    ("miss_probability", lambda: acceptance_binomial_test(5, 10, 0.3, miss_probability=2.0)),
    ("trials", lambda: geometric_trials_test([], 0.3, rng=RNG)),
    ("trials", lambda: geometric_trials_test([0, 1], 0.3, rng=RNG)),
    ("trials", lambda: geometric_trials_test([1.5, 2.0], 0.3, rng=RNG)),
    ("trials", lambda: geometric_trials_test([[1, 2]], 0.3, rng=RNG)),
    ("tv", lambda: geometric_trials_test([1, 2], -0.1, rng=RNG)),
    ("tv_interval", lambda: geometric_trials_test([1, 2], 0.3, tv_interval=(0.3, math.inf),
                                                  rng=RNG)),
    ("rng", lambda: geometric_trials_test([1, 2], 0.3, rng=1)),  # type: ignore[arg-type]
    ("samples", lambda: atom_check(np.arange(10))),
    ("samples", lambda: atom_check(np.zeros((2, 2, 2)))),
    ("samples", lambda: atom_check(np.array([[0.0], [np.nan]]))),
    ("samples", lambda: atom_check(np.zeros((0, 2)))),
    ("target_log_prob", lambda: atom_check(np.zeros((3, 1)), target_log_prob=1.0)),  # type: ignore[arg-type]
    ("target_log_prob", lambda: atom_check(np.zeros((3, 1)), lambda x: np.zeros(7))),
    ("min_cell_width", lambda: atom_check(np.zeros((3, 1)), min_cell_width=-1.0)),
    ("pvalues", lambda: holm([0.1, 1.2])),
    ("pvalues", lambda: bonferroni([[0.1]])),
    ("pvalues", lambda: familywise_reject([np.nan], 0.05)),
    ("alpha", lambda: familywise_reject([0.1], 1.0)),
    ("method", lambda: familywise_reject([0.1], 0.05, method="sidak")),  # type: ignore[arg-type]
    ("epsilon", lambda: dkw_sample_size(0.0, 0.05)),
    ("alpha", lambda: dkw_sample_size(0.1, 0.0)),
    ("n", lambda: dkw_detectable_distance(0, 0.05)),
    ("rate_interval", lambda: binomial_detectable_deviation(100, (0.5, 1.5), 0.05, 0.8)),
    ("power", lambda: binomial_detectable_deviation(100, (0.5, 0.5), 0.05, 1.0)),
    ("epsilon", lambda: ks_sample_size(0.0, 0.05, 0.9)),
    ("n", lambda: ks_detectable_distance(0, 0.05, 0.9)),
]


@pytest.mark.parametrize(("argument", "call"), BAD_CALLS,
                         ids=[f"{i}-{name}" for i, (name, _) in enumerate(BAD_CALLS)])
def test_bad_input_raises_value_error_naming_the_argument(argument: str,
                                                          call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=f"^{argument}:"):
        call()


def test_ks_pvalue_tail_bound_is_valid_and_tight() -> None:
    from cspd_ref.stats.ks import ks_pvalue

    for n in (20_000, 100_000):
        for z in (1.0, 1.5, 2.5, 3.5):
            d = z / math.sqrt(n)
            exact = float(stats.kstwo.sf(d, n))
            assert exact <= ks_pvalue(d, n) <= 1.02 * exact
