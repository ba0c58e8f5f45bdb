"""End-to-end benchmark of speculative generation with the MAR-style toy:
``python -m gpu_impl.mar_toy.bench [--device cuda] [--gammas 1 2 3 4] [--battery 2000]``
(docs/mar_toy.md §5; figures in BENCHMARKS.md, nothing here is a test).

1. **Pair.** Train the target on the synthetic dataset and distil a shallower draft from it
   (``gpu_impl.mar_toy.training``), or load both (``--load DIR``; ``--save DIR`` keeps them).
2. **Timing.** For each head mode (``eager``; ``compiled``: the head's denoising loop under
   ``torch.compile``) and repeat ``r`` (after ``--warmup`` untimed runs), one batch of
   ``--batch`` images with orders and noise seeded by ``r``, shared by every decoder: the
   target alone, the draft alone (whose time over the target's is the cost ratio ``c``), and
   ``speculative_generate`` at every ``gamma`` and ``prefill``, with a target-only run before
   and after each of the others (on a shared CPU the machine's speed drifts by tens of percent
   within a minute). Times are medians over the repeats; every ratio is the median over the
   repeats of the ratio to the adjacent target-only runs; the acceptance ``a`` pools all
   repeats. The speed-up that counts is against the best target-only time over the head modes;
   the theoretical speed-up is ``S = (1 - a^(gamma+1)) / ((1 - a)(gamma c + 1))``
   (docs/algorithms.md §5.3) on the groups after the prefill, ``G / (P + (G - P) / S)`` in all,
   with the measured ``a`` and the same mode's ``c``; the efficiency is measured over
   theoretical, both against the same mode's target-only time.
3. **Battery** (``--battery N``): ``N`` images from ``speculative_generate`` and ``N`` from
   ``target_generate`` (independent noise), flattened to vectors ``(N, grid^2 d)``, compared by
   ``two_sample_battery`` at family-wise level ``--alpha``; and, to show whether the battery can
   see a wrong law at this ``N``, the draft's own images against the target's (a sampler that
   accepts every draft). If those are not flagged either, a pass says little on this pair.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cspd_ref.theory import expected_speedup
from gpu_impl.bench import synchronize
from gpu_impl.mar_toy.decode import (
    GenerationStats,
    MARNoise,
    draw_mar_noise,
    speculative_generate,
    target_generate,
    to_image_space,
)
from gpu_impl.mar_toy.model import MARToy, MARToyConfig
from gpu_impl.mar_toy.schedule import random_orders
from gpu_impl.mar_toy.training import distil_draft, train_target

if TYPE_CHECKING:
    from cspd_ref.stats import CheckResult

__all__ = ["build_pair", "generate_images", "load_pair", "main", "save_pair", "seeded_batch",
           "theoretical_speedup", "two_sample_battery"]

PRESETS = {
    "cpu": MARToyConfig(),
    "gpu": MARToyConfig(grid=16, num_groups=64, width=256, heads=8, layers=8, head_width=512,
                        head_blocks=4, diffusion_steps=16),
    "tiny": MARToyConfig(grid=4, num_groups=4, width=16, heads=2, layers=2, head_width=16,
                         head_blocks=1, diffusion_steps=3),
}


def theoretical_speedup(acceptance: float, gamma: int, cost_ratio: float,
                        prefill_groups: int = 0, num_groups: int | None = None) -> float:
    """``S = (1 - a^(gamma+1)) / ((1 - a)(gamma c + 1))`` (``cspd_ref.theory.expected_speedup``,
    docs/algorithms.md §5.3), and with ``P`` prefilled groups of ``G`` (generated at
    target-only speed) ``G / (P + (G - P) / S)``.

    Examples:
        >>> round(theoretical_speedup(0.8, 3, 0.1), 3)
        2.271
    """
    s = expected_speedup(acceptance, gamma, cost_ratio)
    if num_groups is None or prefill_groups == 0:
        return s
    return num_groups / (prefill_groups + (num_groups - prefill_groups) / s)


def build_pair(config: MARToyConfig, *, seed: int, train_steps: int, distil_steps: int,
               draft_layers: int, batch: int, device: torch.device,
               progress: Callable[[str], None] | None = None) -> tuple[MARToy, MARToy]:
    """``(draft, target)``: the target trained, the draft distilled from it (seeded)."""
    target = train_target(config, steps=train_steps, batch=batch, seed=seed, device=device,
                          progress=progress)
    draft = distil_draft(target, layers=draft_layers, steps=distil_steps, batch=batch,
                         seed=seed + 1, progress=progress)
    return draft, target


def save_pair(directory: Path, draft: MARToy, target: MARToy, meta: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"config": target.config.__dict__, "draft_layers": len(draft.transformer.blocks),
                "draft": draft.state_dict(), "target": target.state_dict(), "meta": meta},
               directory / "mar_toy_pair.pt")


def load_pair(directory: Path, device: torch.device) -> tuple[MARToy, MARToy]:
    state = torch.load(directory / "mar_toy_pair.pt", map_location=device, weights_only=True)
    config = MARToyConfig(**state["config"])
    target = MARToy.seeded(config, seed=0).to(device)  # every weight is loaded below
    target.load_state_dict(state["target"])
    draft = target.derived_draft(int(state["draft_layers"]))
    draft.load_state_dict(state["draft"])
    return draft.eval(), target.eval()


def seeded_batch(model: MARToy, batch: int, seed: int) -> tuple[torch.Tensor, MARNoise]:
    """Orders, then noise, for ``batch`` images from a ``torch.Generator`` seeded with ``seed``
    on the model's device."""
    dev = model.transformer.position.device
    generator = torch.Generator(device=dev).manual_seed(seed)
    order = random_orders(batch, model.config.num_tokens, generator=generator, device=dev)
    return order, draw_mar_noise(batch, model, generator=generator)


