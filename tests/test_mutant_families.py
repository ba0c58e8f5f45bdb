"""Tests of property_tests/mutant_families.py: each family's law change, its zero point, the
closed forms against effect_size's Monte Carlo estimates, determinism (fixed seeds throughout)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from cspd_ref import GaussianMixture, speculative_sample
from cspd_ref.ar import ar_rosenblatt
from cspd_ref.cases import Case, demo_case
from cspd_ref.mutants import ar_families as af
from cspd_ref.mutants import edge as ed
from cspd_ref.mutants import family_cases as fc
from cspd_ref.mutants import token_families as tf
from property_tests import mutant_families as mf

N = 200_000


def small_mixture_case() -> Case:
    return fc.mixture_case(3, 2, 0.2, seed=4)


def binomial_tolerance(p: float, n: int, z: float = 4.0) -> float:
    return z * math.sqrt(max(p * (1.0 - p), 1e-12) / n)


# --------------------------------------------------------------------------- zero points
IDENTITY_SETTINGS = [
    tf.exact_token_sampler(),
    tf.capped_residual(10**9, "zero"),
    tf.capped_residual(None, "draft"),
    tf.draft_temperature(1.0),
    tf.mass_toward_draft(0.0),
    tf.low_precision_log_density("float64"),
]


@pytest.mark.parametrize("sampler", IDENTITY_SETTINGS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("case_fn", [demo_case, lambda: fc.gaussian_case(1, 0.3),
                                     small_mixture_case], ids=["demo", "gauss1", "mix3"])
def test_identity_settings_reproduce_the_reference(sampler, case_fn) -> None:
    case = case_fn()
    out = sampler(case, 5000, 17)
    ref = speculative_sample(case.draft, case.target, 5000, np.random.default_rng(17),
                             residual="batched")
    assert np.array_equal(out.samples, ref.samples)
    assert np.array_equal(out.accepted, ref.accepted)
    assert np.array_equal(out.trials, ref.trials)


def test_fast_densities_match_the_reference() -> None:
    case = fc.mixture_case(16, 5, 0.1)
    x = np.random.default_rng(0).normal(0.0, 3.0, (2000, 16))
    log_q, log_p = tf.mixtures_log_prob((case.draft, case.target), x)
    assert np.allclose(log_q, case.draft.log_prob(x), rtol=0, atol=1e-10)
    assert np.allclose(log_p, case.target.log_prob(x), rtol=0, atol=1e-10)
    u, z = np.random.default_rng(1).random(500), np.random.default_rng(2).standard_normal((500, 16))
    assert np.array_equal(tf.mixture_sample_from_noise(case.target, u, z),
                          case.target.sample_from_noise(u, z))


# --------------------------------------------------------------------------- law changes
@pytest.mark.parametrize(("d", "tv", "cap"), [(1, 0.3, 5), (16, 0.2, 8)])
def test_capped_zero_atom_has_the_predicted_mass(d: int, tv: float, cap: int) -> None:
    case = fc.gaussian_case(d, tv)
    out = tf.capped_residual(cap, "zero")(case, N, 3)
    zero_rows = np.all(out.samples == 0.0, axis=1)
    predicted = mf.capped_zero_atom_mass(tv, cap)
    assert abs(zero_rows.mean() - predicted) < binomial_tolerance(predicted, N)
    assert not out.accepted[zero_rows].any() and np.all(out.trials[zero_rows] == cap)


def test_capped_draft_fallback_keeps_the_rejected_draft() -> None:
    case = fc.gaussian_case(2, 0.3)
    zero = tf.capped_residual(3, "zero")(case, 20_000, 5)
    kept = tf.capped_residual(3, "draft")(case, 20_000, 5)
    rng = np.random.default_rng(5)
    drafts = case.draft.sample_from_noise(rng.random(20_000), rng.standard_normal((20_000, 2)))
    unfinished = np.all(zero.samples == 0.0, axis=1)
    assert unfinished.sum() > 100
    assert np.array_equal(kept.samples[unfinished], drafts[unfinished])
    assert np.array_equal(kept.samples[~unfinished], zero.samples[~unfinished])


CLOSED_FORM_1D = [
    tf.capped_residual(5, "zero"),
    tf.capped_residual(5, "draft"),
    tf.capped_residual(5, "fresh_draft"),
    tf.draft_temperature(1.2),
    tf.mass_toward_draft(0.1),
    tf.low_precision_log_density("bfloat16"),
    tf.residual_from_draft(),
]


@pytest.mark.parametrize("sampler", CLOSED_FORM_1D, ids=lambda s: s.__name__)
def test_one_dimensional_law_matches_monte_carlo(sampler) -> None:
    case = fc.mixture_case(1, 3, 0.1)
    law = mf.token_law_1d(sampler.mistake, case)
    effect = mf.effect_size(sampler, case, n_ref=N, seed=11)
    assert abs(effect.ks - law.ks) <= effect.ks_noise + 2.0 / mf.PIT_BINS
    assert abs(effect.atom_mass - law.atom) < binomial_tolerance(law.atom, N) + 1e-9
    assert effect.acceptance_rate is not None
    assert abs(effect.acceptance_rate - law.acceptance) < binomial_tolerance(law.acceptance, N)


def test_gross_parameters_change_the_law() -> None:
    case = fc.mixture_case(1, 3, 0.1)
    for sampler in CLOSED_FORM_1D[:5] + CLOSED_FORM_1D[6:]:
        assert mf.closed_form_ks_1d(sampler, case) > 0.005, sampler.__name__
    assert mf.closed_form_ks_1d(tf.exact_token_sampler(), case) < 1e-6


def test_draft_temperature_samples_wider_drafts() -> None:
    case = fc.gaussian_case(4, 0.1)
    out = tf.draft_temperature(1.2)(case, 10_000, 9)
    rng = np.random.default_rng(9)
    rng.random(10_000)
    z = rng.standard_normal((10_000, 4))
    assert np.allclose(out.samples[out.accepted], 1.2 * z[out.accepted], rtol=0, atol=1e-15)


def test_mass_toward_draft_matches_its_closed_form_in_d8() -> None:
    case = fc.mixture_case(8, 3, 0.3)
    w = 0.2
    closed, _ = mf.mass_toward_draft_ks(case, w)
    effect = mf.effect_size(tf.mass_toward_draft(w), case, n_ref=N, seed=12)
    assert abs(effect.ks - closed) <= effect.ks_noise_simultaneous
    tv, rate, noise = effect.tv, effect.acceptance_rate, effect.acceptance_noise
    assert tv is not None and rate is not None and noise is not None
    expected_rate = (1 - w) * (1 - tv) + w
    assert abs(rate - expected_rate) < noise
    assert effect.acceptance_deviation == pytest.approx(w * tv, abs=noise)


def test_bfloat16_rounding_is_round_to_nearest_even() -> None:
    one = 1.0
    values = np.array([one, one + 2**-8, one + 3 * 2**-8, -one - 2**-9, -np.inf, 0.0])
    out = tf.round_log_density(values, "bfloat16")
    assert out.tolist() == [1.0, 1.0, 1.0 + 2**-6, -1.0, -np.inf, 0.0]
    x = np.random.default_rng(0).normal(0.0, 100.0, 10_000)
    bits = tf.round_log_density(x, "bfloat16").astype(np.float32).view(np.uint32)
    assert np.all(bits & 0xFFFF == 0)
    assert np.all(np.abs(tf.round_log_density(x, "bfloat16") - x) <= 2**-8 * np.abs(x))
    assert np.array_equal(tf.round_log_density(x, "float16"), x.astype(np.float16).astype(float))
    assert tf.round_log_density(x, "float64") is not None
    assert np.array_equal(tf.round_log_density(x, "float64"), x)


def test_bfloat16_rounding_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(0.0, 50.0, 10_000)
    expected = torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).to(torch.float64).numpy()
    assert np.array_equal(tf.round_log_density(x, "bfloat16"), expected)


def test_bfloat16_in_d64_moves_the_acceptance_rate() -> None:
    case = fc.gaussian_case(64, 0.3)
    n = 100_000
    exact = tf.exact_token_sampler()(case, n, 2)
    rounded = tf.low_precision_log_density("bfloat16")(case, n, 2)
    flipped = np.mean(exact.accepted != rounded.accepted)
    assert flipped > 0.005
    assert rounded.accepted.mean() - exact.accepted.mean() > 4 * math.sqrt(flipped / n)


def test_residual_from_draft_changes_the_residual_law() -> None:
    target = GaussianMixture([1.0], [[0.0]], [[1.0]])
    draft = GaussianMixture([1.0], [[0.0]], [[2.0]])
    case = Case(draft=draft, target=target)
    exact = tf.exact_token_sampler()(case, 50_000, 4)
    broken = tf.residual_from_draft()(case, 50_000, 4)
    # Both residuals live on {p > q} = {|y| < 1.3596}; the draft-proposed one follows
    # q (p - q)^+ / p, which puts more mass away from 0 than (p - q)^+ does.
    a, b = exact.samples[~exact.accepted, 0], broken.samples[~broken.accepted, 0]
    assert np.abs(a).max() < 1.3597 and np.abs(b).max() < 1.3597
    assert ks_2samp(np.abs(a), np.abs(b)).pvalue < 1e-9
    assert np.mean(np.abs(b)) > np.mean(np.abs(a))
    assert np.array_equal(exact.accepted, broken.accepted)


# --------------------------------------------------------------------------- AR family
def test_batched_conditionals_and_rosenblatt_match_the_model() -> None:
    case = fc.ar_case()
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(6, case.seq_len, case.dim))
    known = rng.random((6, case.seq_len)) < 0.5
    pos = case.schedule.positions(2)
    known[:, pos] = False
    law = af.batched_conditionals(case.target, tokens, known, pos)
    for i in range(6):
        one = case.target.conditionals(tokens[i], known[i], pos)
        for name in ("weights", "means", "scales"):
            assert np.allclose(getattr(law, name)[i], getattr(one, name), rtol=1e-14, atol=1e-14)
    x = af.ar_keeps_extra_groups(0)(case, 40, 1)
    assert np.allclose(af.ar_rosenblatt_batched(case.target, case.schedule, x),
                       ar_rosenblatt(case.target, case.schedule, x), rtol=0, atol=1e-12)


def test_ar_extra_groups_zero_is_exact_and_two_is_not() -> None:
    case = fc.ar_case()
    exact = mf.effect_size(af.ar_keeps_extra_groups(0), case, n_ref=20_000, seed=3)
    broken = mf.effect_size(af.ar_keeps_extra_groups(2), case, n_ref=20_000, seed=3)
    assert exact.ks <= exact.ks_noise_simultaneous
    assert broken.ks > 3 * broken.ks_noise_simultaneous


# --------------------------------------------------------------------------- effect_size
def test_effect_size_of_the_exact_sampler_is_noise() -> None:
    case = fc.mixture_case(16, 5, 0.1)
    effect = mf.effect_size(tf.exact_token_sampler(), case, n_ref=N, seed=6)
    assert effect.ks <= effect.ks_noise_simultaneous
    assert effect.atom_mass == 0.0 and effect.atom_value is None
    assert effect.acceptance_deviation is not None and effect.acceptance_noise is not None
    assert abs(effect.acceptance_deviation) <= effect.acceptance_noise
    assert effect.ks_noise == pytest.approx(math.sqrt(math.log(200) / (2 * N)))


def test_effect_size_finds_the_single_axis_shift() -> None:
    member = fc.single_axis_shift(16, 0.15)
    effect = mf.effect_size(member.sampler, member.case, n_ref=N, seed=7)
    assert effect.ks_direction == "axis[0]"
    assert member.effect is not None and member.effect.closed_form_ks is not None
    assert abs(effect.ks - member.effect.closed_form_ks) <= effect.ks_noise
    assert effect.acceptance_deviation == 0.0


def test_effect_size_counts_the_atom_at_zero() -> None:
    case = fc.gaussian_case(16, 0.2)
    effect = mf.effect_size(tf.capped_residual(8, "zero"), case, n_ref=N, seed=8)
    assert effect.atom_value is not None and np.array_equal(effect.atom_value, np.zeros(16))
    predicted = mf.capped_zero_atom_mass(0.2, 8)
    assert abs(effect.atom_mass - predicted) < binomial_tolerance(predicted, N)
    assert mf.closed_forms(tf.capped_residual(8, "zero"), case) == (None,
                                                                    pytest.approx(predicted))


# --------------------------------------------------------------------------- determinism, grid
ALL_TOKEN = [
    tf.capped_residual(5, "zero"), tf.capped_residual(5, "draft"),
    tf.capped_residual(5, "fresh_draft"), tf.draft_temperature(1.1), tf.mass_toward_draft(0.1),
    tf.low_precision_log_density("bfloat16"), tf.low_precision_log_density("float16"),
    tf.residual_from_draft(),
]


@pytest.mark.parametrize("sampler", ALL_TOKEN, ids=lambda s: s.__name__)
def test_token_samplers_are_deterministic_in_seed(sampler) -> None:
    case = demo_case()
    a, b, c = sampler(case, 2000, 1), sampler(case, 2000, 1), sampler(case, 2000, 2)
    assert a.samples.shape == (2000, 2) and a.accepted.dtype == bool
    assert a.trials.dtype == np.int64
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.trials, b.trials)
    assert not np.array_equal(a.samples, c.samples)


def test_ar_sampler_is_deterministic_in_seed() -> None:
    case = fc.ar_case()
    sampler = af.ar_keeps_extra_groups(1)
    a, b = sampler(case, 300, 1), sampler(case, 300, 1)
    assert a.shape == (300, case.seq_len, case.dim) and np.array_equal(a, b)
    assert not np.array_equal(a, sampler(case, 300, 2))


def test_names_and_bad_parameters() -> None:
    assert tf.capped_residual(20, "draft").__name__ == "capped_residual[cap=20,fallback=draft]"
    assert tf.draft_temperature(1.05).__name__ == "draft_temperature[tau=1.05]"
    assert af.ar_keeps_extra_groups(2).__name__.startswith("ar_keeps_extra_groups[k=2")
    for bad in (lambda: tf.capped_residual(0), lambda: tf.capped_residual(5, "nan"),
                lambda: tf.draft_temperature(0.0), lambda: tf.mass_toward_draft(1.5),
                lambda: tf.low_precision_log_density("int8"), lambda: af.ar_keeps_extra_groups(-1)):
        with pytest.raises(ValueError):
            bad()


def test_case_builders_hit_the_requested_tv() -> None:
    for d, tv in ((1, 0.005), (16, 0.1), (64, 0.3)):
        case = fc.gaussian_case(d, tv, seed=3)
        delta = float(np.linalg.norm(case.target.means[0] - case.draft.means[0]))
        assert math.erf(delta / (2 * math.sqrt(2))) == pytest.approx(tv, rel=1e-12)
    case = fc.mixture_case(4, 3, 0.05, seed=2)
    tv = float(case.name.split("tv")[-1])
    assert tv == pytest.approx(0.05, rel=0.05)


def test_family_grid_points_build() -> None:
    families = {p.family for p in ed.FAMILY_GRID}
    assert families == set(ed.FAMILIES)
    for point in ed.FAMILY_GRID:
        assert callable(point.sampler())
        assert point.case_args[0] in ("gaussian", "mixture", "ar", "standard_normal")


def test_edge_members_are_at_the_edge() -> None:
    members = ed.edge_members()
    assert 8 <= len(members) <= 12
    dims = {m.case.dim for m in members}
    assert {1, 16, 64} <= dims
    for m in members:
        e = m.effect
        assert e is not None
        if m.family == "single_axis_shift":
            continue
        assert e.n_ref == ed.EDGE_N_REF and e.seed == ed.EDGE_SEED
        in_ks = 0.006 <= e.ks <= 0.02
        in_atom = 0.001 <= e.atom_mass <= 0.01
        assert in_ks or in_atom, m.sampler.__name__
        if e.closed_form_ks is not None:
            assert abs(e.ks - e.closed_form_ks) <= 2 * e.ks_noise, m.sampler.__name__
        if e.closed_form_atom is not None:
            assert abs(e.atom_mass - e.closed_form_atom) <= binomial_tolerance(
                e.closed_form_atom, e.n_ref) + 1e-4, m.sampler.__name__
    shift = members[-1]
    assert shift.family == "single_axis_shift" and shift.case.dim == 16
    assert shift.effect is not None
    assert shift.effect.ks == pytest.approx(0.0598, abs=1e-4)
