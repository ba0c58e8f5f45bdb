"""GPU check of gpu_impl: differential tests on the device, then a small benchmark
(docs/algorithms.md §7).

Run through ``scripts/gpu_check.sh`` (sets ``PYTHONPATH`` to the repository, no install needed).

* ``CSPD_TEST_DEVICE=cuda`` (the default): the tests ``tests/test_gpu_*.py`` (differential against
  cspd_ref on identical noise, sync-freedom incl. CUDA-graph capture, AR decoding, validation,
  distribution)
  run on CUDA; then tokens/s of ``speculative_sample`` (n = 65536, d = 16, float32) for K = 1
  equal scales (reflection residual) and K = 3 mixtures (batched residual), and the aligned
  diffusion sampler with T = 100 steps and an MLP head (d = 16, hidden 256), the denoising loop
  eager and captured in a CUDA graph (ms per step).
* ``CSPD_TEST_DEVICE=cpu``: the same steps, small (no CUDA graph).

Writes a Markdown summary to ``$OUT/gpu_check.md`` when ``OUT`` is set, else to
``reports/out/gpu_check.md``; prints it; exits non-zero on any failure.
"""

from __future__ import annotations

import copy
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cspd_ref  # noqa: E402
import gpu_impl  # noqa: E402
from gpu_impl import diffusion_sampling as gd  # noqa: E402
from gpu_impl.bench import median_ms, synchronize  # noqa: E402
from gpu_impl.testing import init_linear_layers_  # noqa: E402

TEST_FILES = ["tests/test_gpu_differential.py", "tests/test_gpu_sync_free.py",
              "tests/test_gpu_ar.py", "tests/test_gpu_validation.py",
              "tests/test_gpu_distribution.py"]


@dataclass
class Report:
    device: torch.device
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        self.add(f"**FAILED**: {what}")


def timed(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 2
          ) -> float:
    """Median wall time of ``fn`` in seconds (``gpu_impl.bench.median_ms``: the device is
    synchronised around each call)."""
    return median_ms(fn, device, warmup, reps) / 1e3


