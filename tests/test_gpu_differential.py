"""Differential tests: gpu_impl against the float64 reference cspd_ref on IDENTICAL noise.

Every test draws its noise in float64 NumPy, rounds it to values that float32 represents
exactly (uniforms kept below 1), and feeds the same numbers to ``cspd_ref`` and — as tensors of
the dtype under test on ``CSPD_TEST_DEVICE`` (``cpu`` by default, ``cuda`` when set and
present) — to ``gpu_impl``. The only differences left are then the parameters' rounding to the
dtype and the arithmetic's. The residual proposals use ``cspd_ref.speculative.ResidualNoiseArrays``
and ``gpu_impl.ResidualNoiseArrays`` built from the same arrays, so trial counts are comparable.

Tolerance (first-order rounding analysis; ``u = u_dtype + u_64`` with ``u_dtype`` the unit
roundoff of the dtype under test, 2**-24 for float32, 2**-53 for float64; the ``u_64`` part
covers the reference's own rounding). For a point ``x`` and mixtures ``p, q``, let
``z_kj = (x_j - mu_kj)/s_kj``, ``pi_k`` the posterior component weights,
``X_j = |x_j| + max_k |mu^p_kj| + max_k |mu^q_kj|`` and, for each of p and q,

* ``A = sum_k pi_k [sum_j (z_kj^2/2 + |log s_kj| + log(2 pi)/2) + |log w_k|]`` — the size of the
  terms summed into the log-density; summing ``d`` of them and ``logsumexp``-ing ``K`` loses at
  most ``(d + K + 4) u A``;
* ``G = sum_k pi_k sum_j |z_kj| X_j / s_kj`` — the gradient of the log-density times the size
  of the perturbation of ``x`` and of the means by rounding: the tensor ``x`` is
  ``fl(mu + s z)`` with rounded ``mu, s`` (``|dx_j| <= 3u(2|mu_j| + |x_j|)``) and forming
  ``x - mu`` adds ``u(|x_j| + |mu_j|)``: at most ``8 u G`` together.

Hence ``|lr_gpu - lr_ref| <= tol = 2 u [(d + K + 4)(A_p + A_q) + 8 (G_p + G_q)]`` (factor 2 of
safety), which every test also asserts directly on the log-ratios. Accept decisions must agree
except on rows where ``|log u - lr_ref| <= tol``; residual trials must agree except on rows where
an examined proposal's ``u'`` lies in the range of ``a = -expm1(min(0, log q - log p))`` over
log-ratios within ``tol`` of the reference's; component choices are compared only where the
uniform is farther than ``4 K u`` from a cumulative-weight boundary. Such ambiguous rows are
counted and must be rare (<= 2%). In float32 the median ``tol`` is 7e-6 (d = 1) to 2.5e-3
(d = 64); the observed log-ratio errors stay below 5% of it.

Samples agree within ``8 u X_j`` (draft / residual proposals: ``mu + s z``) and, for reflected
rows, ``8 u [X_j + |y_j| + (d + 4) s_j (||w|| + 1)]`` (the inner product ``w . e`` over d
coordinates). The diffusion tests add the drift of the states through the T steps: each test
chain carries a forward error model (``step_bounds``: Lipschitz constant in the max norm times
the incoming state error, plus the rounding of its dot products — ``(n + 3) u sum |w||x|`` for
length n — of tanh and of the weights), propagated from the exact shared start
``e_{t-1} = dm + |eps| ds + 2u(|m| + |s eps|)``; the tests assert the states and last-step
parameters within these bounds and carry them into the log-ratio tolerance through its
first derivatives (``lr_drift``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import cspd_ref
import gpu_impl
from cspd_ref import diffusion as ref_diffusion
from cspd_ref import diffusion_sampling as ref_diffusion_sampling
from cspd_ref import residual as ref_residual
from cspd_ref import speculative as ref_speculative
from gpu_impl import diffusion as gpu_diffusion
from gpu_impl import diffusion_sampling as gpu_diffusion_sampling
from gpu_impl import residual as gpu_residual
from gpu_impl import speculative as gpu_speculative
from gpu_impl.testing import device_under_test

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
U64 = 2.0**-53
ONE_BELOW_F32 = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
SEED = int(os.environ.get("CSPD_SEED", "0"))
MAX_AMBIGUOUS_FRACTION = 0.02


DEVICE = device_under_test()
DTYPES = [torch.float32, torch.float64]


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2 + U64


# --------------------------------------------------------------------- noise and conversion
def f32_normals(shape: tuple[int, ...], *, rng: np.random.Generator) -> np.ndarray:
    """Standard normals rounded to float32-representable float64 values."""
    return rng.standard_normal(shape).astype(np.float32).astype(np.float64)


def f32_uniforms(shape: tuple[int, ...], *, rng: np.random.Generator) -> np.ndarray:
    """U[0, 1) rounded to float32-representable values, kept below 1."""
    u = rng.random(shape).astype(np.float32).astype(np.float64)
    return np.minimum(u, ONE_BELOW_F32)


def t(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), device=DEVICE).to(dtype)


def host(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy() if tensor.dtype.is_floating_point \
        else tensor.detach().cpu().numpy()


@dataclass
class TokenNoise:
    u_c: np.ndarray        # (n,)
    z: np.ndarray          # (n, d)
    u_acc: np.ndarray      # (n,)
    r_u: np.ndarray        # (n, M)
    r_z: np.ndarray        # (n, M, d)
    r_acc: np.ndarray      # (n, M)

    def ref_stream(self) -> ref_speculative.ResidualNoiseArrays:
        return ref_speculative.ResidualNoiseArrays(self.r_u, self.r_z, self.r_acc)

    def gpu_stream(self, dtype: torch.dtype) -> gpu_impl.ResidualNoiseArrays:
        return gpu_impl.ResidualNoiseArrays(t(self.r_u, dtype), t(self.r_z, dtype),
                                            t(self.r_acc, dtype))


def token_noise(rng: np.random.Generator, n: int, d: int, m: int) -> TokenNoise:
    return TokenNoise(f32_uniforms((n,), rng=rng), f32_normals((n, d), rng=rng),
                      f32_uniforms((n,), rng=rng),
                      f32_uniforms((n, m), rng=rng), f32_normals((n, m, d), rng=rng),
                      f32_uniforms((n, m), rng=rng))


def random_mixture(rng: np.random.Generator, k: int, d: int, *, spread: float = 2.0,
                   log_scale_sd: float = 0.4) -> cspd_ref.GaussianMixture:
    w = rng.dirichlet(np.full(k, 2.0))
    w = w / w.sum()
    means = spread * rng.standard_normal((k, d))
    scales = np.exp(log_scale_sd * rng.standard_normal((k, d)))
    return cspd_ref.GaussianMixture(w, means, scales)


def perturbed(rng: np.random.Generator, mix: cspd_ref.GaussianMixture, k: int,
              shift: float) -> cspd_ref.GaussianMixture:
    """A draft near ``mix`` with ``k`` components (means shifted, scales jittered)."""
    idx = rng.integers(0, mix.n_components, size=k)
    means = mix.means[idx] + shift * rng.standard_normal((k, mix.dim))
    scales = mix.scales[idx] * np.exp(0.2 * rng.standard_normal((k, mix.dim)))
    w = rng.dirichlet(np.full(k, 3.0))
    return cspd_ref.GaussianMixture(w / w.sum(), means, scales)


# --------------------------------------------------------------------- tolerance machinery
def _terms(mix: cspd_ref.GaussianMixture, x: np.ndarray, X: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log p(x), A, G)`` of the module docstring; ``x``, ``X``: ``(..., d)``."""
    z = (x[..., None, :] - mix.means) / mix.scales
    with np.errstate(divide="ignore"):
        log_w = np.log(mix.weights)
    comp = (-0.5 * z * z - np.log(mix.scales) - HALF_LOG_TWO_PI).sum(-1) + log_w
    top = comp.max(-1, keepdims=True)
    logp = top[..., 0] + np.log(np.exp(comp - top).sum(-1))
    post = np.exp(comp - logp[..., None])
    mag = (0.5 * z * z + np.abs(np.log(mix.scales)) + HALF_LOG_TWO_PI).sum(-1)
    mag = mag + np.where(post > 0, np.abs(np.where(np.isfinite(log_w), log_w, 0.0)), 0.0)
    A = (post * mag).sum(-1)
    G = (post * (np.abs(z) * X[..., None, :] / mix.scales).sum(-1)).sum(-1)
    return logp, A, G


