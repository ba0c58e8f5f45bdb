"""Deterministic unit tests of cspd_ref.diffusion and cspd_ref.diffusion_sampling
(docs/algorithms.md §4)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from cspd_ref.diffusion import (
    GaussianChain,
    LinearGaussianChain,
    trajectory_log_ratio,
    transition_log_prob,
)
from cspd_ref.diffusion_sampling import (
    aligned_speculative_sample,
    aligned_speculative_sample_from_noise,
    joint_speculative_sample,
)
from cspd_ref.speculative import ResidualNoiseArrays

T, D = 4, 3


def linear_chain(seed: int, scale_factor: float = 1.0) -> LinearGaussianChain:
    rng = np.random.default_rng(seed)
    return LinearGaussianChain(rng.uniform(0.5, 1.0, (T, D)), rng.normal(0, 1, (T, D)),
                               scale_factor * rng.uniform(0.3, 1.0, (T, D)), temperature=0.9)


def test_linear_chain_marginal_matches_its_moments() -> None:
    """The chain is affine in its noise: x_0 = mean + sum_i c_i * noise_i, so its mean is the
    output at zero noise and its variance the sum of squared unit responses."""
    chain = linear_chain(0)
    zeros_T, zeros_eps = np.zeros((1, D)), np.zeros((T, 1, D))
    mean = chain.sample_from_noise(zeros_T, zeros_eps)[0]
    var = np.zeros(D)
    for j in range(D):
        unit = np.zeros((1, D))
        unit[0, j] = 1.0
        var += (chain.sample_from_noise(unit, zeros_eps)[0] - mean) ** 2
        for step in range(T):
            eps = zeros_eps.copy()
            eps[step, 0, j] = 1.0
            var += (chain.sample_from_noise(zeros_T, eps)[0] - mean) ** 2
    marginal = chain.marginal()
    np.testing.assert_allclose(marginal.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(marginal.scale**2, var, rtol=1e-12)


def test_transition_log_ratio_equal_scales_is_difference_of_squared_distances() -> None:
    p, q = linear_chain(1), linear_chain(2)
    q.step_scales[:] = p.step_scales
    rng = np.random.default_rng(0)
    x_t, x_prev = rng.normal(size=(5, D)), rng.normal(size=(5, D))
    s2 = (p.temperature * p.step_scales[1]) ** 2
    m_p, m_q = p.linear_mean(x_t, 2), q.linear_mean(x_t, 2)
    expected = (((x_prev - m_q) ** 2 - (x_prev - m_p) ** 2) / (2 * s2)).sum(axis=1)
    got = transition_log_prob(p, x_t, 2, x_prev) - transition_log_prob(q, x_t, 2, x_prev)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def chain_log_density_scipy(states: np.ndarray, num_steps: int, mean_fn, scale_fn,
                            temperature: float) -> np.ndarray:
    """log density of whole trajectories ``states`` ``(T + 1, N, d)`` (``x_T`` first), written
    out from the chain's definition (docs/algorithms.md §4.1): ``x_T ~ N(0, I)`` and
    ``x_{t-1} | x_t ~ N(m(x_t, t), (tau s(x_t, t))^2)``, each term by scipy.stats.norm.logpdf."""
    total = norm.logpdf(states[0]).sum(axis=-1)
    for i in range(num_steps):
        t = num_steps - i
        x_t, x_prev = states[i], states[i + 1]
        scale = temperature * np.broadcast_to(scale_fn(x_t, t), x_t.shape)
        total += norm.logpdf(x_prev, loc=mean_fn(x_t, t), scale=scale).sum(axis=-1)
    return total


def test_trajectory_log_ratio_matches_scipy_trajectory_densities() -> None:
    """trajectory_log_ratio(q, p, traj) = log p(traj) - log q(traj), with both trajectory
    densities (prior of x_T included) computed by scipy from the chains' parameters or from
    callables defined here, never by cspd_ref. Unequal scales, so the log-scale terms count."""
    rng = np.random.default_rng(0)
    states = rng.normal(size=(T + 1, 6, D))  # any points: the identity holds everywhere
    p, q = linear_chain(1), linear_chain(2)

    def linear(chain: LinearGaussianChain):
        a, b, s = (chain.coefficients.copy(), chain.offsets.copy(), chain.step_scales.copy())
        return (lambda x, t: a[t - 1] * x + b[t - 1]), (lambda x, t: s[t - 1])

    log_p = chain_log_density_scipy(states, T, *linear(p), p.temperature)
    log_q = chain_log_density_scipy(states, T, *linear(q), q.temperature)
    np.testing.assert_allclose(trajectory_log_ratio(q, p, states), log_p - log_q, rtol=1e-12,
                               atol=1e-12)
    # the log-scale terms are not negligible here: dropping them would change the ratio
    log_scales = np.log(q.step_scales / p.step_scales).sum()
    assert abs(log_scales) > 0.1

    # a nonlinear pair whose mean and scale depend on the state
    w = np.random.default_rng(3).normal(size=(D, D)) / np.sqrt(D)
    m_p = lambda x, t: np.tanh(x @ w) * 0.9 + 0.1 * t
    s_p = lambda x, t: 0.5 + 0.1 * np.abs(x)
    m_q = lambda x, t: 0.8 * x
    s_q = lambda x, t: 0.7 + 0.05 * t * np.ones_like(x)
    chain_p = GaussianChain(m_p, s_p, num_steps=T, dim=D, temperature=0.8)
    chain_q = GaussianChain(m_q, s_q, num_steps=T, dim=D, temperature=0.8)
    expected = (chain_log_density_scipy(states, T, m_p, s_p, 0.8)
                - chain_log_density_scipy(states, T, m_q, s_q, 0.8))
    np.testing.assert_allclose(trajectory_log_ratio(chain_q, chain_p, states), expected,
                               rtol=1e-12, atol=1e-12)


def test_identical_chains_accept_everything() -> None:
    chain = linear_chain(3)
    for sampler in (aligned_speculative_sample, joint_speculative_sample):
        out = sampler(chain, chain, 300, rng=np.random.default_rng(0))
        assert out.accepted.all() and out.samples.shape == (300, D)


def test_aligned_sampler_uses_the_shared_noise_and_loop_equals_batched() -> None:
    p, q = linear_chain(1), linear_chain(2, scale_factor=1.2)
    rng = np.random.default_rng(0)
    n = 200
    x_T, shared, eps1, u = (rng.normal(size=(n, D)), rng.normal(size=(T - 1, n, D)),
                            rng.normal(size=(n, D)), rng.random(n))
    noise = lambda: ResidualNoiseArrays(*(np.random.default_rng(9).random((n, 400)),),
                                        np.random.default_rng(8).normal(size=(n, 400, D)),
                                        np.random.default_rng(7).random((n, 400)))
    a = aligned_speculative_sample_from_noise(q, p, x_T, shared, eps1, u, noise(), residual="loop")
    b = aligned_speculative_sample_from_noise(q, p, x_T, shared, eps1, u, noise(),
                                              residual="batched")
    np.testing.assert_array_equal(a.samples, b.samples)
    # Accepted rows are the draft's own last step from the shared trajectory.
    x1_q = q.trajectory_from_noise(x_T, shared)[-1]
    draft_token = q.step(x1_q, 1, eps1)
    np.testing.assert_allclose(a.samples[a.accepted], draft_token[a.accepted])


def test_nonlinear_chain_runs_and_validates_its_callables() -> None:
    w = np.random.default_rng(0).normal(size=(D, D)) / np.sqrt(D)
    chain = GaussianChain(lambda x, t: np.tanh(x @ w) * 0.9, lambda x, t: 0.5 + 0.1 * np.abs(x),
                          num_steps=T, dim=D)
    out = chain.sample(50, rng=np.random.default_rng(1))
    assert out.shape == (50, D) and np.all(np.isfinite(out))
    bad = GaussianChain(lambda x, t: x, lambda x, t: -np.ones_like(x), num_steps=T, dim=D)
    with pytest.raises(ValueError, match="^scale_fn"):
        bad.sample(3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="^mean_fn"):
        GaussianChain(3, lambda x, t: x, 2, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^temperature"):
        GaussianChain(lambda x, t: x, lambda x, t: x, 2, 1, temperature=0.0)
    with pytest.raises(ValueError, match="^target_chain"):
        short = LinearGaussianChain(np.ones(2), np.zeros((2, D)), np.ones(2))
        aligned_speculative_sample(linear_chain(1), short, 5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="^residual"):
        joint_speculative_sample(chain, chain, 5, rng=np.random.default_rng(0),
                                 residual="reflection")
