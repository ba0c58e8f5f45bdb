"""Distribution checks of gpu_impl's samplers against exact target laws (SPEC §5), seeded.

Independent of the statistical battery (``cspd_ref.verify``): every check is an exact
one-sample Kolmogorov–Smirnov test (``scipy.stats.kstest``, exact p-value) of a 1-D projection
``a . x`` of the samples against the closed-form CDF of the projected target
(``cspd_ref.GaussianMixture.project(a).cdf``), plus a Binomial test of the acceptance count and
a z-test of the mean residual trial count against Geometric(TV).

Family-wise error: the whole file makes at most ``FAMILIES`` test functions' worth of checks;
each function splits ``ALPHA / FAMILIES`` over its p-values by Bonferroni, so a correct sampler
fails this file with probability <= ``ALPHA = 1e-4`` (SPEC §5). Power is shown, not assumed: the
same procedure must flag a known-bad sampler (residual drawn from the draft).

Seeds come from ``CSPD_SEED`` (default 0); runs on ``CSPD_TEST_DEVICE`` (cpu by default).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

import cspd_ref
import gpu_impl
from cspd_ref import diffusion as ref_diffusion
from cspd_ref.cases import Case, demo_case, equal_scale_gaussian_case
from gpu_impl.testing import device_under_test

DEVICE = device_under_test()
SEED = int(os.environ.get("CSPD_SEED", "0"))
ALPHA = 1e-4
FAMILIES = 6
N = 20_000


def projections(dim: int, rng: np.random.Generator, n_random: int = 3) -> list[np.ndarray]:
    """Up to three coordinate axes and ``n_random`` random unit directions (fixed in advance)."""
    dirs = [np.eye(dim)[j] for j in range(min(dim, 3))]
    for _ in range(n_random if dim > 1 else 0):
        a = rng.standard_normal(dim)
        dirs.append(a / np.linalg.norm(a))
    return dirs


def ks_pvalues(samples: np.ndarray, target: cspd_ref.GaussianMixture,
               directions: list[np.ndarray]) -> list[float]:
    """Exact one-sample KS p-values of each projection against the projected target's CDF."""
    out = []
    for a in directions:
        law = target.project(a)
        out.append(float(stats.kstest(samples @ a, law.cdf, method="exact").pvalue))
    return out


def mixture_case(seed: int, kq: int, kp: int, d: int) -> Case:
    rng = np.random.default_rng(seed)
    p = cspd_ref.GaussianMixture(rng.dirichlet(np.full(kp, 2.0)),
                                 1.5 * rng.standard_normal((kp, d)),
                                 np.exp(0.3 * rng.standard_normal((kp, d))))
    q = cspd_ref.GaussianMixture(rng.dirichlet(np.full(kq, 2.0)),
                                 p.means[:kq % kp + 1].mean(0) + rng.standard_normal((kq, d)),
                                 np.exp(0.3 * rng.standard_normal((kq, d))))
    return Case(draft=q, target=p, name=f"mix-{kq}v{kp}-d{d}")


def gaussian_1d_case() -> Case:
    q = cspd_ref.GaussianMixture([1.0], [[0.0]], [[1.0]])
    p = cspd_ref.GaussianMixture([1.0], [[0.7]], [[1.4]])
    return Case(draft=q, target=p, name="gauss-1d-unequal")


CASES: list[tuple[Case, str]] = [
    (demo_case(), "auto"),
    (equal_scale_gaussian_case(4, 1.5), "auto"),            # reflection
    (mixture_case(7, 3, 5, 8), "auto"),                      # batched, K up to 5
    (gaussian_1d_case(), "loop"),
]


def test_as_sampler_matches_exact_target_cdfs() -> None:
    """KS on projections of ``as_sampler()`` output (float32) for every case, Bonferroni."""
    rng = np.random.default_rng([SEED, 1])
    pvalues: list[tuple[str, float]] = []
    for i, (case, residual) in enumerate(CASES):
        sampler = gpu_impl.as_sampler(device=DEVICE, residual=residual)
        x = sampler(case, N, SEED * 1000 + i)
        assert isinstance(x, torch.Tensor) and tuple(x.shape) == (N, case.dim)
        assert x.dtype == torch.float32 and x.device.type == DEVICE.type
        xs = x.cpu().double().numpy()
        assert np.isfinite(xs).all()
        for pv in ks_pvalues(xs, case.target, projections(case.dim, rng)):
            pvalues.append((case.name, pv))
    threshold = ALPHA / FAMILIES / len(pvalues)
    worst = min(pvalues, key=lambda item: item[1])
    assert worst[1] > threshold, f"KS rejects {worst[0]}: p = {worst[1]:.3g} < {threshold:.3g}"


def test_float64_and_batched_residual_variants() -> None:
    """The same for float64 and for every residual method that applies."""
    rng = np.random.default_rng([SEED, 2])
    runs: list[tuple[Case, torch.dtype, str]] = [
        (demo_case(), torch.float64, "batched"),
        (demo_case(), torch.float32, "loop"),
        (equal_scale_gaussian_case(3, 0.8), torch.float64, "reflection"),
        (equal_scale_gaussian_case(3, 0.8), torch.float32, "batched"),
    ]
    pvalues = []
    for i, (case, dtype, residual) in enumerate(runs):
        x = gpu_impl.as_sampler(device=DEVICE, dtype=dtype, residual=residual)(case, N, SEED + i)
        assert x.dtype == dtype
        pvalues += ks_pvalues(x.cpu().double().numpy(), case.target,
                              projections(case.dim, rng, 2))
    assert min(pvalues) > ALPHA / FAMILIES / len(pvalues)