def magnitude(x: np.ndarray, p: cspd_ref.GaussianMixture, q: cspd_ref.GaussianMixture
              ) -> np.ndarray:
    """``X_j = |x_j| + max_k |mu^p_kj| + max_k |mu^q_kj|``."""
    return np.abs(x) + np.abs(p.means).max(-2) + np.abs(q.means).max(-2)


def log_ratio_and_tol(p: cspd_ref.GaussianMixture, q: cspd_ref.GaussianMixture, x: np.ndarray,
                      u: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference ``log p(x) - log q(x)`` and its float tolerance (module docstring)."""
    X = magnitude(x, p, q)
    lp, A_p, G_p = _terms(p, x, X)
    lq, A_q, G_q = _terms(q, x, X)
    k = max(p.n_components, q.n_components)
    tol = 2.0 * u * ((x.shape[-1] + k + 4) * (A_p + A_q) + 8.0 * (G_p + G_q))
    return lp - lq, tol


def near_boundary(uniforms: np.ndarray, weights: np.ndarray, u: float) -> np.ndarray:
    """True where a component uniform is within ``4 K u`` of a cumulative-weight boundary."""
    k = weights.shape[-1]
    if k == 1:
        return np.zeros(np.shape(uniforms), dtype=bool)
    bounds = np.cumsum(weights, axis=-1)[..., :-1]
    return (np.abs(uniforms[..., None] - bounds) <= 4 * k * u).any(-1)


def batch_rows(mix: cspd_ref.GaussianMixture, rows: np.ndarray) -> cspd_ref.GaussianMixture:
    return mix if mix.batch_shape == () else mix.index_batch(rows[:, None])


def ambiguous_residual_rows(p: cspd_ref.GaussianMixture, q: cspd_ref.GaussianMixture,
                            noise: TokenNoise, rows: np.ndarray, trials: np.ndarray, u: float,
                            ) -> np.ndarray:
    """For reference-rejected ``rows`` with ``trials`` proposals examined: True where any
    examined proposal's residual test or component choice is within tolerance of flipping."""
    out = np.zeros(rows.size, dtype=bool)
    if rows.size == 0:
        return out
    m = int(trials.max())
    u_c, z, acc = noise.r_u[rows, :m], noise.r_z[rows, :m], noise.r_acc[rows, :m]
    p_rows, q_rows = batch_rows(p, rows), batch_rows(q, rows)
    y = p_rows.sample_from_noise(u_c, z)
    lr, tol = log_ratio_and_tol(p_rows, q_rows, y, u)
    examined = np.arange(m)[None, :] < trials[:, None]
    bad = residual_test_ambiguous(acc, -lr, tol, u) | near_boundary(u_c, p_rows.weights, u)
    return (bad & examined).any(axis=1)


def residual_test_ambiguous(accept_u: np.ndarray, log_q_minus_log_p: np.ndarray,
                            tol: np.ndarray, u: float) -> np.ndarray:
    """True where ``u' < -expm1(min(0, D))`` could flip when ``D`` moves by up to ``tol``: ``a``
    is monotone in ``D``, so its range is ``[a(D + tol), a(D - tol)]`` (plus ``4u`` for
    ``expm1`` and the comparison)."""
    a_lo = -np.expm1(np.minimum(0.0, log_q_minus_log_p + tol))
    a_hi = -np.expm1(np.minimum(0.0, log_q_minus_log_p - tol))
    return (accept_u >= a_lo - 4 * u) & (accept_u <= a_hi + 4 * u)


def reflection_tol(x: np.ndarray, y: np.ndarray, p: cspd_ref.GaussianMixture,
                   q: cspd_ref.GaussianMixture, u: float) -> np.ndarray:
    s = p.scales[..., 0, :]
    w = (x - q.means[..., 0, :]) / s
    norm_w = np.linalg.norm(w, axis=-1, keepdims=True)
    d = x.shape[-1]
    return 8 * u * (magnitude(x, p, q) + np.abs(y) + (d + 4) * s * (norm_w + 1))


@dataclass
class Comparison:
    skipped: int
    n: int
    worst_lr_ratio: float


def compare_tokens(p: cspd_ref.GaussianMixture, q: cspd_ref.GaussianMixture, noise: TokenNoise,
                   ref: ref_speculative.SpeculativeResult, got: gpu_impl.SpeculativeResult,
                   dtype: torch.dtype, method: str, *, extra_lr_tol: np.ndarray | float = 0.0,
                   extra_sample_tol: np.ndarray | float = 0.0,
                   gpu_p: gpu_impl.GaussianMixture | None = None,
                   gpu_q: gpu_impl.GaussianMixture | None = None) -> Comparison:
    """Assert that ``got`` matches ``ref`` row by row outside the stated tolerances."""
    u = unit_roundoff(dtype)
    n, d = ref.samples.shape
    acc_g, trials_g, samples_g = host(got.accepted), host(got.trials), host(got.samples)
    assert samples_g.shape == (n, d) and acc_g.shape == (n,) and trials_g.shape == (n,)
    assert np.isfinite(samples_g).all()
    x_ref = q.sample_from_noise(noise.u_c, noise.z)
    lr_ref, tol = log_ratio_and_tol(p, q, x_ref, u)
    tol = tol + extra_lr_tol
    ambiguous = near_boundary(noise.u_c, q.weights, u)
    with np.errstate(divide="ignore"):
        ambiguous |= np.abs(np.log(noise.u_acc) - lr_ref) <= tol
    worst = 0.0
    if gpu_p is not None and gpu_q is not None:
        # the tolerance claim itself: |lr_gpu - lr_ref| <= tol at the gpu's own draft samples
        x_g = gpu_q.sample_from_noise(t(noise.u_c, dtype), t(noise.z, dtype))
        lr_g = host(gpu_speculative.log_acceptance_ratio(gpu_q, gpu_p, x_g))
        ok = ~near_boundary(noise.u_c, q.weights, u)
        ratio = np.abs(lr_g - lr_ref)[ok] / tol[ok]
        worst = float(ratio.max()) if ratio.size else 0.0
        assert worst <= 1.0, f"log-ratio error exceeds the stated tolerance ({worst:.3g} x tol)"
    rejected = np.flatnonzero(~ref.accepted)
    if method != "reflection":
        ambiguous[rejected] |= ambiguous_residual_rows(p, q, noise, rejected,
                                                       ref.trials[rejected], u)
    keep = ~ambiguous
    assert ambiguous.mean() <= MAX_AMBIGUOUS_FRACTION, (
        f"{ambiguous.sum()} of {n} rows within tolerance: the test lost its teeth")
    np.testing.assert_array_equal(acc_g[keep], ref.accepted[keep])
    np.testing.assert_array_equal(trials_g[keep], ref.trials[keep])
    if method == "reflection":
        np.testing.assert_array_equal(ref.trials, 0)
    X = magnitude(ref.samples, p, q)
    sample_tol = 8 * u * X + extra_sample_tol
    if method == "reflection":
        refl = keep & ~ref.accepted
        sample_tol = np.where(refl[:, None],
                              reflection_tol(x_ref, ref.samples, p, q, u) + extra_sample_tol,
                              sample_tol)
    err = np.abs(samples_g - ref.samples)
    bad = (err > sample_tol) & keep[:, None]
    assert not bad.any(), (f"{bad.any(1).sum()} rows differ beyond tolerance; worst "
                           f"{(err / sample_tol)[keep].max():.3g} x tol")
    return Comparison(int(ambiguous.sum()), n, worst)


# --------------------------------------------------------------------- token cases
TOKEN_CASES = [
    # (name, K_draft, K_target, d, method)
    ("gauss-1d-unequal", 1, 1, 1, "batched"),
    ("gauss-8d-equal-scales", 1, 1, 8, "reflection"),
    ("mix-2v3-d4", 2, 3, 4, "batched"),
    ("mix-5v5-d16", 5, 5, 16, "batched"),
    ("mix-5v1-d64", 5, 1, 64, "batched"),
    ("mix-1v5-d64-loop", 1, 5, 64, "loop"),
]


def make_token_case(name: str, kq: int, kp: int, d: int, method: str, rng: np.random.Generator,
                    ) -> tuple[cspd_ref.GaussianMixture, cspd_ref.GaussianMixture]:
    if method == "reflection":
        scale = np.exp(0.3 * rng.standard_normal(d))
        q = cspd_ref.GaussianMixture([1.0], rng.standard_normal((1, d)), scale[None])
        p = cspd_ref.GaussianMixture([1.0], q.means + 0.8 * rng.standard_normal((1, d)) / d**0.5,
                                     scale[None])
        return p, q
    if kq == kp == 1:
        q = cspd_ref.GaussianMixture([1.0], rng.standard_normal((1, d)),
                                     np.exp(0.3 * rng.standard_normal((1, d))))
        p = cspd_ref.GaussianMixture([1.0], q.means + 1.0 / d**0.5, q.scales * 1.6)
        return p, q
    p = random_mixture(rng, kp, d, spread=1.5)
    q = perturbed(rng, p, kq, shift=0.6 / d**0.25)
    return p, q


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("name", "kq", "kp", "d", "method"), TOKEN_CASES,
                         ids=[c[0] for c in TOKEN_CASES])
