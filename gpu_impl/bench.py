"""Sampler benchmark: ``python -m gpu_impl.bench [--device cuda] [--sizes ...]``.

Diagonal-Gaussian tokens with one draft/target pair per token (batch shape ``(n,)``, K = 1, as
in a MAR diffusion head, where every token has its own mean and scale), d = 16 by default,
float32, at two total-variation distances (about 0.16 and 0.008) and two scale regimes:

* **equal scales** — the reflection residual (one pass, no proposals);
* **unequal scales** (same means, draft scales ``r`` times the target's, ``r`` set by the TV) —
  the batched first-success residual.

Each configuration is timed for:

* ``gpu_impl`` — ``gpu_impl.speculative_sample`` (eager PyTorch, log space, exact);
* ``naive`` — a straightforward PyTorch sampler as published code writes it: densities (not
  log-densities) and a residual loop over the whole batch until every row succeeds. It is exact
  while the densities do not underflow, and it is here only so the ratio is visible;
* ``draft only`` — drawing the draft samples alone (``mean + scale * randn``), the floor of any
  speculative sampler;
* ``fused step`` (equal scales) — ``gpu_impl.fused.speculative_reflection_step`` on noise drawn
  beforehand, eager or (``--compile``) compiled with ``torch.compile``.

Timings are medians of ``--repeats`` runs after ``--warmup`` runs, with the device synchronised
around each run. The bandwidth bound of one call is the time to read ``mean_q, scale_q, mean_p,
scale_p, x`` and write the output once (``6 n d`` values) at the copy bandwidth measured in the
same run (``torch.Tensor.copy_`` of a 256 MiB buffer, counting its read and its write). The
figures go to ``BENCHMARKS.md``; nothing here is a test (``tests/test_bench.py`` runs a tiny
size so the code cannot rot).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch

from gpu_impl.distributions import GaussianMixture
from gpu_impl.speculative import speculative_sample

DEFAULT_SIZES = (16_384, 262_144, 4_194_304)
TARGET_TVS = (0.16, 0.008)
COPY_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Timing:
    """One benchmark row: the median time of a sampler on one configuration."""

    device: str
    sampler: str
    scales: str
    tv: float
    n: int
    dim: int
    median_ms: float
    bound_ms: float
    gb_per_s: float

    @property
    def ratio_to_bound(self) -> float:
        """Median time divided by the bandwidth bound."""
        return self.median_ms / self.bound_ms


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(run: Callable[[], object], device: torch.device, warmup: int,
              repeats: int) -> float:
    """Median wall time of ``run()`` in milliseconds, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        run()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def copy_bandwidth(device: torch.device, warmup: int, repeats: int) -> float:
    """Bytes per second of ``dst.copy_(src)`` on ``device`` (read + write counted)."""
    src = torch.empty(COPY_BYTES // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, warmup, repeats)
    return 2 * COPY_BYTES / (ms / 1e3)


def equal_scale_shift(tv: float) -> float:
    """The mean shift (in scale units) between two equal-scale Gaussians at total variation
    ``tv``: ``TV = 2 Phi(delta / 2) - 1`` (docs/algorithms.md §6)."""
    from scipy.stats import norm

    return 2.0 * float(norm.ppf((1.0 + tv) / 2.0))


def unequal_scale_ratio(tv: float, dim: int) -> float:
    """The draft/target scale ratio ``r > 1`` giving total variation ``tv`` between N(0, I)
    and N(0, r^2 I) in dimension ``dim``, found by bisection on the float64 reference's TV
    (Monte Carlo, relative error about 1e-3: the configurations only need TV approximately)."""
    import numpy as np

    from cspd_ref import GaussianMixture as RefMixture
    from cspd_ref.theory import tv_distance

    target = RefMixture([1.0], np.zeros((1, dim)), np.ones((1, dim)))

    def tv_at(ratio: float) -> float:
        draft = RefMixture([1.0], np.zeros((1, dim)), np.full((1, dim), ratio))
        return tv_distance(draft, target, rng=np.random.default_rng(0)).value

    lo, hi = 1.0, 4.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tv_at(mid) < tv else (lo, mid)
    return (lo + hi) / 2


def configurations(dim: int) -> list[tuple[str, str, float, float, float]]:
    """``(scales, residual method, TV, mean shift, scale ratio)`` of every configuration."""
    out = []
    for tv in TARGET_TVS:
        out.append(("equal", "reflection", tv, equal_scale_shift(tv), 1.0))
    for tv in TARGET_TVS:
        out.append(("unequal", "batched", tv, 0.0, unequal_scale_ratio(tv, dim)))
    return out


def token_pair(n: int, dim: int, shift: float, scale_ratio: float, device: torch.device, *,
               generator: torch.Generator) -> tuple[GaussianMixture, GaussianMixture]:
    """Per-token draft and target (batch ``(n,)``, K = 1): random target means and scales, the
    draft shifted by ``shift`` target scales along a random unit direction per token and its
    scales ``scale_ratio`` times the target's."""
    f32 = torch.float32
    mean_p = torch.randn((n, 1, dim), generator=generator, device=device, dtype=f32)
    scale_p = 0.5 + torch.rand((n, 1, dim), generator=generator, device=device, dtype=f32)
    direction = torch.randn((n, 1, dim), generator=generator, device=device, dtype=f32)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    mean_q = mean_p + shift * direction * scale_p
    weights = torch.ones((n, 1), device=device, dtype=f32)
    target = GaussianMixture(weights, mean_p, scale_p)
    draft = GaussianMixture(weights, mean_q, scale_p * scale_ratio)
    return draft, target


def draft_only(draft: GaussianMixture, *, generator: torch.Generator) -> torch.Tensor:
    """The draft samples alone, ``mean + scale * randn`` (single Gaussians): the floor."""
    mean, scale = draft.means[:, 0], draft.scales[:, 0]
    return mean + scale * torch.randn(mean.shape, generator=generator, device=mean.device)


def naive_speculative_sample(draft: GaussianMixture, target: GaussianMixture, *,
                             generator: torch.Generator) -> torch.Tensor:
    """The straightforward sampler: Gaussian densities (not log-densities), accept with
    ``min(1, p/q)``, then propose from ``p`` for every still-pending row of the batch, accept
    with ``max(0, 1 - q/p)``, until every row has succeeded (single Gaussians only)."""
    mean_q, scale_q = draft.means[:, 0], draft.scales[:, 0]
    mean_p, scale_p = target.means[:, 0], target.scales[:, 0]

    def density(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        z = (x - mean) / scale
        return torch.prod(torch.exp(-0.5 * z * z) / (scale * math.sqrt(2 * math.pi)), dim=-1)

    x = mean_q + scale_q * torch.randn(mean_q.shape, generator=generator, device=mean_q.device)
    u = torch.rand(x.shape[0], generator=generator, device=x.device)
    accepted = u < torch.clamp(density(x, mean_p, scale_p) / density(x, mean_q, scale_q), max=1.0)
    out = x.clone()
    pending = ~accepted
    while bool(pending.any()):
        y = mean_p + scale_p * torch.randn(mean_p.shape, generator=generator, device=x.device)
        p_y, q_y = density(y, mean_p, scale_p), density(y, mean_q, scale_q)
        ok = pending & (torch.rand(x.shape[0], generator=generator, device=x.device)
                        < torch.clamp(1.0 - q_y / p_y, min=0.0))
        out[ok] = y[ok]
        pending &= ~ok
    return out


def fused_step_run(draft: GaussianMixture, target: GaussianMixture, step: Callable[..., Any],
                   *, generator: torch.Generator) -> Callable[[], object]:
    """``step`` (``gpu_impl.fused.speculative_reflection_step``, compiled or not) on noise drawn
    once beforehand: the time of the fused sampling step itself, fed explicit noise."""
    mean_q, mean_p, scale = draft.means[:, 0], target.means[:, 0], target.scales[:, 0]
    normals = torch.randn(mean_q.shape, generator=generator, device=mean_q.device)
    uniforms = torch.rand(mean_q.shape[0], generator=generator, device=mean_q.device)
    return partial(step, mean_q, mean_p, scale, normals, uniforms)


def run_benchmark(device: torch.device, sizes: Sequence[int], dim: int, warmup: int,
                  repeats: int, naive_max_n: int, bandwidth: float, compiled: bool = False,
                  progress: bool = True) -> list[Timing]:
    """Every configuration of the module docstring at copy bandwidth ``bandwidth`` (bytes/s);
    returns one ``Timing`` per row."""
    rows: list[Timing] = []
    for scales, residual, tv, shift, ratio in configurations(dim):
        for n in sizes:
            generator = torch.Generator(device=device).manual_seed(n)
            draft, target = token_pair(n, dim, shift, ratio, device, generator=generator)
            bytes_moved = 6 * n * dim * 4
            bound_ms = bytes_moved / bandwidth * 1e3
            samplers: list[tuple[str, Callable[[], object]]] = [
                ("draft only", partial(draft_only, draft, generator=generator)),
                (f"gpu_impl ({residual})", partial(speculative_sample, draft, target, n,
                                                   generator, residual=residual)),
            ]
            if scales == "equal":
                from gpu_impl.fused import speculative_reflection_step

                step = (torch.compile(speculative_reflection_step, dynamic=False) if compiled
                        else speculative_reflection_step)
                label = "fused step" + (" (compiled)" if compiled else " (eager)")
                samplers.append((f"{label}, noise given",
                                 fused_step_run(draft, target, step, generator=generator)))
            if n <= naive_max_n:
                samplers.append(("naive", partial(naive_speculative_sample, draft, target,
                                                  generator=generator)))
            for name, run in samplers:
                ms = median_ms(run, device, warmup, repeats)
                row = Timing(device=str(device), sampler=name, scales=scales, tv=tv, n=n,
                             dim=dim, median_ms=ms, bound_ms=bound_ms,
                             gb_per_s=bytes_moved / (ms / 1e3) / 1e9)
                rows.append(row)
                if progress:
                    print(f"{scales:8s} tv={tv:<6g} n={n:<9d} {name:24s} "
                          f"{ms:10.3f} ms  {row.ratio_to_bound:8.1f}x bound", file=sys.stderr,
                          flush=True)
    return rows


def reference_timings(n: int, dim: int, warmup: int, repeats: int,
                      progress: bool = True) -> list[Timing]:
    """The float64 reference (``cspd_ref.speculative_sample``) on the same configurations at
    one size, with its own floor: drawing the draft samples alone with NumPy. ``bound_ms`` is
    that floor here (the issue's CPU figure is the ratio to it)."""
    import numpy as np

    import cspd_ref

    def numpy_draft_only(draft: Any, *, rng: Any) -> Any:
        mean, scale = draft.means[:, 0], draft.scales[:, 0]
        return mean + scale * rng.standard_normal(mean.shape)

    rows: list[Timing] = []
    device = torch.device("cpu")
    for scales, residual, tv, shift, ratio in configurations(dim):
        draft_t, target_t = token_pair(n, dim, shift, ratio, device,
                                       generator=torch.Generator().manual_seed(n))
        draft = cspd_ref.GaussianMixture(draft_t.weights.double().numpy(),
                                         draft_t.means.double().numpy(),
                                         draft_t.scales.double().numpy())
        target = cspd_ref.GaussianMixture(target_t.weights.double().numpy(),
                                          target_t.means.double().numpy(),
                                          target_t.scales.double().numpy())
        rng = np.random.default_rng(0)
        floor = median_ms(partial(numpy_draft_only, draft, rng=rng), device, warmup, repeats)
        ms = median_ms(partial(cspd_ref.speculative_sample, draft, target, n, rng,
                               residual=residual), device, warmup, repeats)
        for name, value in (("draft only (NumPy)", floor), (f"cspd_ref ({residual})", ms)):
            rows.append(Timing(device="cpu", sampler=name, scales=scales, tv=tv, n=n,
                               dim=dim, median_ms=value, bound_ms=floor,
                               gb_per_s=6 * n * dim * 8 / (value / 1e3) / 1e9))
            if progress:
                print(f"{scales:8s} tv={tv:<6g} n={n:<9d} {name:24s} {value:10.3f} ms  "
                      f"{value / floor:8.1f}x draft only", file=sys.stderr, flush=True)
    return rows


def markdown_table(rows: Sequence[Timing], bandwidth_note: str) -> str:
    """The rows as a Markdown table."""
    lines = [bandwidth_note, "",
             "| scales | TV | n | sampler | median ms | effective GB/s | x bound |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.scales} | {r.tv:g} | {r.n} | {r.sampler} | {r.median_ms:.3f} | "
                     f"{r.gb_per_s:.2f} | {r.ratio_to_bound:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu_impl.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true",
                        help="time the fused reflection step compiled with torch.compile "
                             "(default: eager)")
    parser.add_argument("--naive-max-n", type=int, default=262_144,
                        help="run the naive baseline only up to this n (it is slow)")
    parser.add_argument("--json", action="store_true", help="rows as JSON on stdout")
    parser.add_argument("--reference", type=int, default=None, metavar="N",
                        help="instead: the float64 reference on the CPU at N tokens, as a "
                             "ratio to drawing the draft samples alone with NumPy")
    args = parser.parse_args(argv)
    if args.reference is not None:
        ref_rows = reference_timings(args.reference, args.dim, args.warmup, args.repeats)
        import numpy as np

        print(markdown_table(ref_rows, f"cspd_ref (float64, NumPy {np.__version__}); 'x bound' "
                                       "is the ratio to drawing the draft alone"))
        return 0
    device = torch.device(args.device)
    bandwidth = copy_bandwidth(device, args.warmup, args.repeats)
    rows = run_benchmark(device, args.sizes, args.dim, args.warmup, args.repeats,
                         args.naive_max_n, bandwidth, compiled=args.compile)
    if args.json:
        print(json.dumps({"copy_bandwidth_gb_per_s": bandwidth / 1e9,
                          "torch": torch.__version__,
                          "rows": [asdict(r) | {"ratio_to_bound": r.ratio_to_bound}
                                   for r in rows]}, indent=2))
    else:
        print(markdown_table(rows, f"device {device}, torch {torch.__version__}, copy bandwidth "
                                   f"{bandwidth / 1e9:.1f} GB/s (read + write)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