def run_tests(report: Report) -> None:
    env = dict(os.environ, CSPD_TEST_DEVICE=str(report.device), PYTHONPATH=str(ROOT) + (
        os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TEST_FILES]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    tail = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    summary = tail[-1] if tail else "(no output)"
    report.add(f"- pytest on `{report.device}` ({len(TEST_FILES)} files): `{summary}` "
               f"in {elapsed:.1f} s")
    skipped = [ln for ln in tail if ln.startswith("SKIPPED")]
    for ln in skipped:
        report.add(f"  - {ln}")
    if proc.returncode != 0:
        print(proc.stdout[-8000:], proc.stderr[-4000:], sep="\n", flush=True)
        failed = [ln for ln in tail if ln.startswith(("FAILED", "ERROR"))]
        for ln in failed[:20]:
            report.add(f"  - {ln}")
        report.fail(f"pytest exited with {proc.returncode}")


# --------------------------------------------------------------------- token benchmark
def token_pairs(d: int) -> dict[str, tuple[cspd_ref.GaussianMixture, cspd_ref.GaussianMixture]]:
    rng = np.random.default_rng(0)
    scale = np.exp(0.2 * rng.standard_normal(d))
    q1 = cspd_ref.GaussianMixture([1.0], np.zeros((1, d)), scale[None])
    p1 = cspd_ref.GaussianMixture([1.0], np.full((1, d), 0.8 / np.sqrt(d)) * scale, scale[None])
    p3 = cspd_ref.GaussianMixture(rng.dirichlet(np.full(3, 3.0)),
                                  0.5 * rng.standard_normal((3, d)) / np.sqrt(d) * 4,
                                  np.exp(0.1 * rng.standard_normal((3, d))))
    q3 = cspd_ref.GaussianMixture(rng.dirichlet(np.full(3, 3.0)),
                                  p3.means + 0.3 * rng.standard_normal((3, d)) / np.sqrt(d),
                                  p3.scales * np.exp(0.05 * rng.standard_normal((3, d))))
    return {"K=1, equal scales (reflection)": (q1, p1), "K=3 mixtures (batched)": (q3, p3)}


def bench_tokens(report: Report, n: int, d: int, reps: int) -> None:
    dev = report.device
    report.add("")
    report.add(f"### speculative_sample, n = {n}, d = {d}, float32")
    report.add("")
    report.add("| case | residual | accept rate | mean trials (rejected) | ms / call | tokens/s |")
    report.add("|---|---|---|---|---|---|")
    for name, (q_ref, p_ref) in token_pairs(d).items():
        q = gpu_impl.from_reference(q_ref, dev, torch.float32)
        p = gpu_impl.from_reference(p_ref, dev, torch.float32)
        method = gpu_impl.speculative.resolve_residual_method("auto", q, p)
        g = torch.Generator(device=dev).manual_seed(0)
        out = gpu_impl.speculative_sample(q, p, n, g)
        if not bool(torch.isfinite(out.samples).all()):
            report.fail(f"non-finite samples in {name}")
        acc = float(out.accepted.float().mean())
        rej = ~out.accepted
        mean_trials = float(out.trials[rej].float().mean()) if bool(rej.any()) else 0.0
        seconds = timed(lambda q=q, p=p, g=g: gpu_impl.speculative_sample(q, p, n, g), dev, reps)
        report.add(f"| {name} | {method} | {acc:.3f} | {mean_trials:.2f} | "
                   f"{seconds * 1e3:.2f} | {n / seconds:,.0f} |")


# --------------------------------------------------------------------- diffusion benchmark
class MLPHead(torch.nn.Module):
    """A MAR-style diffusion-head mean: ``x + MLP([x, t/T])`` (SiLU, two hidden layers)."""

    def __init__(self, dim: int, hidden: int, num_steps: int, seed: int) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim + 1, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, dim))
        init_linear_layers_(self.net, generator=torch.Generator().manual_seed(seed))

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        time_feature = torch.full_like(x[:, :1], t / self.num_steps)
        return 0.9 * x + 0.1 * self.net(torch.cat([x, time_feature], dim=1))


class ScheduleScale(torch.nn.Module):
    """``s_t``: a fixed noise schedule, shared by draft and target (reflection last step)."""

    def __init__(self, num_steps: int, device: torch.device) -> None:
        super().__init__()
        self.register_buffer("s", torch.linspace(0.05, 0.5, num_steps, device=device))

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.s[t - 1].expand(x.shape[1])


