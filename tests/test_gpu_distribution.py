"""Distribution checks of gpu_impl's samplers against exact target laws (docs/battery.md), seeded.

Independent of the statistical battery (``cspd_ref.verify``): every check is an exact
one-sample Kolmogorov–Smirnov test (``scipy.stats.kstest``, exact p-value) of a 1-D projection
``a . x`` of the samples against the closed-form CDF of the projected target
(``cspd_ref.GaussianMixture.project(a).cdf``), an exact Binomial test of the acceptance count,
an exact negative-binomial test of the total residual trial count (a sum of iid Geometric(TV)
counts), or a sub-Gaussian tail bound (16-bit smoke tests).

False alarms: this file draws from the run's single budget (``property_tests/budget.py``). Each
test function about an exact sampler is ONE unit of it: it calls ``record_exact_call()``, seeds
every draw from ``statistical_seed(...)`` (``CSPD_SEED``), and compares each of its ``m``
p-values with ``CALL_ALPHA / m`` (Bonferroni), so if the samplers are exact it fails with
probability ``<= CALL_ALPHA = GATE_ALPHA / PLANNED_EXACT_CALLS = 5e-7``; the union bound over all
units of the run (this file's 7 included) gives ``P(false alarm) <= count x CALL_ALPHA <=
GATE_ALPHA = 1e-4`` for the whole ``pytest`` run, counted by the cspd pytest plugin.
Power is shown, not assumed: the same procedure at the same threshold must flag a known-bad
sampler (residual drawn from the draft); that test is not a unit of the budget (it can only
fail for lack of power, never by a false alarm).

Runs on ``CSPD_TEST_DEVICE`` (cpu by default).
"""

from __future__ import annotations

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
from property_tests.budget import CALL_ALPHA, record_exact_call, statistical_seed

DEVICE = device_under_test()
N = 20_000


def seed_for(*labels: object) -> int:
    """A seed from ``CSPD_SEED`` and this file's labels (63 bits: fits ``manual_seed``)."""
    return statistical_seed("tests/test_gpu_distribution.py", *labels)


def assert_bonferroni(pvalues: list[tuple[str, float]]) -> None:
    """One budget unit: reject if any of the ``m`` p-values is ``<= CALL_ALPHA / m``.

    ``P(reject) <= sum_i P(p_i <= CALL_ALPHA / m) <= CALL_ALPHA`` for super-uniform p-values,
    whatever their dependence."""
    if not pvalues:
        raise ValueError("pvalues: empty")
    threshold = CALL_ALPHA / len(pvalues)
    label, worst = min(pvalues, key=lambda item: item[1])
    assert worst > threshold, (
        f"{label}: p = {worst:.3g} <= CALL_ALPHA / {len(pvalues)} = {threshold:.3g} "
        f"(CSPD_SEED reproduces it)")


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
    """KS on projections of ``as_sampler()`` output (float32) for every case: one budget unit,
    Bonferroni over all its projections."""
    record_exact_call()
    rng = np.random.default_rng(seed_for("as_sampler", "directions"))
    pvalues: list[tuple[str, float]] = []
    for i, (case, residual) in enumerate(CASES):
        sampler = gpu_impl.as_sampler(device=DEVICE, residual=residual)
        out = sampler(case, N, seed_for("as_sampler", case.name, residual, i))
        assert isinstance(out, gpu_impl.SpeculativeResult)
        assert out.accepted.dtype == torch.bool and out.trials.dtype == torch.int64
        x = out.samples
        assert isinstance(x, torch.Tensor) and tuple(x.shape) == (N, case.dim)
        assert x.dtype == torch.float32 and x.device.type == DEVICE.type
        xs = x.cpu().double().numpy()
        assert np.isfinite(xs).all()
        for pv in ks_pvalues(xs, case.target, projections(case.dim, rng)):
            pvalues.append((f"KS {case.name}", pv))
    assert_bonferroni(pvalues)


def test_float64_and_batched_residual_variants() -> None:
    """The same for float64 and for every residual method that applies: one budget unit."""
    record_exact_call()
    rng = np.random.default_rng(seed_for("variants", "directions"))
    runs: list[tuple[Case, torch.dtype, str]] = [
        (demo_case(), torch.float64, "batched"),
        (demo_case(), torch.float32, "loop"),
        (equal_scale_gaussian_case(3, 0.8), torch.float64, "reflection"),
        (equal_scale_gaussian_case(3, 0.8), torch.float32, "batched"),
    ]
    pvalues: list[tuple[str, float]] = []
    for i, (case, dtype, residual) in enumerate(runs):
        sampler = gpu_impl.as_sampler(device=DEVICE, dtype=dtype, residual=residual)
        x = sampler(case, N, seed_for("variants", case.name, dtype, residual, i)).samples
        assert x.dtype == dtype
        for pv in ks_pvalues(x.cpu().double().numpy(), case.target,
                             projections(case.dim, rng, 2)):
            pvalues.append((f"KS {case.name} {dtype} {residual}", pv))
    assert_bonferroni(pvalues)