def test_tokens_match_reference(name: str, kq: int, kp: int, d: int, method: str,
                                dtype: torch.dtype) -> None:
    """Same noise -> same accept decisions, trial counts and samples (within tolerance)."""
    rng = np.random.default_rng([SEED, kq, kp, d, len(name)])
    p, q = make_token_case(name, kq, kp, d, method, rng)
    n, m = 1500, 48
    noise = token_noise(rng, n, d, m)
    ref = ref_speculative.speculative_sample_from_noise(
        q, p, noise.u_c, noise.z, noise.u_acc, noise.ref_stream(), residual=method)
    gp = gpu_impl.from_reference(p, DEVICE, dtype)
    gq = gpu_impl.from_reference(q, DEVICE, dtype)
    got = gpu_impl.speculative_sample_from_noise(
        gq, gp, t(noise.u_c, dtype), t(noise.z, dtype), t(noise.u_acc, dtype),
        noise.gpu_stream(dtype), residual=method)
    assert got.samples.dtype == dtype and got.samples.device.type == DEVICE.type
    assert got.trials.dtype == torch.int64 and got.accepted.dtype == torch.bool
    cmp = compare_tokens(p, q, noise, ref, got, dtype, method, gpu_p=gp, gpu_q=gq)
    assert 0 < ref.accepted.sum() < n or method == "reflection"
    assert cmp.worst_lr_ratio <= 1.0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_auto_picks_reflection_and_batched_like_reference(dtype: torch.dtype) -> None:
    rng = np.random.default_rng([SEED, 11])
    for method in ("reflection", "batched"):
        p, q = make_token_case("auto", 1, 2, 3, method, rng)
        gp = gpu_impl.from_reference(p, DEVICE, dtype)
        gq = gpu_impl.from_reference(q, DEVICE, dtype)
        assert (gpu_speculative.resolve_residual_method("auto", gq, gp)
                == ref_speculative.resolve_residual_method("auto", q, p) == method)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_batched_distributions_rows(dtype: torch.dtype) -> None:
    """Per-row (batch (n,)) draft and target, as the diffusion last step produces."""
    rng = np.random.default_rng([SEED, 12])
    n, d, k, m = 800, 3, 2, 48
    w = rng.dirichlet(np.ones(k), size=n)
    p = cspd_ref.GaussianMixture(w, rng.standard_normal((n, k, d)),
                                 np.exp(0.3 * rng.standard_normal((n, k, d))))
    q = cspd_ref.GaussianMixture(np.ones((n, 1)), rng.standard_normal((n, 1, d)),
                                 np.exp(0.3 * rng.standard_normal((n, 1, d))))
    noise = token_noise(rng, n, d, m)
    ref = ref_speculative.speculative_sample_from_noise(
        q, p, noise.u_c, noise.z, noise.u_acc, noise.ref_stream(), residual="batched")
    gp, gq = gpu_impl.from_reference(p, DEVICE, dtype), gpu_impl.from_reference(q, DEVICE, dtype)
    got = gpu_impl.speculative_sample_from_noise(
        gq, gp, t(noise.u_c, dtype), t(noise.z, dtype), t(noise.u_acc, dtype),
        noise.gpu_stream(dtype), residual="batched")
    compare_tokens(p, q, noise, ref, got, dtype, "batched", gpu_p=gp, gpu_q=gq)