def bench_diffusion(report: Report, n: int, d: int, hidden: int, T: int, reps: int) -> None:
    dev = report.device
    scale = ScheduleScale(T, dev)
    target_head = MLPHead(d, hidden, T, 2).to(dev)
    draft_head = copy.deepcopy(target_head)          # a draft head close to the target's
    with torch.no_grad():
        gen = torch.Generator(device=dev).manual_seed(3)
        for param in draft_head.parameters():
            param.add_(0.03 * param.abs().mean() * torch.randn(
                param.shape, generator=gen, device=dev))
    q_chain = gpu_impl.GaussianChain(draft_head, scale, T, d)
    p_chain = gpu_impl.GaussianChain(target_head, scale, T, d)
    g = torch.Generator(device=dev).manual_seed(1)
    x_T = torch.randn(n, d, generator=g, device=dev)
    shared = torch.randn(T - 1, n, d, generator=g, device=dev)
    eps1 = torch.randn(n, d, generator=g, device=dev)
    u = torch.rand(n, generator=g, device=dev)

    def denoise() -> gd.LastSteps:
        return gd.aligned_denoise(q_chain, p_chain, x_T, shared)

    def full() -> gpu_impl.SpeculativeResult:
        return gpu_impl.aligned_speculative_sample_from_noise(
            q_chain, p_chain, x_T, shared, eps1, u,
            gpu_impl.ResidualNoiseGenerator(d, generator=g, device=dev))

    report.add("")
    report.add(f"### aligned diffusion sampler, T = {T}, MLP head d = {d}, hidden = {hidden}, "
               f"n = {n} tokens, float32")
    report.add("")
    report.add("| what | ms total | ms / step | tokens/s |")
    report.add("|---|---|---|---|")
    with torch.no_grad():
        out = full()
        if not bool(torch.isfinite(out.samples).all()):
            report.fail("non-finite diffusion samples")
        acc = float(out.accepted.float().mean())
        t_eager = timed(denoise, dev, reps)
        t_full = timed(full, dev, reps)
    report.add(f"| denoising loop, eager (draft + target, {T} steps each) | {t_eager * 1e3:.2f} "
               f"| {t_eager / T * 1e3:.3f} | {n / t_eager:,.0f} |")
    if dev.type == "cuda":
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.no_grad(), torch.cuda.stream(side):
                for _ in range(2):
                    denoise()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(graph):
                static = denoise()
            with torch.no_grad():
                eager = denoise()
            graph.replay()
            synchronize(dev)
            same = all(torch.equal(a, b) for a, b in zip(static, eager, strict=True))
            if not same:
                report.fail("CUDA-graph replay differs from eager denoising")
            t_graph = timed(graph.replay, dev, reps)
            report.add(f"| denoising loop, CUDA graph | {t_graph * 1e3:.2f} | "
                       f"{t_graph / T * 1e3:.3f} | {n / t_graph:,.0f} |")
            report.add(f"| (graph speed-up over eager) | {t_eager / t_graph:.2f}x | | |")
        except Exception as exc:  # report, do not hide
            traceback.print_exc()
            report.fail(f"CUDA-graph capture: {type(exc).__name__}: {exc}")
    else:
        report.add("| denoising loop, CUDA graph | n/a on CPU | | |")
    report.add(f"| full aligned sampler (loop + accept + residual), eager | {t_full * 1e3:.2f} | "
               f"{t_full / T * 1e3:.3f} | {n / t_full:,.0f} |")
    report.add("")
    report.add(f"acceptance rate of the aligned sampler: {acc:.3f}")


def main() -> int:
    name = os.environ.get("CSPD_TEST_DEVICE", "cuda")
    device = torch.device(name)
    report = Report(device)
    small = device.type != "cuda"
    report.add("# gpu_impl GPU check")
    report.add("")
    if device.type == "cuda" and not torch.cuda.is_available():
        report.fail("CSPD_TEST_DEVICE=cuda but torch.cuda.is_available() is False")
        return finish(report)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU mode)"
    report.add(f"- device: `{device}`; GPU: **{gpu}**")
    report.add(f"- torch {torch.__version__}, numpy {np.__version__}, Python "
               f"{platform.python_version()}, {platform.machine()}; "
               f"float32 matmul precision: {torch.get_float32_matmul_precision()}; "
               f"CPU threads: {torch.get_num_threads()}")
    report.add(f"- mode: {'small (CPU)' if small else 'full'}")
    started = time.perf_counter()
    run_tests(report)
    try:
        if small:
            bench_tokens(report, n=4096, d=16, reps=3)
            bench_diffusion(report, n=256, d=16, hidden=64, T=10, reps=3)
        else:
            bench_tokens(report, n=65536, d=16, reps=20)
            bench_diffusion(report, n=4096, d=16, hidden=256, T=100, reps=10)
    except Exception as exc:
        traceback.print_exc()
        report.fail(f"benchmark: {type(exc).__name__}: {exc}")
    report.add("")
    report.add(f"total wall time: {time.perf_counter() - started:.1f} s")
    return finish(report)


def finish(report: Report) -> int:
    report.add("")
    report.add("result: " + ("PASS" if not report.failures else
                             f"FAIL ({len(report.failures)} failure(s))"))
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "reports" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gpu_check.md"
    path.write_text("\n".join(report.lines) + "\n")
    print(f"\nwrote {path}", flush=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
