"""The denoising loop of gpu_impl.diffusion_sampling runs without host synchronisation
(docs/algorithms.md §7).

What is checked, and where:

* everywhere (CPU included): the loops ``aligned_denoise`` and ``joint_draft_pass`` run under
  ``FakeTensorMode``, where every operation that needs a tensor's *value* on the host raises —
  ``.item()`` / ``bool(tensor)`` / Python branching on a tensor (``aten._local_scalar_dense``),
  boolean-mask indexing and ``nonzero`` (data-dependent output shapes). A control shows that the
  same harness does catch each of these when a step function contains one. (A device-to-host
  copy such as ``.cpu()`` is not visible on CPU; the CUDA checks below cover it.)
* everywhere: ``torch.compile(fullgraph=True, backend="eager")`` traces the whole loop as one
  graph (Dynamo refuses graph breaks, e.g. data-dependent branching) and reproduces the eager
  result. ``backend="eager"`` skips code generation, so this is quick on a CPU.
* CUDA only (``CSPD_TEST_DEVICE=cuda``): the loop is captured in a CUDA graph and replayed on new
  inputs, matching eager execution, and it runs under ``torch.cuda.set_sync_debug_mode("error")``
  (which raises on synchronising CUDA calls, device-to-host copies included). Skipped, saying so,
  when CUDA is not the device under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import gpu_impl
from gpu_impl import diffusion_sampling as gd
from gpu_impl.testing import device_under_test, init_linear_layers_

DEVICE = device_under_test()
T_STEPS, DIM, N = 6, 4, 32


class TimeMLP(torch.nn.Module):
    """A small MAR-style head: ``x + MLP([x, t/T])`` (tanh hidden layer)."""

    def __init__(self, dim: int, hidden: int, num_steps: int, seed: int) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.net = torch.nn.Sequential(torch.nn.Linear(dim + 1, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, dim))
        init_linear_layers_(self.net, generator=torch.Generator().manual_seed(seed))

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        time = torch.full_like(x[:, :1], t / self.num_steps)
        return 0.8 * x + 0.1 * self.net(torch.cat([x, time], dim=1))


class XScale(torch.nn.Module):
    """An x-dependent positive scale ``s (1 + 0.2 tanh(mean x))``."""

    def __init__(self, base: float) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.base * (1 + 0.2 * torch.tanh(x.mean(dim=1, keepdim=True)))


def chains(kind: str) -> tuple[gpu_impl.GaussianChain, gpu_impl.GaussianChain]:
    if kind == "linear":
        g = torch.Generator().manual_seed(0)
        a = 0.9 * torch.ones(T_STEPS, DIM)
        b = 0.1 * torch.randn(T_STEPS, DIM, generator=g)
        s = 0.5 * torch.ones(T_STEPS)
        return (gpu_impl.LinearGaussianChain(a, b + 0.1, s, device=DEVICE),
                gpu_impl.LinearGaussianChain(a, b, s, device=DEVICE))
    q = gpu_impl.GaussianChain(TimeMLP(DIM, 16, T_STEPS, 1).to(DEVICE), XScale(0.5), T_STEPS, DIM)
    p = gpu_impl.GaussianChain(TimeMLP(DIM, 16, T_STEPS, 2).to(DEVICE), XScale(0.6), T_STEPS, DIM)
    return q, p


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    x_T = torch.randn(N, DIM, generator=g, device=DEVICE)
    eps = torch.randn(T_STEPS, N, DIM, generator=g, device=DEVICE)
    return x_T, eps


def aligned_loop(q: gpu_impl.GaussianChain, p: gpu_impl.GaussianChain
                 ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
    def run(x_T: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(gd.aligned_denoise(q, p, x_T, eps[:-1]))
    return run


def joint_loop(q: gpu_impl.GaussianChain, p: gpu_impl.GaussianChain
               ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
    def run(x_T: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return gd.joint_draft_pass(q, p, x_T, eps)
    return run


def chain_loop(q: gpu_impl.GaussianChain, p: gpu_impl.GaussianChain
               ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
    def run(x_T: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return gd.joint_target_pass(q, p, x_T, eps)
    return run


LOOPS = {"aligned_denoise": aligned_loop, "joint_draft_pass": joint_loop,
         "residual_trajectory": chain_loop}


def run_fake(fn: Callable[..., Any], *tensors: torch.Tensor) -> Any:
    """Run ``fn`` on fake copies of ``tensors``: any value-dependent host operation raises."""
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fakes = [mode.from_tensor(x) for x in tensors]
        return fn(*fakes)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_loop_has_no_value_dependent_host_operation(loop: str, kind: str) -> None:
    q, p = chains(kind)
    x_T, eps = inputs()
    out = run_fake(LOOPS[loop](q, p), x_T, eps)
    assert out[0].shape == (N, DIM)


def item_mean(x: torch.Tensor, t: int) -> torch.Tensor:
    return x * x.abs().max().item()


def branching_mean(x: torch.Tensor, t: int) -> torch.Tensor:
    if (x > 0).any():
        return x
    return -x


def masked_mean(x: torch.Tensor, t: int) -> torch.Tensor:
    return x + 0.0 * x[x > 1].sum()          # boolean-mask read: data-dependent shape


def nonzero_scale(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.ones_like(x) * (1 + torch.nonzero(x > 0).shape[0] * 0)


def ones(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.ones_like(x)


def identity(x: torch.Tensor, t: int) -> torch.Tensor:
    return x


@pytest.mark.parametrize(("mean_fn", "scale_fn"), [(item_mean, ones), (branching_mean, ones),
                                                   (masked_mean, ones), (identity, nonzero_scale)],
                         ids=["item", "branching", "boolean-mask", "nonzero"])
def test_harness_catches_synchronising_step_functions(mean_fn: Any, scale_fn: Any) -> None:
    """Control: the same harness raises when a step function reads tensor values on the host."""
    bad = gpu_impl.GaussianChain(mean_fn, scale_fn, T_STEPS, DIM)
    _, p = chains("linear")
    x_T, eps = inputs()
    with pytest.raises(Exception) as exc:
        run_fake(aligned_loop(bad, p), x_T, eps)
    assert "DataDependent" in type(exc.value).__name__ or "DynamicOutputShape" in type(
        exc.value).__name__


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_loop_compiles_as_one_graph(kind: str) -> None:
    """``torch.compile(fullgraph=True)`` (Dynamo tracing, eager backend) of the aligned loop and
    the joint draft pass: no graph break, same values as eager."""
    import torch._dynamo

    torch._dynamo.reset()
    q, p = chains(kind)
    x_T, eps = inputs(1)
    for make in (aligned_loop, joint_loop):
        fn = make(q, p)
        compiled = torch.compile(fn, fullgraph=True, backend="eager", dynamic=False)
        with torch.no_grad():
            want = fn(x_T, eps)
            got = compiled(x_T, eps)
        for a, b in zip(want, got, strict=True):
            assert torch.equal(a, b)


def test_compile_refuses_data_dependent_branching() -> None:
    """Control for the compile check."""
    import torch._dynamo

    torch._dynamo.reset()
    bad = gpu_impl.GaussianChain(branching_mean, ones, T_STEPS, DIM)
    _, p = chains("linear")
    compiled = torch.compile(aligned_loop(bad, p), fullgraph=True, backend="eager")
    with pytest.raises(Exception):  # noqa: B017  (Dynamo's Unsupported / UserError)
        compiled(*inputs())


cuda_only = pytest.mark.skipif(DEVICE.type != "cuda",
                               reason="CUDA-graph capture and sync debug mode need "
                                      "CSPD_TEST_DEVICE=cuda with a GPU")


@cuda_only
@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_loop_captures_in_cuda_graph(kind: str) -> None:
    q, p = chains(kind)
    static_x, static_eps = inputs(2)
    fn = aligned_loop(q, p)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(2):
            fn(static_x, static_eps)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = fn(static_x, static_eps)
    new_x, new_eps = inputs(3)
    static_x.copy_(new_x)
    static_eps.copy_(new_eps)
    graph.replay()
    torch.cuda.synchronize()
    with torch.no_grad():
        want = fn(new_x, new_eps)
    for a, b in zip(want, static_out, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@cuda_only
@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_loop_runs_under_sync_debug_mode_error(kind: str) -> None:
    q, p = chains(kind)
    x_T, eps = inputs(4)
    for make in (aligned_loop, joint_loop):
        fn = make(q, p)
        with torch.no_grad():
            fn(x_T, eps)                         # warm-up (lazy initialisation may sync)
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                fn(x_T, eps)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