def test_loop_and_batched_give_identical_results() -> None:
    """On the same residual arrays the loop schedule and the batched rounds agree exactly."""
    rng = np.random.default_rng([SEED, 13])
    p, q = make_token_case("lb", 2, 3, 5, "batched", rng)
    noise = token_noise(rng, 1000, 5, 64)
    gp, gq = gpu_impl.from_reference(p, DEVICE), gpu_impl.from_reference(q, DEVICE)
    args = (gq, gp, t(noise.u_c, torch.float32), t(noise.z, torch.float32),
            t(noise.u_acc, torch.float32), noise.gpu_stream(torch.float32))
    a = gpu_impl.speculative_sample_from_noise(*args, residual="loop")
    b = gpu_impl.speculative_sample_from_noise(*args, residual="batched")
    assert torch.equal(a.samples, b.samples) and torch.equal(a.trials, b.trials)


# --------------------------------------------------------------------- cap and budget
def test_short_residual_stream_raises_like_reference() -> None:
    rng = np.random.default_rng([SEED, 14])
    q = cspd_ref.GaussianMixture([1.0], [[0.0]], [[1.0]])
    p = cspd_ref.GaussianMixture([1.0], [[0.05]], [[1.02]])   # TV ~ 0.03: 2 proposals rarely do
    noise = token_noise(rng, 400, 1, 2)
    with pytest.raises(ref_speculative.ResidualBudgetExceeded) as ref_exc:
        ref_speculative.speculative_sample_from_noise(q, p, noise.u_c, noise.z, noise.u_acc,
                                                      noise.ref_stream(), residual="batched")
    gp, gq = gpu_impl.from_reference(p, DEVICE, torch.float64), gpu_impl.from_reference(
        q, DEVICE, torch.float64)
    with pytest.raises(gpu_impl.ResidualBudgetExceeded) as exc:
        gpu_impl.speculative_sample_from_noise(
            gq, gp, t(noise.u_c, torch.float64), t(noise.z, torch.float64),
            t(noise.u_acc, torch.float64), noise.gpu_stream(torch.float64), residual="batched")
    assert isinstance(exc.value, RuntimeError)
    # One class for both packages, and the same kind of row list (a NumPy int64 array).
    assert type(exc.value) is type(ref_exc.value) is cspd_ref.ResidualBudgetExceeded
    assert isinstance(exc.value.unfinished_rows, np.ndarray)
    assert exc.value.unfinished_rows.dtype == np.int64
    count = exc.value.unfinished_rows.size
    assert count == ref_exc.value.unfinished_rows.size > 0
    assert f"{count} row(s) unfinished" in str(exc.value)
    # Both report the caller's row numbers.
    np.testing.assert_array_equal(np.sort(exc.value.unfinished_rows),
                                  np.sort(ref_exc.value.unfinished_rows))


