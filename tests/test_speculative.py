"""Deterministic unit tests of cspd_ref.speculative and cspd_ref.theory
(docs/algorithms.md §3, §6; docs/contract.md §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from cspd_ref import DiagGaussian, GaussianMixture, ResidualBudgetExceeded, speculative_sample
from cspd_ref.speculative import (
    ResidualNoiseArrays,
    accept_from_uniforms,
    reflection_map,
    residual_acceptance_probability,
    residual_sample_batched,
    residual_sample_loop,
    speculative_sample_from_noise,
)
from cspd_ref.theory import (
    expected_groups_per_pass,
    expected_speedup,
    tv_distance,
    tv_equal_scale_gaussians,
)


def noise_arrays(seed: int, n: int, m: int, d: int) -> ResidualNoiseArrays:
    rng = np.random.default_rng(seed)
    return ResidualNoiseArrays(rng.random((n, m)), rng.standard_normal((n, m, d)),
                               rng.random((n, m)))


def test_result_shapes_and_dtypes() -> None:
    q = GaussianMixture([0.4, 0.6], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 2.0]])
    p = DiagGaussian([0.5, 0.0], [1.0, 1.0])
    for method in ("auto", "loop", "batched"):
        out = speculative_sample(q, p, 50, np.random.default_rng(0), residual=method)
        assert out.samples.shape == (50, 2) and out.samples.dtype == np.float64
        assert out.accepted.shape == (50,) and out.accepted.dtype == np.bool_
        assert out.trials.shape == (50,) and out.trials.dtype == np.int64
        assert np.all(out.trials[out.accepted] == 0)
        assert np.all(out.trials[~out.accepted] >= 1)


def test_acceptance_is_log_u_below_log_ratio() -> None:
    lr = np.array([0.0, -1.0, -1.0, 2.0, -np.inf])
    u = np.array([0.999, math.exp(-1.0) * 0.999, math.exp(-1.0) * 1.001, 0.999, 0.5])
    np.testing.assert_array_equal(accept_from_uniforms(lr, u), [True, True, False, True, False])


def test_residual_acceptance_probability_is_one_minus_ratio_clipped() -> None:
    log_q = np.log(np.array([0.1, 0.5, 2.0]))
    log_p = np.zeros(3)
    np.testing.assert_allclose(residual_acceptance_probability(log_q, log_p), [0.9, 0.5, 0.0])
    # Extreme log-ratios stay finite and in [0, 1].
    extreme = residual_acceptance_probability(np.array([-1e6, 1e6, 0.0]), np.zeros(3))
    np.testing.assert_array_equal(extreme, [1.0, 0.0, 0.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_and_loop_residual_agree_on_the_same_proposal_stream(seed: int) -> None:
    q = GaussianMixture([0.3, 0.7], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 2.0]])
    p = GaussianMixture([0.5, 0.5], [[0.5, 0.0], [-1.0, 2.0]], [[1.0, 0.5], [0.7, 1.0]])
    n, m = 300, 500
    v_loop, t_loop = residual_sample_loop(q, p, n, noise_arrays(seed, n, m, 2))
    v_batch, t_batch = residual_sample_batched(q, p, n, noise_arrays(seed, n, m, 2))
    np.testing.assert_array_equal(v_loop, v_batch)
    np.testing.assert_array_equal(t_loop, t_batch)
    # The whole sampler too, on identical noise.
    rng = np.random.default_rng(seed + 10)
    u_c, z, u = rng.random(n), rng.standard_normal((n, 2)), rng.random(n)
    a = speculative_sample_from_noise(q, p, u_c, z, u, noise_arrays(seed, n, m, 2),
                                      residual="loop")
    b = speculative_sample_from_noise(q, p, u_c, z, u, noise_arrays(seed, n, m, 2),
                                      residual="batched")
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.trials, b.trials)
    # Streams hold no position: one object fed twice gives the same result again.
    shared = noise_arrays(seed, n, m, 2)
    first = speculative_sample_from_noise(q, p, u_c, z, u, shared, residual="batched")
    again = speculative_sample_from_noise(q, p, u_c, z, u, shared, residual="batched")
    np.testing.assert_array_equal(first.samples, again.samples)
    np.testing.assert_array_equal(first.samples, b.samples)


def test_exhausted_noise_raises_and_never_substitutes() -> None:
    q = DiagGaussian([0.0], [1.0])
    p = DiagGaussian([0.0], [1.0 + 1e-3])  # TV ~ 3e-4: 3 proposals almost never succeed
    for sampler in (residual_sample_loop, residual_sample_batched):
        with pytest.raises(ResidualBudgetExceeded, match="unfinished"):
            sampler(q, p, 20, noise_arrays(0, 20, 3, 1))
    with pytest.raises(ResidualBudgetExceeded) as info:
        residual_sample_batched(q, p, 20, noise_arrays(0, 20, 1000, 1), max_trials=2)
    assert info.value.unfinished_rows.size >= 1


def test_p_equal_q_accepts_every_draft() -> None:
    g = GaussianMixture([0.2, 0.8], [[0.0, 5.0], [1.0, -1.0]], [[1.0, 0.1], [3.0, 1.0]])
    out = speculative_sample(g, g, 2000, np.random.default_rng(0))
    assert out.accepted.all()
    assert np.all(out.trials == 0)


def test_reflection_pushes_draft_gaussian_onto_target_gaussian() -> None:
    mu_q = np.array([0.0, 1.0, -2.0])
    mu_p = np.array([1.0, -1.0, 0.5])
    s = np.array([0.5, 2.0, 1.5])
    # The map is affine: y = mu_p + A (x - mu_q) with A = S H S^{-1}.
    basis = np.eye(3)
    A = np.stack([reflection_map(mu_q + basis[i], mu_q, mu_p, s) - mu_p for i in range(3)],
                 axis=1)
    np.testing.assert_allclose(reflection_map(mu_q, mu_q, mu_p, s), mu_p)
    # Covariance S^2 is preserved: A S^2 A^T = S^2.
    np.testing.assert_allclose(A @ np.diag(s**2) @ A.T, np.diag(s**2), atol=1e-12)
    # Points where q > p are sent where p > q (checked on a grid of points).
    q, p = DiagGaussian(mu_q, s), DiagGaussian(mu_p, s)
    x = np.random.default_rng(0).normal(size=(1000, 3)) * 3
    y = reflection_map(x, mu_q, mu_p, s)
    more_q = q.log_prob(x) > p.log_prob(x)
    assert np.all(p.log_prob(y[more_q]) > q.log_prob(y[more_q]))
    # Equal means: identity.
    np.testing.assert_array_equal(reflection_map(x, mu_q, mu_q, s), x)


def test_auto_uses_reflection_for_equal_scales_and_reflection_is_refused_otherwise() -> None:
    q, p = DiagGaussian([0.0, 0.0], [1.0, 2.0]), DiagGaussian([1.0, 0.0], [1.0, 2.0])
    out = speculative_sample(q, p, 500, np.random.default_rng(0))
    assert np.all(out.trials == 0) and (~out.accepted).any()
    with pytest.raises(ValueError, match="^residual"):
        speculative_sample(q, DiagGaussian([1.0, 0.0], [1.0, 2.5]), 10,
                           np.random.default_rng(0), residual="reflection")
    with pytest.raises(ValueError, match="^residual"):
        speculative_sample(q, p, 10, np.random.default_rng(0), residual="fast")


def test_bad_inputs_raise_value_error_naming_the_argument() -> None:
    q, p = DiagGaussian([0.0], [1.0]), DiagGaussian([1.0], [1.0])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="^draft"):
        speculative_sample("q", p, 10, rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^target"):
        speculative_sample(q, DiagGaussian([0.0, 1.0], [1.0, 1.0]), 10, rng)
    with pytest.raises(ValueError, match="^n"):
        speculative_sample(q, p, -3, rng)
    with pytest.raises(ValueError, match="^rng"):
        speculative_sample(q, p, 3, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^accept_uniforms"):
        speculative_sample_from_noise(q, p, np.zeros(3), np.zeros((3, 1)), np.ones(3),
                                      noise_arrays(0, 3, 4, 1))
    with pytest.raises(ValueError, match="^draft_normals"):
        speculative_sample_from_noise(q, p, np.zeros(3), np.zeros((3, 2)), np.zeros(3),
                                      noise_arrays(0, 3, 4, 1))
    with pytest.raises(ValueError, match="^draft_normals"):
        speculative_sample_from_noise(q, p, np.zeros(3), np.full((3, 1), np.nan), np.zeros(3),
                                      noise_arrays(0, 3, 4, 1))
    with pytest.raises(ValueError, match="^max_trials"):
        speculative_sample(q, p, 3, rng, max_trials=0)


@pytest.mark.parametrize(
    ("draft", "target"),
    [
        (DiagGaussian([0.0], [1.0]), DiagGaussian([1e4], [1.0])),
        (DiagGaussian([0.0], [1e-6]), DiagGaussian([0.0], [1e6])),
        (DiagGaussian([0.0], [1e6]), DiagGaussian([1.0], [1e-6])),
        (DiagGaussian(np.zeros(4096), np.ones(4096)), DiagGaussian(np.full(4096, 0.01),
                                                                  np.ones(4096))),
        (GaussianMixture([0.5, 0.5], [[0.0], [1e4]], [[1e-6], [1e6]]),
         GaussianMixture([0.9, 0.1], [[-1e4], [0.0]], [[1.0], [1e-3]])),
    ],
)
def test_extreme_valid_inputs_stay_finite(draft: GaussianMixture, target: GaussianMixture) -> None:
    for method in ("auto", "batched"):
        out = speculative_sample(draft, target, 200, np.random.default_rng(1), residual=method)
        assert np.all(np.isfinite(out.samples))


def test_tv_of_equal_scale_gaussians_closed_form() -> None:
    # TV = 2 Phi(delta/2) - 1 with delta the Mahalanobis distance.
    mu_q, mu_p, s = np.array([0.0, 0.0]), np.array([1.0, 2.0]), np.array([0.5, 4.0])
    delta = math.hypot(2.0, 0.5)
    expected = 2 * norm.cdf(delta / 2) - 1
    assert tv_equal_scale_gaussians(mu_q, mu_p, s) == pytest.approx(expected, rel=1e-13)
    tv = tv_distance(DiagGaussian(mu_q, s), DiagGaussian(mu_p, s))
    assert tv.method == "closed_form" and tv.value == pytest.approx(expected, rel=1e-13)


def test_tv_1d_unequal_scales_matches_quadratic_crossings() -> None:
    # N(0, 1) vs N(0, 2^2) cross at +-x* with x*^2 = 2 ln(2) * 4/3.
    x_star = math.sqrt(8 * math.log(2) / 3)
    expected = (norm.cdf(x_star) - norm.cdf(-x_star)) - (
        norm.cdf(x_star / 2) - norm.cdf(-x_star / 2))
    tv = tv_distance(DiagGaussian([0.0], [2.0]), DiagGaussian([0.0], [1.0]))
    assert tv.method == "crossings_1d"
    assert tv.value == pytest.approx(expected, abs=1e-12)


def test_tv_monte_carlo_reports_a_standard_error_and_needs_an_rng() -> None:
    p = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [[0.5, 1.0], [0.5, 1.0]])
    q = DiagGaussian([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="^rng"):
        tv_distance(q, p)
    tv = tv_distance(q, p, rng=np.random.default_rng(0), n_samples=100_000)
    # The x1 coordinate is identical, so TV equals the 1-D TV of the first coordinate.
    exact = tv_distance(DiagGaussian([0.0], [1.0]),
                        GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])).value
    assert tv.method == "monte_carlo" and 0 < tv.stderr < 0.01
    assert abs(tv.value - exact) < 5 * tv.stderr


def test_expected_groups_and_speedup() -> None:
    assert expected_groups_per_pass(0.5, 3) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    assert expected_groups_per_pass(1.0, 4) == 5.0
    assert expected_groups_per_pass(0.0, 4) == 1.0
    assert expected_speedup(0.5, 3, 0.1) == pytest.approx(1.875 / 1.3)
    with pytest.raises(ValueError, match="^a"):
        expected_groups_per_pass(1.5, 2)
    with pytest.raises(ValueError, match="^gamma"):
        expected_groups_per_pass(0.5, 0)
    with pytest.raises(ValueError, match="^cost_ratio"):
        expected_speedup(0.5, 2, -1.0)


def test_budget_error_names_the_callers_rows() -> None:
    q = DiagGaussian([0.0], [1.0])
    p = DiagGaussian([0.0], [1.0 + 1e-3])
    n = 50
    rng = np.random.default_rng(0)
    u_c, z = rng.random(n), rng.standard_normal((n, 1))
    u = np.full(n, 0.999999)  # reject wherever p < q
    x = q.sample_from_noise(u_c, z)
    expected_rejected = np.flatnonzero(p.log_prob(x) - q.log_prob(x) <= np.log(0.999999))
    with pytest.raises(ResidualBudgetExceeded) as info:
        speculative_sample_from_noise(q, p, u_c, z, u, noise_arrays(0, n, 2, 1),
                                      residual="batched")
    assert set(info.value.unfinished_rows.tolist()) <= set(expected_rejected.tolist())
    assert info.value.unfinished_rows.max() > info.value.unfinished_rows.size - 1