def negative_binomial_total_pvalue(total_trials: int, rows: int, tv: float) -> float:
    """Exact two-sided p-value of the total trial count of ``rows`` rejected rows.

    Each rejected row's trial count is Geometric(TV) on {1, 2, ...}, independently, so the total
    ``T`` satisfies ``T - rows ~ NegativeBinomial(rows, TV)`` (failures before the ``rows``-th
    success). ``p = min(1, 2 min(P(T <= t), P(T >= t)))``: each one-sided tail probability is
    super-uniform under the null, so ``P(p <= x) <= x``."""
    if rows < 1:
        raise ValueError(f"rows: must be >= 1, got {rows}")
    failures = total_trials - rows
    law = stats.nbinom(rows, tv)
    return float(min(1.0, 2.0 * min(law.cdf(failures), law.sf(failures - 1))))


def test_acceptance_count_and_trials_laws() -> None:
    """accepted ~ Binomial(n, 1 - TV) (exact binomial test); the total trials of the rejected
    rows ~ rows + NegativeBinomial(rows, TV) (exact test): one budget unit. TV in float64:
    closed form ``2 Phi(delta/2) - 1`` for equal scales, quadrature of ``(p - q)^+`` in 1-D."""
    record_exact_call()
    g = torch.Generator(device=DEVICE).manual_seed(seed_for("acceptance-trials"))
    pvalues: list[tuple[str, float]] = []
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
        pvalues.append((f"accepted {case.name} {residual}", stats.binomtest(k, N, 1 - tv).pvalue))
        trials = out.trials[~out.accepted].cpu().numpy()
        if residual == "reflection":
            assert (out.trials == 0).all()
            continue
        assert (trials >= 1).all() and (out.trials[out.accepted] == 0).all()
        pvalues.append((f"trials {case.name} {residual}",
                        negative_binomial_total_pvalue(int(trials.sum()), trials.size, tv)))
    assert_bonferroni(pvalues)


def test_negative_binomial_total_pvalue_is_exact() -> None:
    """Deterministic: the p-value is a two-sided tail of the exact law of the total, and a total
    far from its mean ``rows / TV`` is rejected."""
    law = stats.nbinom(50, 0.3)
    mode = 50 + int(law.median())
    assert negative_binomial_total_pvalue(mode, 50, 0.3) == pytest.approx(1.0)
    assert negative_binomial_total_pvalue(50 + 1, 50, 0.3) == pytest.approx(
        2.0 * law.cdf(1), rel=1e-12)
    assert negative_binomial_total_pvalue(50 + 400, 50, 0.3) == pytest.approx(
        2.0 * law.sf(399), rel=1e-12)
    assert negative_binomial_total_pvalue(50 + 400, 50, 0.3) < 1e-12