def test_one_budget_exception_class_for_both_packages() -> None:
    """``except cspd_ref.ResidualBudgetExceeded`` catches gpu_impl's too: it is the same class,
    defined once in ``cspd_ref.residual`` and re-exported by every module that used to have it."""
    assert gpu_impl.ResidualBudgetExceeded is cspd_ref.ResidualBudgetExceeded
    assert gpu_speculative.ResidualBudgetExceeded is ref_speculative.ResidualBudgetExceeded
    assert gpu_residual.ResidualBudgetExceeded is ref_residual.ResidualBudgetExceeded
    q = gpu_impl.GaussianMixture([1.0], [[0.0]], [[1.0]]).to(DEVICE)
    p = gpu_impl.GaussianMixture([1.0], [[1e-3]], [[1.0 + 1e-3]]).to(DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(SEED)
    with pytest.raises(cspd_ref.ResidualBudgetExceeded) as exc:
        gpu_impl.speculative_sample(q, p, 2000, g, residual="batched", max_trials=2)
    assert isinstance(exc.value.unfinished_rows, np.ndarray) and exc.value.max_trials == 2


def test_max_trials_cap_raises_never_substitutes() -> None:
    q = gpu_impl.GaussianMixture([1.0], [[0.0]], [[1.0]], validate_args=True)
    p = gpu_impl.GaussianMixture([1.0], [[1e-3]], [[1.0 + 1e-3]])
    p, q = p.to(DEVICE), q.to(DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(SEED)
    with pytest.raises(gpu_impl.ResidualBudgetExceeded, match=r"row\(s\) unfinished after 3 "):
        gpu_impl.speculative_sample(q, p, 20000, g, residual="batched", max_trials=3)
    with pytest.raises(RuntimeError):
        gpu_impl.speculative_sample(q, p, 20000, g, residual="loop", max_trials=2)


# --------------------------------------------------------------------- extreme valid inputs
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_extreme_valid_inputs_are_finite(dtype: torch.dtype) -> None:
    """Means 1e4 apart, scales 1e-6..1e6, d = 4096, p == q: finite, no NaN/inf; p == q accepts
    every row and returns the draft unchanged."""
    rng = np.random.default_rng([SEED, 15])
    g = torch.Generator(device=DEVICE).manual_seed(SEED)
    n = 256
    cases = []
    d = 8
    far = cspd_ref.GaussianMixture([1.0], np.full((1, d), 1e4 / d**0.5), np.ones((1, d)))
    near = cspd_ref.GaussianMixture([1.0], np.zeros((1, d)), np.ones((1, d)))
    cases.append((near, far, "reflection"))
    cases.append((near, far, "batched"))
    tiny = cspd_ref.GaussianMixture([0.5, 0.5], [[0.0] * d, [1e4] * d], np.full((2, d), 1e-6))
    huge = cspd_ref.GaussianMixture([1.0], np.zeros((1, d)), np.full((1, d), 1e6))
    cases.append((tiny, huge, "batched"))
    cases.append((huge, tiny, "batched"))
    mixed_scales = np.exp(rng.uniform(np.log(1e-6), np.log(1e6), size=(2, d)))
    mixed = cspd_ref.GaussianMixture([0.3, 0.7], rng.standard_normal((2, d)), mixed_scales)
    cases.append((mixed, near, "batched"))
    big_d = 4096
    big_p = random_mixture(rng, 3, big_d, spread=0.3, log_scale_sd=0.05)
    big_q = perturbed(rng, big_p, 2, shift=0.05)
    cases.append((big_q, big_p, "batched"))
    for q_ref, p_ref, method in cases:
        q = gpu_impl.from_reference(q_ref, DEVICE, dtype)
        p = gpu_impl.from_reference(p_ref, DEVICE, dtype)
        out = gpu_impl.speculative_sample(q, p, n, g, residual=method)
        assert torch.isfinite(out.samples).all(), (q_ref, p_ref, method)
        assert out.samples.shape == (n, p.dim)
    for ref_dist in (tiny, huge, mixed, big_p):
        same = gpu_impl.from_reference(ref_dist, DEVICE, dtype)
        twin = gpu_impl.from_reference(ref_dist, DEVICE, dtype)
        noise_u = torch.rand(n, generator=g, device=DEVICE, dtype=dtype)
        noise_z = torch.randn(n, same.dim, generator=g, device=DEVICE, dtype=dtype)
        noise_a = torch.rand(n, generator=g, device=DEVICE, dtype=dtype)
        stream = gpu_impl.ResidualNoiseGenerator(same.dim, generator=g, device=DEVICE,
                                                 dtype=dtype)
        out = gpu_impl.speculative_sample_from_noise(twin, same, noise_u, noise_z, noise_a, stream)
        assert bool(out.accepted.all()) and int(out.trials.sum()) == 0
        assert torch.equal(out.samples, same.sample_from_noise(noise_u, noise_z))
        assert torch.isfinite(out.samples).all()


def test_extreme_inputs_match_reference_float64() -> None:
    """Far means and extreme scales in float64: same decisions and trials as the reference."""
    rng = np.random.default_rng([SEED, 16])
    d = 4
    q = cspd_ref.GaussianMixture([0.5, 0.5], [[0.0] * d, [1e4] * d], np.full((2, d), 1e-6))
    p = cspd_ref.GaussianMixture([0.4, 0.6], [[1.0] * d, [1e4 + 1.0] * d], np.full((2, d), 1e6))
    noise = token_noise(rng, 300, d, 8)
    ref = ref_speculative.speculative_sample_from_noise(q, p, noise.u_c, noise.z, noise.u_acc,
                                                        noise.ref_stream(), residual="batched")
    gp = gpu_impl.from_reference(p, DEVICE, torch.float64)
    gq = gpu_impl.from_reference(q, DEVICE, torch.float64)
    got = gpu_impl.speculative_sample_from_noise(
        gq, gp, t(noise.u_c, torch.float64), t(noise.z, torch.float64),
        t(noise.u_acc, torch.float64), noise.gpu_stream(torch.float64), residual="batched")
    compare_tokens(p, q, noise, ref, got, torch.float64, "batched", gpu_p=gp, gpu_q=gq)


# --------------------------------------------------------------------- diffusion chains
class LinearFns:
    """Twin of a ``LinearGaussianChain``'s maps with its rounding-error model."""

    def __init__(self, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> None:
        self.a, self.b, self.s = a, b, s

    def step_bounds(self, x: np.ndarray, t_step: int, e: float, u: float
                    ) -> tuple[float, float]:
        """Bounds on the errors of ``m(x, t)`` and ``s(x, t)`` when ``x`` is off by ``e``:
        ``|a| e`` plus rounding of ``a``, ``b`` and of ``a x + b``."""
        a, b = self.a[t_step - 1], self.b[t_step - 1]
        local_m = u * float((3 * np.abs(a * x) + 2 * np.abs(b)).max())
        return float(np.abs(a).max()) * e + local_m, 2 * u * float(np.max(self.s[t_step - 1]))


class NumpyTanhChainFns:
    """Twin mean/scale maps: ``m(x, t) = a_t x + W2 tanh(W1 x + b + c t / T)``,
    ``s(x, t) = s_t (1 + gamma tanh(v . x))`` (float64 NumPy), with a rounding-error model."""

    def __init__(self, rng: np.random.Generator, T: int, d: int, hidden: int, *,
                 gamma: float, base: float) -> None:
        self.T = T
        self.a = rng.uniform(0.5, 0.8, size=T)
        self.W1 = rng.standard_normal((hidden, d)) * 0.5 / math.sqrt(d)
        self.b = 0.3 * rng.standard_normal(hidden)
        self.c = rng.standard_normal(hidden)
        self.W2 = rng.standard_normal((d, hidden))
        # keep the maps' Lipschitz bound below 1 (state errors then do not grow with T)
        self.W2 *= 0.15 / (np.abs(self.W2).sum(1).max() * np.abs(self.W1).sum(1).max())
        self.v = rng.standard_normal(d) / d
        self.s = base * rng.uniform(0.5, 1.0, size=T)
        self.gamma = gamma

    def mean(self, x: np.ndarray, t_step: int) -> np.ndarray:
        h = np.tanh(x @ self.W1.T + self.b + self.c * t_step / self.T)
        return self.a[t_step - 1] * x + h @ self.W2.T

    def scale(self, x: np.ndarray, t_step: int) -> np.ndarray:
        return self.s[t_step - 1] * (1.0 + self.gamma * np.tanh(x @ self.v))[:, None]

    def step_bounds(self, x: np.ndarray, t_step: int, e: float, u: float
                    ) -> tuple[float, float]:
        """Bounds on the errors of ``m(x, t)``, ``s(x, t)`` when ``x`` is off by ``e`` (max
        norm): Lipschitz terms ``(|a| + || |W2| |W1| ||_inf) e`` and ``s_t gamma |v|_1 e``, plus
        forward rounding errors of the dot products (length d: ``(d + 3) u sum |W1||x|``, length
        H: ``(H + 3) u sum |W2||h|``), tanh, and the weights' own rounding."""
        d, hidden = self.W1.shape[1], self.W1.shape[0]
        frac = t_step / self.T
        mag_pre = np.abs(x) @ np.abs(self.W1).T + np.abs(self.b) + np.abs(self.c) * frac
        h = np.tanh(x @ self.W1.T + self.b + self.c * frac)
        dh = u * (d + 3) * mag_pre + 2 * u
        local_m = (u * (3 * np.abs(self.a[t_step - 1] * x)
                        + (hidden + 3) * (np.abs(h) @ np.abs(self.W2).T))
                   + dh @ np.abs(self.W2).T)
        lip_m = self.a[t_step - 1] + (np.abs(self.W2) @ np.abs(self.W1)).sum(1).max()
        s_t = self.s[t_step - 1]
        local_s = u * s_t * (4 + self.gamma * ((d + 3) * (np.abs(x) @ np.abs(self.v)) + 2))
        lip_s = s_t * self.gamma * np.abs(self.v).sum()
        return float(lip_m * e + local_m.max()), float(lip_s * e + local_s.max())


Fns = LinearFns | NumpyTanhChainFns


class TorchTanhMean(torch.nn.Module):
    """The torch twin of ``NumpyTanhChainFns.mean`` (an ``nn.Module``)."""

    def __init__(self, fns: NumpyTanhChainFns, dtype: torch.dtype) -> None:
        super().__init__()
        self.T = fns.T
        self.register_buffer("a", t(fns.a, dtype))
        self.l1 = torch.nn.Linear(fns.W1.shape[1], fns.W1.shape[0], dtype=dtype, device=DEVICE)
        self.l2 = torch.nn.Linear(fns.W2.shape[1], fns.W2.shape[0], bias=False, dtype=dtype,
                                  device=DEVICE)
        with torch.no_grad():
            self.l1.weight.copy_(t(fns.W1, dtype))
            self.l1.bias.copy_(t(fns.b, dtype))
            self.l2.weight.copy_(t(fns.W2, dtype))
        self.register_buffer("c", t(fns.c, dtype))

    def forward(self, x: torch.Tensor, t_step: int) -> torch.Tensor:
        h = torch.tanh(self.l1(x) + self.c * (t_step / self.T))
        return self.a[t_step - 1] * x + self.l2(h)


class TorchTanhScale(torch.nn.Module):
    def __init__(self, fns: NumpyTanhChainFns, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("s", t(fns.s, dtype))
        self.register_buffer("v", t(fns.v, dtype))
        self.gamma = fns.gamma

    def forward(self, x: torch.Tensor, t_step: int) -> torch.Tensor:
        return self.s[t_step - 1] * (1.0 + self.gamma * torch.tanh(x @ self.v))[:, None]


@dataclass
class ChainPair:
    ref_q: ref_diffusion.GaussianChain
    ref_p: ref_diffusion.GaussianChain
    gpu_q: gpu_impl.GaussianChain
    gpu_p: gpu_impl.GaussianChain
    fns_q: Fns
    fns_p: Fns


def make_chains(kind: str, rng: np.random.Generator, T: int, d: int, dtype: torch.dtype,
                *, equal_scales: bool) -> ChainPair:
    """Draft/target chains in both implementations with their error models."""
    if kind == "linear":
        a = rng.uniform(0.5, 0.95, size=(T, d))
        b_p = 0.3 * rng.standard_normal((T, d))
        b_q = b_p + 0.15 * rng.standard_normal((T, d))
        s_p = rng.uniform(0.3, 0.8, size=T)
        s_q = s_p if equal_scales else s_p * rng.uniform(0.8, 1.2, size=T)
        ref_p = ref_diffusion.LinearGaussianChain(a, b_p, s_p)
        ref_q = ref_diffusion.LinearGaussianChain(a * 0.97, b_q, s_q)
        return ChainPair(ref_q, ref_p,
                         gpu_impl.LinearGaussianChain.from_reference(ref_q, DEVICE, dtype),
                         gpu_impl.LinearGaussianChain.from_reference(ref_p, DEVICE, dtype),
                         LinearFns(ref_q.coefficients, ref_q.offsets, ref_q.step_scales),
                         LinearFns(ref_p.coefficients, ref_p.offsets, ref_p.step_scales))
    hidden = 32
    gamma = 0.0 if equal_scales else 0.2
    fp = NumpyTanhChainFns(rng, T, d, hidden, gamma=gamma, base=0.5)
    fq = NumpyTanhChainFns(rng, T, d, hidden, gamma=gamma, base=0.5)
    if equal_scales:
        fq.s = fp.s.copy()
    return ChainPair(ref_diffusion.GaussianChain(fq.mean, fq.scale, T, d),
                     ref_diffusion.GaussianChain(fp.mean, fp.scale, T, d),
                     gpu_impl.GaussianChain(TorchTanhMean(fq, dtype), TorchTanhScale(fq, dtype),
                                            T, d),
                     gpu_impl.GaussianChain(TorchTanhMean(fp, dtype), TorchTanhScale(fp, dtype),
                                            T, d),
                     fq, fp)


@dataclass
class TrajectoryBounds:
    """Error bounds along a reference trajectory: ``state[i]`` bounds the error of
    ``states[i]``; ``dm[i]``, ``ds[i]`` those of the step-``(T - i)`` mean and scale."""

    state: list[float]
    dm: list[float]
    ds: list[float]


def trajectory_bounds(fns: Fns, states: np.ndarray, eps: np.ndarray, u: float, T: int,
                      mean: callable, scale: callable) -> TrajectoryBounds:
    """Propagate ``e_{t-1} = dm + |eps| ds + 2u(|m| + |s eps|)`` from ``e_T = 0`` (the shared
    start is exact) along ``states`` ``(S + 1, N, d)`` with step noises ``eps`` ``(S, N, d)``."""
    e = [0.0]
    dms: list[float] = []
    dss: list[float] = []
    for i in range(eps.shape[0]):
        step = T - i
        dm, ds = fns.step_bounds(states[i], step, e[-1], u)
        m, s = mean(states[i], step), scale(states[i], step)
        e.append(float((dm + np.abs(eps[i]) * ds
                        + 2 * u * (np.abs(m) + np.abs(s * eps[i]))).max()))
        dms.append(dm)
        dss.append(ds)
    return TrajectoryBounds(e, dms, dss)


def lr_drift(x: np.ndarray, m_p: np.ndarray, s_p: np.ndarray, m_q: np.ndarray, s_q: np.ndarray,
             dx: float | np.ndarray, dm_p: float, ds_p: float, dm_q: float, ds_q: float,
             ) -> np.ndarray:
    """First-order bound on the change of ``log N(x; m_p, s_p) - log N(x; m_q, s_q)`` when its
    inputs move by the given amounts: ``sum_j`` of ``|d/dx| dx + |d/dm| dm + |d/ds| ds``."""
    z_p, z_q = (x - m_p) / s_p, (x - m_q) / s_q
    return (np.abs(z_q / s_q - z_p / s_p) * dx
            + np.abs(z_p) / s_p * dm_p + np.abs(z_p**2 - 1) / s_p * ds_p
            + np.abs(z_q) / s_q * dm_q + np.abs(z_q**2 - 1) / s_q * ds_q).sum(-1)


DIFFUSION_CASES = [("linear", True), ("linear", False), ("tanh-mlp", True), ("tanh-mlp", False)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("kind", "equal_scales"), DIFFUSION_CASES,
                         ids=[f"{k}-{'eq' if e else 'neq'}" for k, e in DIFFUSION_CASES])
def test_aligned_diffusion_matches_reference(kind: str, equal_scales: bool,
                                             dtype: torch.dtype) -> None:
    rng = np.random.default_rng([SEED, 21, int(equal_scales), len(kind)])
    T, d, n, m = 8, 4, 1000, 48
    c = make_chains(kind, rng, T, d, dtype, equal_scales=equal_scales)
    x_T = f32_normals((n, d), rng=rng)
    shared = f32_normals((T - 1, n, d), rng=rng)
    eps1 = f32_normals((n, d), rng=rng)
    u_acc = f32_uniforms((n,), rng=rng)
    noise = TokenNoise(np.zeros(n), eps1, u_acc, f32_uniforms((n, m), rng=rng),
                       f32_normals((n, m, d), rng=rng), f32_uniforms((n, m), rng=rng))
    ref = ref_diffusion_sampling.aligned_speculative_sample_from_noise(
        c.ref_q, c.ref_p, x_T, shared, eps1, u_acc, noise.ref_stream())
    got = gpu_impl.aligned_speculative_sample_from_noise(
        c.gpu_q, c.gpu_p, t(x_T, dtype), t(shared, dtype), t(eps1, dtype), t(u_acc, dtype),
        noise.gpu_stream(dtype))
    # the last-step Gaussians agree within the propagated bounds
    u = unit_roundoff(dtype)
    q_last, p_last = ref_diffusion_sampling.aligned_last_steps(c.ref_q, c.ref_p, x_T, shared)
    gq_last, gp_last = gpu_diffusion_sampling.aligned_last_steps(c.gpu_q, c.gpu_p,
                                                                 t(x_T, dtype), t(shared, dtype))
    bounds = {}
    for name, chain, fns in (("q", c.ref_q, c.fns_q), ("p", c.ref_p, c.fns_p)):
        states = chain.trajectory_from_noise(x_T, shared)
        tb = trajectory_bounds(fns, states, shared, u, T, chain.mean_fn, chain.scale_fn)
        bounds[name] = fns.step_bounds(states[-1], 1, tb.state[-1], u)
    for name, ref_d, got_d in (("q", q_last, gq_last), ("p", p_last, gp_last)):
        dm, ds = bounds[name]
        assert np.abs(host(got_d.mean) - ref_d.mean).max() <= dm
        assert np.abs(host(got_d.scale) - ref_d.scale).max() <= ds
    method = "reflection" if equal_scales else "batched"
    assert gpu_speculative.resolve_residual_method("auto", gq_last, gp_last) == method
    (dm_q, ds_q), (dm_p, ds_p) = bounds["q"], bounds["p"]
    x_ref = q_last.sample_from_noise(np.zeros(n), eps1)
    drift = lr_drift(x_ref, p_last.mean, p_last.scale, q_last.mean, q_last.scale,
                     dm_q + np.abs(eps1) * ds_q, dm_p, ds_p, dm_q, ds_q)
    # drift of the samples: accepted rows m_q + s_q eps_1; residual rows m_p + s_p z';
    # reflected rows also move with e = (m_p - m_q)/s / ||.||: ||de|| <= 4 sqrt(d) dm / ||gap||
    dmax = max(dm_p, dm_q, ds_p, ds_q)
    norm_w = np.linalg.norm(eps1, axis=-1, keepdims=True)
    gap = np.linalg.norm(p_last.mean - q_last.mean, axis=-1, keepdims=True)
    z_sample = np.abs(ref.samples - p_last.mean) / p_last.scale
    sample_drift = dmax * np.where(
        ref.accepted[:, None], 1 + np.abs(eps1),
        (1 + z_sample) if method == "batched" else
        3 + 2 * (np.abs(eps1) + norm_w) + 16 * math.sqrt(d) * p_last.scale * norm_w
        / np.maximum(gap, 1e-300))
    cmp = compare_tokens(p_last, q_last, noise, ref, got, dtype, method,
                         extra_lr_tol=drift, extra_sample_tol=sample_drift)
    assert cmp.skipped <= MAX_AMBIGUOUS_FRACTION * n


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["linear", "tanh-mlp"])
def test_joint_diffusion_matches_reference(kind: str, dtype: torch.dtype) -> None:
    rng = np.random.default_rng([SEED, 22, len(kind)])
    T, d, n, m = 5, 3, 600, 32
    c = make_chains(kind, rng, T, d, dtype, equal_scales=False)
    x_T = f32_normals((n, d), rng=rng)
    eps = f32_normals((T, n, d), rng=rng)
    u_acc = f32_uniforms((n,), rng=rng)
    r_u, r_z, r_acc = (f32_uniforms((n, m), rng=rng), f32_normals((n, m, (T + 1) * d), rng=rng),
                       f32_uniforms((n, m), rng=rng))
    ref = ref_diffusion_sampling.joint_speculative_sample_from_noise(
        c.ref_q, c.ref_p, x_T, eps, u_acc, ref_speculative.ResidualNoiseArrays(r_u, r_z, r_acc))
    got = gpu_impl.joint_speculative_sample_from_noise(
        c.gpu_q, c.gpu_p, t(x_T, dtype), t(eps, dtype), t(u_acc, dtype),
        gpu_impl.ResidualNoiseArrays(t(r_u, dtype), t(r_z, dtype), t(r_acc, dtype)))
    u = unit_roundoff(dtype)

    def lr_and_tol(follow_target: bool, x0: np.ndarray, e: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, float]:
        """Reference trajectory log-ratio, its tolerance, and the final state's bound."""
        chain, fns = (c.ref_p, c.fns_p) if follow_target else (c.ref_q, c.fns_q)
        other = c.fns_q if follow_target else c.fns_p
        states = chain.trajectory_from_noise(x0, e)
        tb = trajectory_bounds(fns, states, e, u, T, chain.mean_fn, chain.scale_fn)
        lr = np.zeros(states.shape[1])
        tol = np.zeros_like(lr)
        for i in range(T):
            step = T - i
            q_t = c.ref_q.transition(states[i], step)
            p_t = c.ref_p.transition(states[i], step)
            lr_i, tol_i = log_ratio_and_tol(p_t, q_t, states[i + 1], u)
            dm_o, ds_o = other.step_bounds(states[i], step, tb.state[i], u)
            dm_f, ds_f = tb.dm[i], tb.ds[i]
            (dm_p, ds_p, dm_q, ds_q) = ((dm_f, ds_f, dm_o, ds_o) if follow_target
                                        else (dm_o, ds_o, dm_f, ds_f))
            lr += lr_i
            tol += tol_i + lr_drift(states[i + 1], p_t.mean, p_t.scale, q_t.mean, q_t.scale,
                                    tb.state[i + 1], dm_p, ds_p, dm_q, ds_q)
        return lr, tol, tb.state[-1]

    lr_ref, tol, state_tol = lr_and_tol(False, x_T, eps)
    with np.errstate(divide="ignore"):
        ambiguous = np.abs(np.log(u_acc) - lr_ref) <= tol
    rejected = np.flatnonzero(~ref.accepted)
    if rejected.size:
        mm = int(ref.trials[rejected].max())
        flat = r_z[rejected, :mm].reshape(rejected.size * mm, T + 1, d)
        lr_y, tol_y, state_tol_y = lr_and_tol(True, flat[:, 0], flat[:, 1:].transpose(1, 0, 2))
        state_tol = max(state_tol, state_tol_y)
        examined = np.arange(mm)[None, :] < ref.trials[rejected][:, None]
        close = residual_test_ambiguous(r_acc[rejected, :mm], -lr_y.reshape(rejected.size, mm),
                                        tol_y.reshape(rejected.size, mm), u)
        ambiguous[rejected] |= (close & examined).any(1)
    keep = ~ambiguous
    assert ambiguous.mean() <= MAX_AMBIGUOUS_FRACTION
    assert 0 < ref.accepted.sum() < n
    np.testing.assert_array_equal(host(got.accepted)[keep], ref.accepted[keep])
    np.testing.assert_array_equal(host(got.trials)[keep], ref.trials[keep])
    err = np.abs(host(got.samples) - ref.samples)[keep]
    assert err.max() <= state_tol, err.max() / state_tol
    # the draft pass' log-ratio itself is within its tolerance
    _, lr_g, _ = gpu_diffusion_sampling.joint_draft_pass(c.gpu_q, c.gpu_p, t(x_T, dtype),
                                                         t(eps, dtype))
    assert (np.abs(host(lr_g) - lr_ref) <= tol).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_chain_sampling_matches_reference(dtype: torch.dtype) -> None:
    """GaussianChain trajectories, tokens, log-densities and log-ratios against the reference."""
    rng = np.random.default_rng([SEED, 23])
    T, d, n = 6, 5, 200
    c = make_chains("tanh-mlp", rng, T, d, dtype, equal_scales=False)
    x_T, eps = f32_normals((n, d), rng=rng), f32_normals((T, n, d), rng=rng)
    u = unit_roundoff(dtype)
    ref_states = c.ref_p.trajectory_from_noise(x_T, eps)
    tb = trajectory_bounds(c.fns_p, ref_states, eps, u, T, c.ref_p.mean_fn, c.ref_p.scale_fn)
    got_states = host(c.gpu_p.trajectory_from_noise(t(x_T, dtype), t(eps, dtype)))
    for i in range(T + 1):
        assert np.abs(got_states[i] - ref_states[i]).max() <= tb.state[i]
    got_x0 = host(c.gpu_p.sample_from_noise(t(x_T, dtype), t(eps, dtype)))
    assert np.abs(got_x0 - ref_states[-1]).max() <= tb.state[-1]
    # log-densities on states both sides see exactly (rounded to float32 values): summation
    # error plus the maps' local errors through the gradient
    states32 = ref_states.astype(np.float32).astype(np.float64)
    tol_lp = np.zeros(n)
    tol_lr = np.zeros(n)
    for i in range(T):
        step = T - i
        for chain, fns in ((c.ref_q, c.fns_q), (c.ref_p, c.fns_p)):
            law = chain.transition(states32[i], step)
            dm, ds = fns.step_bounds(states32[i], step, 0.0, u)
            z = (states32[i + 1] - law.mean) / law.scale
            mag = (0.5 * z * z + np.abs(np.log(law.scale)) + HALF_LOG_TWO_PI).sum(-1)
            X = np.abs(states32[i + 1]) + np.abs(law.mean)
            term = 2 * u * ((d + 4) * mag + 8 * (np.abs(z) * X / law.scale).sum(-1)) + (
                (np.abs(z) * dm + np.abs(z * z - 1) * ds) / law.scale).sum(-1)
            tol_lr += term
            if chain is c.ref_p:
                tol_lp += term
    ref_lp = c.ref_p.trajectory_log_prob(states32)
    got_lp = host(c.gpu_p.trajectory_log_prob(t(states32, dtype)))
    assert (np.abs(got_lp - ref_lp) <= tol_lp).all()
    ref_lr = ref_diffusion.trajectory_log_ratio(c.ref_q, c.ref_p, states32)
    got_lr = host(gpu_diffusion.trajectory_log_ratio(c.gpu_q, c.gpu_p, t(states32, dtype)))
    assert (np.abs(got_lr - ref_lr) <= tol_lr).all()


def test_linear_chain_marginal_matches_reference() -> None:
    rng = np.random.default_rng([SEED, 24])
    c = make_chains("linear", rng, 7, 3, torch.float64, equal_scales=True)
    ref_m, got_m = c.ref_p.marginal(), c.gpu_p.marginal()
    np.testing.assert_allclose(host(got_m.mean), ref_m.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(got_m.scale), ref_m.scale, rtol=1e-12)
