"""Benchmark: the battery's own time for a default (full-tier) token ``verify`` call.

The sampler's output is computed first (the exact reference sampler) and handed to ``verify``
through a sampler that returns it, so the time measured is the battery's alone: planning,
projections, log-density statistics against a rounded reference sample, Rosenblatt, atoms, the
TV interval and the count tests. Median over ``--repeats`` runs after one warm-up run.

    python scripts/bench_battery.py [--repeats 3] [--out BENCHMARKS-battery.md]

Not a test: speed goals live here and in BENCHMARKS.md, never in an assertion.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cspd_ref import GaussianMixture
from cspd_ref.cases import Case
from cspd_ref.samplers import token_sampler
from cspd_ref.verify import DEFAULT_ALPHA, TIERS, plan_for, planned_sample_size, verify


def bench_case(d: int, k: int, seed: int = 0) -> Case:
    """A K-component target in d dimensions and a shifted, widened draft (TV ~ 0.2-0.4)."""
    rng = np.random.default_rng([seed, d, k])
    means = 2.0 * rng.standard_normal((k, d))
    scales = np.exp(rng.uniform(-0.5, 0.5, (k, d)))
    target = GaussianMixture(np.full(k, 1.0 / k), means, scales)
    draft = GaussianMixture(np.full(k, 1.0 / k), means + 0.3 / np.sqrt(d), scales * 1.1)
    return Case(draft, target, name=f"bench-d{d}-K{k}")


def time_battery(case: Case, repeats: int) -> tuple[int, int, float, float]:
    """``(n, checks, sampler seconds, median battery seconds)``."""
    n = planned_sample_size(plan_for(case, 4, TIERS["full"]), DEFAULT_ALPHA)
    start = time.perf_counter()
    out = token_sampler("auto")(case, n, 1)
    sampler_seconds = time.perf_counter() - start

    def cached(_case: Any, _n: int, _seed: int) -> Any:
        return out

    times = []
    checks = 0
    for r in range(repeats + 1):
        start = time.perf_counter()
        verdict = verify(cached, case, seed=r)
        if r:
            times.append(time.perf_counter() - start)
        checks = len(verdict.checks)
    return n, checks, sampler_seconds, statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}, NumPy {np.__version__}. Command: `python "
             f"scripts/bench_battery.py --repeats {args.repeats}`. Median of {args.repeats} "
             "runs after one warm-up; sampler time is one run of the float64 reference.", "",
             "| case | n (planned, full tier) | checks | battery s (median) | reference "
             "sampler s |", "|---|---:|---:|---:|---:|"]
    for d, k in ((1, 1), (1, 5), (4, 3), (16, 1), (16, 5)):
        n, checks, sampler_s, battery_s = time_battery(bench_case(d, k), args.repeats)
        lines.append(f"| d={d}, K={k} | {n} | {checks} | {battery_s:.2f} | {sampler_s:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