def test_acceptance_count_and_trials_laws() -> None:
    """accepted ~ Binomial(n, 1 - TV); trials of rejected rows ~ Geometric(TV) (z-test of the
    mean, n large). TV in float64: closed form ``2 Phi(delta/2) - 1`` for equal scales,
    quadrature of ``(p - q)^+`` in 1-D."""
    g = torch.Generator(device=DEVICE).manual_seed(SEED + 3)
    pvalues = []
    eq = equal_scale_gaussian_case(5, 1.2)
    tv_eq = 2 * special.ndtr(1.2 / 2) - 1
    case_1d = gaussian_1d_case()
    p_ref, q_ref = case_1d.target, case_1d.draft
    tv_1d = integrate.quad(lambda v: max(0.0, float(np.exp(p_ref.log_prob([[v]])[0]))
                                          - float(np.exp(q_ref.log_prob([[v]])[0]))),
                           -20, 20, points=[0.0, 0.7], limit=200)[0]
    for case, tv, residual in ((eq, tv_eq, "reflection"), (case_1d, tv_1d, "batched"),
                               (case_1d, tv_1d, "loop")):
        q = gpu_impl.from_reference(case.draft, DEVICE)
        p = gpu_impl.from_reference(case.target, DEVICE)
        out = gpu_impl.speculative_sample(q, p, N, g, residual=residual)
        k = int(out.accepted.sum())
        pvalues.append(stats.binomtest(k, N, 1 - tv).pvalue)
        trials = out.trials[~out.accepted].cpu().numpy()
        if residual == "reflection":
            assert (out.trials == 0).all()
            continue
        assert (trials >= 1).all() and (out.trials[out.accepted] == 0).all()
        z = (trials.mean() - 1 / tv) / (np.sqrt((1 - tv) / tv**2) / np.sqrt(trials.size))
        pvalues.append(2 * special.ndtr(-abs(z)))
    assert min(pvalues) > ALPHA / FAMILIES / len(pvalues), pvalues


def test_diffusion_samplers_follow_linear_chain_marginal() -> None:
    """aligned (reflection and batched residual) and joint samplers on LinearGaussianChains:
    KS against the target chain's closed-form marginal."""
    rng = np.random.default_rng([SEED, 4])
    T, d = 10, 3
    a = rng.uniform(0.6, 0.95, size=(T, d))
    b = 0.3 * rng.standard_normal((T, d))
    s = rng.uniform(0.3, 0.6, size=T)
    ref_p = ref_diffusion.LinearGaussianChain(a, b, s)
    marginal = ref_p.marginal()
    target = gpu_impl.LinearGaussianChain.from_reference(ref_p, DEVICE)
    draft_eq = gpu_impl.LinearGaussianChain.from_reference(
        ref_diffusion.LinearGaussianChain(a * 0.95, b + 0.2, s), DEVICE)
    draft_neq = gpu_impl.LinearGaussianChain.from_reference(
        ref_diffusion.LinearGaussianChain(a, b - 0.2, s * 1.15), DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(SEED + 4)
    runs: list[Callable[[], torch.Tensor]] = [
        lambda: gpu_impl.aligned_speculative_sample(draft_eq, target, N, g).samples,
        lambda: gpu_impl.aligned_speculative_sample(draft_neq, target, N, g).samples,
        lambda: gpu_impl.joint_speculative_sample(draft_neq, target, N // 4, g).samples,
        lambda: target.sample(N, g),
    ]
    pvalues = []
    for run in runs:
        x = run().cpu().double().numpy()
        assert np.isfinite(x).all()
        pvalues += ks_pvalues(x, marginal, projections(d, rng, 2))
    assert min(pvalues) > ALPHA / FAMILIES / len(pvalues)


def test_mixture_sample_matches_reference_law() -> None:
    rng = np.random.default_rng([SEED, 5])
    case = mixture_case(11, 4, 5, 6)
    mix = gpu_impl.from_reference(case.target, DEVICE)
    x = mix.sample((N,), torch.Generator(device=DEVICE).manual_seed(SEED + 5))
    pvalues = ks_pvalues(x.cpu().double().numpy(), case.target, projections(6, rng))
    assert min(pvalues) > ALPHA / FAMILIES / len(pvalues)


def test_known_bad_sampler_is_flagged() -> None:
    """Power: a sampler whose residual is a fresh draft sample (a mutant from SPEC §5's catalog)
    must be rejected by the same procedure at the same threshold."""
    rng = np.random.default_rng([SEED, 6])
    case = demo_case()
    q = gpu_impl.from_reference(case.draft, DEVICE)
    p = gpu_impl.from_reference(case.target, DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(SEED + 6)
    good = gpu_impl.speculative_sample(q, p, N, g)
    bad = torch.where(good.accepted[:, None], good.samples, q.sample((N,), g))
    pvalues = ks_pvalues(bad.cpu().double().numpy(), case.target, projections(2, rng))
    assert min(pvalues) < ALPHA / FAMILIES / len(pvalues)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_sampler_smoke(dtype: torch.dtype) -> None:
    """16-bit parameters: finite samples of that dtype, log-ratio computed in float32."""
    x = gpu_impl.as_sampler(device=DEVICE, dtype=dtype)(demo_case(), 2000, SEED)
    assert x.dtype == dtype and torch.isfinite(x).all()
    assert abs(float(x.float().mean(0)[0]) - 0.3) < 0.15