def _timed(run: Callable[[], tuple[torch.Tensor, GenerationStats]],
           device: torch.device) -> tuple[float, GenerationStats]:
    synchronize(device)
    start = time.perf_counter()
    _, stats = run()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3, stats


def run_timings(draft: MARToy, target: MARToy, *, batch: int, gammas: Sequence[int],
                prefills: Sequence[float], modes: Sequence[str], warmup: int, repeats: int,
                progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """One row per (mode, decoder, gamma, prefill): median ms over ``repeats`` and pooled
    counts (module docstring)."""
    device = target.transformer.position.device
    decoders: list[tuple[str, int, float]] = [("target only", 0, 0.0), ("draft only", 0, 0.0)]
    decoders += [("speculative", g, p) for p in prefills for g in gammas]
    rows = []
    for mode in modes:
        for model in (draft, target):
            model.compile_head(mode == "compiled")

        def run(kind: str, gamma: int, prefill: float, order: torch.Tensor,
                noise: MARNoise) -> tuple[torch.Tensor, GenerationStats]:
            if kind == "target only":
                return target_generate(target, order, noise)
            if kind == "draft only":
                return target_generate(draft, order, noise)
            return speculative_generate(draft, target, order, noise, gamma=gamma,
                                        prefill=prefill)

        times: dict[tuple[str, int, float], list[float]] = {key: [] for key in decoders}
        baselines: dict[tuple[str, int, float], list[float]] = {key: [] for key in decoders}
        pooled: dict[tuple[str, int, float], GenerationStats] = {
            key: GenerationStats() for key in decoders}
        target_only, others = decoders[0], decoders[1:]
        for r in range(-warmup, repeats):
            order, noise = seeded_batch(target, batch, 1000 + r)
            before, _ = _timed(partial(run, *target_only, order, noise), device)
            if r >= 0:
                times[target_only].append(before)
            for key in others:
                ms, stats = _timed(partial(run, *key, order, noise), device)
                after, _ = _timed(partial(run, *target_only, order, noise), device)
                if r >= 0:
                    times[key].append(ms)
                    times[target_only].append(after)
                    baselines[key].append((before + after) / 2)
                    total = pooled[key]
                    total.groups_examined += stats.groups_examined
                    total.groups_accepted += stats.groups_accepted
                    total.target_passes += stats.target_passes
                    total.draft_passes += stats.draft_passes
                    total.tokens_drafted += stats.tokens_drafted
                    total.tokens_rejected += stats.tokens_rejected
                before = after
            progress(f"{mode}: {'warm-up' if r < 0 else 'repeat'} {r + 1 if r >= 0 else -r}"
                     f" done")
        for (kind, gamma, prefill), values in times.items():
            stats = pooled[(kind, gamma, prefill)]
            rows.append({"mode": mode, "decoder": kind, "gamma": gamma, "prefill": prefill,
                         "median_ms": statistics.median(values), "times_ms": values,
                         "baseline_ms": baselines[(kind, gamma, prefill)],
                         "target_passes": stats.target_passes / repeats,
                         "draft_passes": stats.draft_passes / repeats,
                         "groups_examined": stats.groups_examined,
                         "groups_accepted": stats.groups_accepted,
                         "token_rejection": (stats.tokens_rejected / stats.tokens_drafted
                                             if stats.tokens_drafted else 0.0)})
    for model in (draft, target):
        model.compile_head(False)
    _add_speedups(rows, target.config.num_groups)
    return rows


def _paired_median(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median over repeats of ``numerator_r / denominator_r``: both timed on the same batch,
    next to each other, so a slow spell of the machine cancels out of the ratio."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def _add_speedups(rows: list[dict[str, Any]], num_groups: int) -> None:
    """Ratios per repeat against the adjacent target-only runs (``baseline_ms``: the mean of the
    target-only runs just before and just after): the cost ratio ``c`` (draft only / target
    only) and the speed-up (target only / speculative), medians over the repeats; the speed-up
    against the best target-only baseline (the head mode with the smallest target-only
    median) scales the same-mode speed-up by the ratio of the two modes' medians; the
    theoretical speed-up and the efficiency (same mode)."""
    baselines = [r for r in rows if r["decoder"] == "target only"]
    best = min(baselines, key=lambda r: r["median_ms"])
    for mode in {r["mode"] for r in rows}:
        mine = [r for r in rows if r["mode"] == mode]
        target = next(r for r in mine if r["decoder"] == "target only")
        draft = next(r for r in mine if r["decoder"] == "draft only")
        c = _paired_median(draft["times_ms"], draft["baseline_ms"])
        for r in mine:
            r["cost_ratio"] = c
            if r["decoder"] != "speculative":
                continue
            a = r["groups_accepted"] / r["groups_examined"]
            prefilled = math.ceil(r["prefill"] * num_groups - 1e-12)
            r["acceptance"] = a
            ratios = [t / s for t, s in zip(r["baseline_ms"], r["times_ms"], strict=True)]
            r["speedup"] = statistics.median(ratios)
            r["speedup_range"] = [min(ratios), max(ratios)]
            r["best_target_mode"] = best["mode"]
            r["speedup_vs_best"] = r["speedup"] * best["median_ms"] / target["median_ms"]
            r["theoretical"] = theoretical_speedup(a, r["gamma"], c, prefilled, num_groups)
            r["efficiency"] = r["speedup"] / r["theoretical"]


def generate_images(kind: str, draft: MARToy, target: MARToy, n: int, batch: int, seed: int,
                    gamma: int, progress: Callable[[str], None]) -> np.ndarray:
    """``(n, N d)`` float64 images (image space, flattened) from ``kind`` in ``{"target",
    "speculative", "draft"}``, batches seeded ``seed, seed + 1, ...``."""
    out = []
    done = 0
    while done < n:
        b = min(batch, n - done)
        order, noise = seeded_batch(target, b, seed + done)
        if kind == "speculative":
            tokens, _ = speculative_generate(draft, target, order, noise, gamma=gamma)
        else:
            tokens, _ = target_generate(target if kind == "target" else draft, order, noise)
        out.append(to_image_space(tokens, order).reshape(b, -1).double().cpu().numpy())
        done += b
        progress(f"{kind}: {done}/{n} images")
    return np.concatenate(out)


def two_sample_battery(x: np.ndarray, y: np.ndarray, *, generator: np.random.Generator,
                       n_projections: int = 16, n_axes: int = 16) -> list[CheckResult]:
    """Checks of "the rows of ``x`` and of ``y`` are iid from one law": exact two-sample KS on
    the first ``n_axes`` coordinates and on ``n_projections`` random unit directions, and the
    MMD test by betting on the whole vectors (``cspd_ref.stats``; ``generator`` draws the
    directions and the MMD shuffles); combine with Holm."""
    from cspd_ref.stats import (
        ks_two_sample_projections,
        mmd_betting_test,
        random_unit_directions,
    )

    dim = x.shape[1]
    axes = np.eye(dim)[:n_axes]
    directions = np.concatenate([axes, random_unit_directions(dim, n_projections, rng=generator)])
    labels = [f"axis[{j}]" for j in range(axes.shape[0])]
    labels += [f"random[{i}]" for i in range(n_projections)]
    checks = ks_two_sample_projections(x, y, directions, labels=labels)
    checks.append(mmd_betting_test(x, y, rng=generator, witness_points=min(250, x.shape[0] // 4)))
    return checks


def battery_verdicts(draft: MARToy, target: MARToy, n: int, batch: int, gamma: int,
                     alpha: float, seed: int,
                     progress: Callable[[str], None]) -> dict[str, Any]:
    """``two_sample_battery`` of ``n`` speculative images, then of ``n`` draft-only images,
    each against the same ``n`` target-only images, Holm at ``alpha``: whether each is flagged,
    the smallest adjusted p-value, its check, and the largest floor (``min_pvalue``)."""
    from cspd_ref.stats import holm

    reference = generate_images("target", draft, target, n, batch, seed, gamma, progress)
    out: dict[str, Any] = {"n": n, "alpha": alpha, "gamma": gamma, "seed": seed}
    for kind, offset in (("speculative", 10_000_000), ("draft", 20_000_000)):
        x = generate_images(kind, draft, target, n, batch, seed + offset, gamma, progress)
        checks = two_sample_battery(x, reference, generator=np.random.default_rng(seed))
        adjusted = holm([c.pvalue for c in checks])
        worst = int(np.argmin(adjusted))
        out[kind] = {"flagged": bool(adjusted[worst] <= alpha),
                     "min_adjusted_pvalue": float(adjusted[worst]),
                     "min_pvalue_check": checks[worst].name, "checks": len(checks),
                     "largest_floor": max(c.min_pvalue for c in checks)}
    return out


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| head | decoder | gamma | prefill | median ms | a | c | speed-up (range) | vs best "
             "target-only | theoretical | efficiency |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["decoder"] == "speculative":
            lines.append(f"| {r['mode']} | speculative | {r['gamma']} | {r['prefill']:g} | "
                         f"{r['median_ms']:.0f} | {r['acceptance']:.3f} | {r['cost_ratio']:.3f} |"
                         f" {r['speedup']:.2f} ({r['speedup_range'][0]:.2f}-"
                         f"{r['speedup_range'][1]:.2f}) | {r['speedup_vs_best']:.2f} | "
                         f"{r['theoretical']:.2f} | {r['efficiency']:.2f} |")
        else:
            lines.append(f"| {r['mode']} | {r['decoder']} | | | {r['median_ms']:.0f} | | "
                         f"{r['cost_ratio']:.3f} | | | | |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpu_impl.mar_toy.bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--distil-steps", type=int, default=400)
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--draft-layers", type=int, default=2)
    p.add_argument("--load", type=Path, help="load the pair saved by --save instead of training")
    p.add_argument("--save", type=Path, help="save the trained pair in this directory")
    p.add_argument("--batch", type=int, default=32, help="images per generation call")
    p.add_argument("--gammas", type=int, nargs="+", default=[1, 2, 3, 4, 6])
    p.add_argument("--prefills", type=float, nargs="+", default=[0.0, 0.25])
    p.add_argument("--modes", nargs="+", choices=["eager", "compiled"],
                   default=["eager", "compiled"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--battery", type=int, default=0, metavar="N",
                   help="also run the two-sample battery on N images per sampler")
    p.add_argument("--battery-gamma", type=int, default=3)
    p.add_argument("--alpha", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    p.add_argument("--json", action="store_true", help="print the result document as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    if args.load is not None:
        draft, target = load_pair(args.load, device)
    else:
        draft, target = build_pair(PRESETS[args.preset], seed=args.seed,
                                   train_steps=args.train_steps,
                                   distil_steps=args.distil_steps,
                                   draft_layers=args.draft_layers, batch=args.train_batch,
                                   device=device, progress=progress)
        if args.save is not None:
            save_pair(args.save, draft, target, {"seed": args.seed,
                                                 "train_steps": args.train_steps,
                                                 "distil_steps": args.distil_steps})
    doc: dict[str, Any] = {
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else "cpu"),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "config": target.config.__dict__,
        "parameters": {"target": target.parameter_count(), "draft": draft.parameter_count()},
        "draft_layers": len(draft.transformer.blocks), "batch": args.batch,
        "repeats": args.repeats, "warmup": args.warmup,
    }
    doc["rows"] = run_timings(draft, target, batch=args.batch, gammas=args.gammas,
                              prefills=args.prefills, modes=args.modes, warmup=args.warmup,
                              repeats=args.repeats, progress=progress)
    if args.battery:
        doc["battery"] = battery_verdicts(draft, target, args.battery, args.batch,
                                          args.battery_gamma, args.alpha, args.seed + 7,
                                          progress)
    doc["wall_s"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(_markdown(doc["rows"]))
        if "battery" in doc:
            print(json.dumps(doc["battery"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