def test_diffusion_samplers_follow_linear_chain_marginal() -> None:
    """aligned (reflection and batched residual) and joint samplers on LinearGaussianChains:
    KS against the target chain's closed-form marginal; one budget unit."""
    record_exact_call()
    rng = np.random.default_rng(seed_for("diffusion", "directions"))
    chain_rng = np.random.default_rng(4)            # the chains: fixed test fixtures
    T, d = 10, 3
    a = chain_rng.uniform(0.6, 0.95, size=(T, d))
    b = 0.3 * chain_rng.standard_normal((T, d))
    s = chain_rng.uniform(0.3, 0.6, size=T)
    ref_p = ref_diffusion.LinearGaussianChain(a, b, s)
    marginal = ref_p.marginal()
    target = gpu_impl.LinearGaussianChain.from_reference(ref_p, DEVICE)
    draft_eq = gpu_impl.LinearGaussianChain.from_reference(
        ref_diffusion.LinearGaussianChain(a * 0.95, b + 0.2, s), DEVICE)
    draft_neq = gpu_impl.LinearGaussianChain.from_reference(
        ref_diffusion.LinearGaussianChain(a, b - 0.2, s * 1.15), DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(seed_for("diffusion", "samples"))
    runs: list[tuple[str, Callable[[], torch.Tensor]]] = [
        ("aligned equal-scale",
         lambda: gpu_impl.aligned_speculative_sample(draft_eq, target, N, generator=g).samples),
        ("aligned unequal-scale",
         lambda: gpu_impl.aligned_speculative_sample(draft_neq, target, N, generator=g).samples),
        ("joint", lambda: gpu_impl.joint_speculative_sample(draft_neq, target, N // 4,
                                                            generator=g).samples),
        ("target.sample", lambda: target.sample(N, generator=g)),
    ]
    pvalues: list[tuple[str, float]] = []
    for name, run in runs:
        x = run().cpu().double().numpy()
        assert np.isfinite(x).all()
        for pv in ks_pvalues(x, marginal, projections(d, rng, 2)):
            pvalues.append((f"KS {name}", pv))
    assert_bonferroni(pvalues)


def test_mixture_sample_matches_reference_law() -> None:
    """``GaussianMixture.sample`` of gpu_impl against the reference CDFs; one budget unit."""
    record_exact_call()
    rng = np.random.default_rng(seed_for("mixture-sample", "directions"))
    case = mixture_case(11, 4, 5, 6)
    mix = gpu_impl.from_reference(case.target, DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(seed_for("mixture-sample", "samples"))
    x = mix.sample((N,), generator=g)
    assert_bonferroni([(f"KS {case.name}", pv) for pv in
                       ks_pvalues(x.cpu().double().numpy(), case.target, projections(6, rng))])


def test_known_bad_sampler_is_flagged() -> None:
    """Power: a sampler whose residual is a fresh draft sample (a mutant of the catalog)
    must be rejected by the same procedure at the same threshold (``CALL_ALPHA / m``). Not a
    unit of the false-alarm budget: the sampler is wrong, so this assertion fails only if the
    procedure lacks power."""
    rng = np.random.default_rng(seed_for("known-bad", "directions"))
    case = demo_case()
    q = gpu_impl.from_reference(case.draft, DEVICE)
    p = gpu_impl.from_reference(case.target, DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(seed_for("known-bad", "samples"))
    good = gpu_impl.speculative_sample(q, p, N, g)
    bad = torch.where(good.accepted[:, None], good.samples, q.sample((N,), generator=g))
    pvalues = ks_pvalues(bad.cpu().double().numpy(), case.target, projections(2, rng))
    assert min(pvalues) <= CALL_ALPHA / len(pvalues)


HALF_N = 8000
HALF_BIAS_ALLOWANCE = 0.02


def half_precision_tolerance(n: int, variance_proxy: float, alpha: float) -> float:
    """``t`` with ``2 exp(-n t^2 / (2 v)) = alpha``: a sub-Gaussian (proxy ``v``) sample mean of
    ``n`` iid values leaves ``[mu - t, mu + t]`` with probability ``<= alpha`` (Chernoff)."""
    return float(np.sqrt(2.0 * variance_proxy * np.log(2.0 / alpha) / n))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_sampler_smoke(dtype: torch.dtype) -> None:
    """16-bit parameters: finite samples of that dtype, log-ratio computed in float32, and the
    first coordinate's sample mean near the target's 0.3: one budget unit per dtype.

    Bound: coordinate 0 of the demo target is ``X = mu_K + s_K Z`` (``K`` the component, ``Z``
    standard normal, scales ``s_k <= 1``, means in ``[-1.5, 2]``), so
    ``E exp(l (X - EX)) <= exp(l^2 max s_k^2 / 2) exp(l^2 (range of mu)^2 / 8)`` (Hoeffding's
    lemma on ``mu_K``): sub-Gaussian with proxy ``v = 1 + 3.5^2 / 4``. The sample mean of
    ``HALF_N`` values leaves ``EX +- t`` with probability ``<= CALL_ALPHA`` for
    ``t = half_precision_tolerance(HALF_N, v, CALL_ALPHA)`` (0.124). The 16-bit sampler's law is
    the target with parameters rounded to the dtype, and its samples are rounded too: both
    move the mean by less than ``HALF_BIAS_ALLOWANCE = 0.02`` (unit roundoff ``2^-8`` at worst,
    ``E|X| < 1.6``, weights and log-weights rounded relative ``2^-8``), which the tolerance adds
    to ``t``. A sampler that follows the rounded target therefore fails with probability
    ``<= CALL_ALPHA``."""
    record_exact_call()
    case = demo_case()
    x = gpu_impl.as_sampler(device=DEVICE, dtype=dtype)(case, HALF_N,
                                                        seed_for("half", dtype)).samples
    assert x.dtype == dtype and torch.isfinite(x).all()
    target = case.target
    assert float(target.scales[:, 0].max()) <= 1.0
    spread = float(target.means[:, 0].max() - target.means[:, 0].min())
    mean = float(np.dot(target.weights, target.means[:, 0]))
    tol = half_precision_tolerance(HALF_N, 1.0 + spread**2 / 4.0, CALL_ALPHA)
    observed = float(x.double().mean(0)[0])
    assert abs(observed - mean) < tol + HALF_BIAS_ALLOWANCE, (
        f"mean of coordinate 0: {observed:.4f}, target {mean:.4f}, tolerance "
        f"{tol:.3f} + {HALF_BIAS_ALLOWANCE}")
