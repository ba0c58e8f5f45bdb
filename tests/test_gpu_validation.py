"""Bad input to gpu_impl raises ValueError naming the argument (docs/contract.md §4).

Every case below is one public call with one bad argument; the error message must start with
that argument's name, as in ``cspd_ref``. Runs on ``CSPD_TEST_DEVICE`` (cpu by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import cspd_ref
import gpu_impl
from cspd_ref.cases import demo_case
from gpu_impl import speculative as gs
from gpu_impl.testing import device_under_test

DEV = device_under_test()


def gen() -> torch.Generator:
    """An explicit generator on the device under test (randomness is never global)."""
    return torch.Generator(device=DEV).manual_seed(0)
F32 = torch.float32


def ten(values: Any, dtype: torch.dtype = F32) -> torch.Tensor:
    return torch.as_tensor(values, dtype=dtype, device=DEV)


def mix(**over: Any) -> gpu_impl.GaussianMixture:
    args = {"weights": ten([0.3, 0.7]), "means": ten([[0.0, 1.0], [2.0, -1.0]]),
            "scales": ten([[1.0, 0.5], [0.7, 2.0]])}
    args.update(over)
    return gpu_impl.GaussianMixture(args["weights"], args["means"], args["scales"],
                                    validate_args=True)


Q = mix()
P = mix(weights=ten([0.6, 0.4]), means=ten([[0.5, 1.0], [1.0, 0.0]]))
G1 = gpu_impl.DiagGaussian(ten([0.0, 0.0]), ten([1.0, 1.0]))
G2 = gpu_impl.DiagGaussian(ten([1.0, 0.0]), ten([1.0, 1.0]))
N = 5
U = ten([0.1, 0.2, 0.3, 0.4, 0.5])
Z = ten(np.zeros((N, 2)))


def stream(m: int = 4, d: int = 2, n: int = N) -> gpu_impl.ResidualNoiseArrays:
    return gpu_impl.ResidualNoiseArrays(ten(np.full((n, m), 0.5)), ten(np.zeros((n, m, d))),
                                        ten(np.full((n, m), 0.5)))


def spec(draft: Any = Q, target: Any = P, u_c: Any = U, z: Any = Z, u_a: Any = U,
         noise: Any = None, default_noise: bool = True, **kw: Any) -> Any:
    noise = stream() if noise is None and default_noise else noise
    return gpu_impl.speculative_sample_from_noise(draft, target, u_c, z, u_a, noise, **kw)


def linear_chain(T_steps: int = 3, d: int = 2, **over: Any) -> gpu_impl.LinearGaussianChain:
    args = {"coefficients": ten(np.full(T_steps, 0.9)), "offsets": ten(np.zeros((T_steps, d))),
            "step_scales": ten(np.full(T_steps, 0.5))}
    args.update(over)
    return gpu_impl.LinearGaussianChain(args["coefficients"], args["offsets"],
                                        args["step_scales"])


def nan_mean(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.where(torch.tensor(t == 2, device=x.device), torch.nan, 0.0) * x


def zero_scale(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.zeros_like(x) if t == 1 else torch.ones_like(x)


def ones(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.ones_like(x)


CHAIN = linear_chain()
X_T = ten(np.zeros((N, 2)))
EPS = ten(np.zeros((3, N, 2)))


class NotACase:
    draft = None


BAD_CALLS: list[tuple[str, str, Callable[[], Any]]] = [
    # ---- GaussianMixture / DiagGaussian
    ("weights-nan", "weights", lambda: mix(weights=ten([math.nan, 0.7]))),
    ("means-inf", "means", lambda: mix(means=ten([[math.inf, 1.0], [2.0, -1.0]]))),
    ("scales-nan", "scales", lambda: mix(scales=ten([[math.nan, 0.5], [0.7, 2.0]]))),
    ("scales-zero", "scales", lambda: mix(scales=ten([[0.0, 0.5], [0.7, 2.0]]))),
    ("scales-negative", "scales", lambda: mix(scales=ten([[-1.0, 0.5], [0.7, 2.0]]))),
    ("weights-negative", "weights", lambda: mix(weights=ten([-0.3, 1.3]))),
    ("weights-sum", "weights", lambda: mix(weights=ten([0.3, 0.71]))),
    ("weights-sum-f64", "weights", lambda: gpu_impl.GaussianMixture(
        ten([0.3, 0.7 + 1e-8], torch.float64), ten([[0.0], [1.0]], torch.float64),
        ten([[1.0], [1.0]], torch.float64))),
    ("means-shape", "means", lambda: mix(means=ten([[0.0, 1.0]]))),
    ("scales-shape", "scales", lambda: mix(scales=ten([[1.0], [0.7]]))),
    ("weights-bool", "weights", lambda: mix(weights=torch.tensor([True, False], device=DEV))),
    ("means-complex", "means", lambda: mix(means=torch.zeros(2, 2, dtype=torch.complex64,
                                                            device=DEV))),
    ("scales-dtype", "scales", lambda: mix(scales=ten([[1.0, 0.5], [0.7, 2.0]], torch.float64))),
    ("means-d0", "means", lambda: mix(means=ten(np.zeros((2, 0))), scales=ten(np.zeros((2, 0))))),
    ("weights-k0", "weights", lambda: mix(weights=ten(np.zeros(0)), means=ten(np.zeros((0, 2))),
                                          scales=ten(np.zeros((0, 2))))),
    ("means-string", "means", lambda: gpu_impl.GaussianMixture([1.0], [["a"]], [[1.0]])),
    ("diag-mean-nan", "mean", lambda: gpu_impl.DiagGaussian(ten([math.nan]), ten([1.0]))),
    ("diag-scale-zero", "scale", lambda: gpu_impl.DiagGaussian(ten([0.0]), ten([0.0]))),
    ("diag-scale-shape", "scale", lambda: gpu_impl.DiagGaussian(ten([0.0, 1.0]), ten([1.0]))),
    ("diag-scale-dtype", "scale", lambda: gpu_impl.DiagGaussian(ten([0.0]),
                                                                ten([1.0], torch.float64))),
    ("log-prob-dim", "value", lambda: Q.log_prob(ten(np.zeros((3, 3))))),
    ("log-prob-nan", "value", lambda: Q.log_prob(ten([[math.nan, 0.0]]))),
    ("log-prob-list", "value", lambda: Q.log_prob([[0.0, 0.0]])),
    ("log-prob-int", "value", lambda: Q.log_prob(torch.zeros(1, 2, dtype=torch.int64,
                                                             device=DEV))),
    ("noise-uniform", "component_uniforms", lambda: Q.sample_from_noise(ten([1.0]),
                                                                        ten([[0.0, 0.0]]))),
    ("noise-normals-shape", "normals", lambda: Q.sample_from_noise(ten([0.5]), ten([[0.0]]))),
    ("noise-normals-nan", "normals", lambda: Q.sample_from_noise(ten([0.5]),
                                                                 ten([[math.nan, 0.0]]))),
    ("from-ref-type", "mixture", lambda: gpu_impl.from_reference(object())),
    ("from-ref-dtype", "dtype", lambda: gpu_impl.from_reference(demo_case().target,
                                                                dtype=torch.int32)),
    # ---- speculative sampling
    ("spec-draft-ref", "draft", lambda: spec(draft=demo_case().draft)),
    ("spec-target-type", "target", lambda: spec(target="p")),
    ("spec-target-dim", "target", lambda: spec(target=gpu_impl.DiagGaussian(ten([0.0]),
                                                                            ten([1.0])))),
    ("spec-target-dtype", "target", lambda: spec(target=P.to(dtype=torch.float64))),
    ("spec-residual", "residual", lambda: spec(residual="fallback")),
    ("spec-reflection-unequal", "residual", lambda: spec(residual="reflection")),
    ("spec-u-range", "draft_component_uniforms", lambda: spec(u_c=U + 1.0)),
    ("spec-u-negative", "draft_component_uniforms", lambda: spec(u_c=U - 1.0)),
    ("spec-u-ndim", "draft_component_uniforms", lambda: spec(u_c=U[None])),
    ("spec-accept-range", "accept_uniforms", lambda: spec(u_a=U * 3)),
    ("spec-accept-shape", "accept_uniforms", lambda: spec(u_a=U[:3])),
    ("spec-accept-nan", "accept_uniforms", lambda: spec(u_a=U * math.nan)),
    ("spec-normals-shape", "draft_normals", lambda: spec(z=Z[:, :1])),
    ("spec-normals-inf", "draft_normals", lambda: spec(z=Z + math.inf)),
    ("spec-normals-bool", "draft_normals", lambda: spec(z=Z > 0)),
    ("spec-noise-none", "residual_noise", lambda: spec(default_noise=False)),
    ("spec-noise-type", "residual_noise", lambda: spec(noise=np.zeros(3))),
    ("spec-max-trials", "max_trials", lambda: spec(max_trials=0)),
    ("spec-batch", "draft", lambda: spec(draft=Q.expand((3,)))),
    ("spec-batch-2d", "target", lambda: spec(target=P.expand((5, 1)))),
    ("sample-n", "n", lambda: gpu_impl.speculative_sample(Q, P, -1, gen())),
    ("sample-n-float", "n", lambda: gpu_impl.speculative_sample(Q, P, 2.0, gen())),
    ("sample-generator", "generator", lambda: gpu_impl.speculative_sample(
        Q, P, 3, np.random.default_rng(0))),
    ("sample-generator-none", "generator", lambda: gpu_impl.speculative_sample(Q, P, 3, None)),
    ("sample-residual", "residual", lambda: gpu_impl.speculative_sample(Q, P, 3, gen(),
                                                                        residual="none")),
    ("noise-arrays-uniform", "component_uniforms", lambda: gpu_impl.ResidualNoiseArrays(
        ten(np.full((2, 3), 1.0)), ten(np.zeros((2, 3, 1))), ten(np.zeros((2, 3))))),
    ("noise-arrays-normals", "normals", lambda: gpu_impl.ResidualNoiseArrays(
        ten(np.zeros((2, 3))), ten(np.zeros((2, 2, 1))), ten(np.zeros((2, 3))))),
    ("noise-arrays-accept", "accept_uniforms", lambda: gpu_impl.ResidualNoiseArrays(
        ten(np.zeros((2, 3))), ten(np.zeros((2, 3, 1))), ten(np.zeros((2, 4))))),
    ("noise-stream-dim", "residual_noise", lambda: spec(G1.expand(()), P,
                                                        noise=stream(d=3))),
    ("noise-generator-dim", "dim",
     lambda: gpu_impl.ResidualNoiseGenerator(0, generator=gen(), device=DEV)),
    # ---- diffusion
    ("chain-mean-fn", "mean_fn", lambda: gpu_impl.GaussianChain(3, ones, 2, 2)),
    ("chain-scale-fn", "scale_fn", lambda: gpu_impl.GaussianChain(ones, None, 2, 2)),
    ("chain-steps", "num_steps", lambda: gpu_impl.GaussianChain(ones, ones, 0, 2)),
    ("chain-dim", "dim", lambda: gpu_impl.GaussianChain(ones, ones, 2, 0)),
    ("chain-temperature", "temperature", lambda: gpu_impl.GaussianChain(ones, ones, 2, 2, 0.0)),
    ("chain-temperature-nan", "temperature", lambda: gpu_impl.GaussianChain(ones, ones, 2, 2,
                                                                            math.nan)),
    ("chain-dtype", "dtype", lambda: gpu_impl.GaussianChain(ones, ones, 2, 2, dtype=torch.int8)),
    ("linear-scales", "step_scales", lambda: linear_chain(step_scales=ten([0.5, -0.5, 0.5]))),
    ("linear-coeff-shape", "coefficients", lambda: linear_chain(coefficients=ten([0.9, 0.9]))),
    ("linear-offsets-nan", "offsets", lambda: linear_chain(offsets=ten(np.full((3, 2),
                                                                             math.nan)))),
    ("chain-x_T-shape", "x_T", lambda: CHAIN.sample_from_noise(ten(np.zeros((N, 3))), EPS)),
    ("chain-eps-steps", "eps", lambda: CHAIN.sample_from_noise(X_T, EPS[:2])),
    ("chain-mean-nan", "mean_fn", lambda: gpu_impl.GaussianChain(nan_mean, ones, 3, 2)
     .sample_from_noise(X_T + 1, EPS)),
    ("chain-scale-zero", "scale_fn", lambda: gpu_impl.GaussianChain(ones, zero_scale, 3, 2)
     .sample_from_noise(X_T, EPS)),
    ("aligned-type", "draft_chain", lambda: gpu_impl.aligned_speculative_sample(
        "chain", CHAIN, 4, generator=gen())),
    ("aligned-steps", "target_chain", lambda: gpu_impl.aligned_speculative_sample(
        CHAIN, linear_chain(T_steps=4), 4, generator=gen())),
    ("aligned-dim", "target_chain", lambda: gpu_impl.aligned_speculative_sample(
        CHAIN, linear_chain(d=3), 4, generator=gen())),
    ("aligned-shared-eps", "shared_eps", lambda: gpu_impl.aligned_speculative_sample_from_noise(
        CHAIN, CHAIN, X_T, EPS, Z, U, stream())),
    ("aligned-scale-fn", "target_chain.scale_fn",
     lambda: gpu_impl.aligned_speculative_sample_from_noise(
         CHAIN, gpu_impl.GaussianChain(ones, zero_scale, 3, 2), X_T, EPS[:2], Z, U, stream())),
    ("aligned-n", "n",
     lambda: gpu_impl.aligned_speculative_sample(CHAIN, CHAIN, -2, generator=gen())),
    ("joint-residual", "residual", lambda: gpu_impl.joint_speculative_sample(
        CHAIN, CHAIN, 4, generator=gen(), residual="reflection")),
    ("joint-eps", "draft_eps", lambda: gpu_impl.joint_speculative_sample_from_noise(
        CHAIN, CHAIN, X_T, EPS[:1], U, stream())),
    ("joint-accept", "accept_uniforms", lambda: gpu_impl.joint_speculative_sample_from_noise(
        CHAIN, CHAIN, X_T, EPS, U + 2, stream())),
    ("joint-draft-mean", "draft_chain.mean_fn",
     lambda: gpu_impl.joint_speculative_sample_from_noise(
         gpu_impl.GaussianChain(nan_mean, ones, 3, 2), CHAIN, X_T + 1, EPS, U, stream())),
    ("chain-trajectory-scale", "scale_fn", lambda: gpu_impl.GaussianChain(ones, zero_scale, 3, 2)
     .trajectory_from_noise(X_T, EPS)),
    ("joint-noise", "residual_noise", lambda: gpu_impl.joint_speculative_sample_from_noise(
        CHAIN, CHAIN, X_T, EPS, U, None)),
    ("joint-noise-size", "residual_noise", lambda: gpu_impl.joint_speculative_sample_from_noise(
        CHAIN, linear_chain(offsets=ten(np.ones((3, 2)))), X_T, EPS, ten(np.full(N, 0.999)),
        stream(d=2))),
    # ---- as_sampler
    ("sampler-residual", "residual", lambda: gpu_impl.as_sampler(residual="maybe")),
    ("sampler-dtype", "dtype", lambda: gpu_impl.as_sampler(dtype=torch.int64)),
    ("sampler-dtype-str", "dtype", lambda: gpu_impl.as_sampler(dtype="float32")),
    ("sampler-device", "device", lambda: gpu_impl.as_sampler(device="nonsense")),
    ("sampler-max-trials", "max_trials", lambda: gpu_impl.as_sampler(max_trials=0)),
    ("sampler-case", "case", lambda: gpu_impl.as_sampler()(NotACase(), 3, 0)),
    ("sampler-n", "n", lambda: gpu_impl.as_sampler()(demo_case(), -3, 0)),
    ("sampler-seed", "seed", lambda: gpu_impl.as_sampler()(demo_case(), 3, -1)),
    ("sampler-seed-float", "seed", lambda: gpu_impl.as_sampler()(demo_case(), 3, 0.5)),
]


@pytest.mark.parametrize(("name", "argument", "call"), BAD_CALLS,
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_value_error_naming_argument(name: str, argument: str,
                                                      call: Callable[[], Any]) -> None:
    with pytest.raises(ValueError) as exc:
        call()
    message = str(exc.value)
    assert message.startswith(f"{argument}:"), f"{name}: message {message!r}"


def test_valid_inputs_around_the_edges_are_accepted() -> None:
    """Tolerances: float32 weights cast from valid float64 ones pass; integer parameters are
    cast; uniforms exactly 0 are valid; a zero weight is valid and never chosen."""
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(7))
    ref = cspd_ref.GaussianMixture(w, rng.standard_normal((7, 3)), np.ones((7, 3)))
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        g = gpu_impl.from_reference(ref, DEV, dtype)
        assert g.dtype == dtype and g.log_prob(ten(np.zeros((2, 3)), dtype)).dtype == (
            torch.float64 if dtype == torch.float64 else torch.float32)
    ints = gpu_impl.GaussianMixture([1], [[0, 1]], [[1, 2]])
    assert ints.means.dtype == torch.get_default_dtype()
    zero_w = gpu_impl.GaussianMixture(ten([0.5, 0.0, 0.5]), ten(np.arange(3.0)[:, None]),
                                      ten(np.ones((3, 1))))
    u = torch.linspace(0, 1, 1001, device=DEV)[:-1]
    assert not (zero_w.component_index_from_uniforms(u) == 1).any()
    out = spec(u_c=U * 0, u_a=U * 0)
    assert bool(out.accepted.all())


def test_reference_rejects_what_gpu_rejects() -> None:
    """Spot check that the two implementations agree on what is invalid."""
    with pytest.raises(ValueError, match="^weights:"):
        cspd_ref.GaussianMixture([0.3, 0.71], [[0.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="^scales:"):
        cspd_ref.GaussianMixture([1.0], [[0.0]], [[0.0]])


def test_generator_device_mismatch_is_refused() -> None:
    if DEV.type != "cuda":
        g = torch.Generator(device="cpu")
        q = gpu_impl.DiagGaussian(ten([0.0]), ten([1.0]))
        assert gs.speculative_sample(q, q, 3, g).samples.shape == (3, 1)
        pytest.skip("device mismatch needs a second device type (CUDA)")
    with pytest.raises(ValueError, match="^generator:"):
        gpu_impl.speculative_sample(Q, P, 3, torch.Generator(device="cpu"))
    with pytest.raises(ValueError, match="^draft_normals:"):
        spec(z=Z.cpu())
