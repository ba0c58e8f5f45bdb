"""Measure the gate: false alarms of exact samplers and detections of the mutant catalog.

Three modes:

* ``python -m property_tests.calibrate battery --runs 100`` — on fixed cases, run each exact
  reference sampler ``runs`` times with fresh seeds and count how often ``verify`` flags it at
  three levels (0.05, 0.01 and the gate's ``CALL_ALPHA``): the first two measure that the
  battery's p-values are calibrated (the flag rate must not exceed the level beyond binomial
  noise), the third is the gate's own rate. Then run every mutant ``runs`` times at
  ``CALL_ALPHA`` and count detections (power).
* ``python -m property_tests.calibrate gate --seeds 1-20`` — run the whole gate
  (``pytest property_tests/``) once per ``CSPD_SEED`` and count the runs with a failure.
* ``python -m property_tests.calibrate pvalues --runs 1000 --tier both`` — the p-value
  distributions of the exact samplers at scale, on Dask (``property_tests/calibrate_pvalues.py``).

Each prints a Markdown report and writes it to ``--out`` (default ``reports/calibration.md``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cspd_ref.cases import demo_case, equal_scale_gaussian_case
from cspd_ref.mutants.catalog import MUTANTS, ar_case, linear_diffusion_case, unequal_weight_case
from cspd_ref.samplers import ar_sampler, diffusion_sampler, token_sampler
from cspd_ref.verify import verify
from property_tests.budget import CALL_ALPHA, GATE_ALPHA, PLANNED_EXACT_CALLS

LEVELS = (0.05, 0.01, CALL_ALPHA)


def exact_workload() -> list[tuple[str, Callable[..., Any], Any, int | None]]:
    """(label, sampler, case, n) for the exact samplers measured in ``battery`` mode."""
    return [
        ("token auto, demo mixture", token_sampler("auto"), demo_case(), None),
        ("token batched, 1-D unequal weights", token_sampler("batched"), unequal_weight_case(),
         None),
        ("token reflection, d=4", token_sampler("auto"), equal_scale_gaussian_case(4, 1.0),
         None),
        ("diffusion aligned, linear chain", diffusion_sampler("aligned"),
         linear_diffusion_case(), None),
        ("diffusion joint, linear chain", diffusion_sampler("joint"), linear_diffusion_case(),
         None),
        ("AR gamma=2", ar_sampler(gamma=2), ar_case(), 2000),
    ]


def battery_mode(runs: int, seed0: int) -> str:
    """Flag counts of exact samplers at several levels, and mutant detections."""
    lines = ["## Exact samplers: how often verify flags them", "",
             f"{runs} runs each, seeds {seed0}..{seed0 + runs - 1}. A calibrated battery flags "
             "at most a fraction `level` of runs (up to binomial noise).", "",
             "| sampler / case | n | flagged @0.05 | flagged @0.01 | "
             f"flagged @CALL_ALPHA={CALL_ALPHA:.1e} | seconds |",
             "|---|---|---|---|---|---|"]
    for label, sampler, case, n in exact_workload():
        counts = dict.fromkeys(LEVELS, 0)
        start = time.perf_counter()
        n_used = 0
        for r in tqdm(range(runs), desc=label, leave=False):
            verdict = verify(sampler, case, seed=seed0 + r, alpha=0.05, n=n)
            n_used = verdict.n
            for level in LEVELS:
                counts[level] += int(verdict.min_adjusted_pvalue <= level)
        elapsed = time.perf_counter() - start
        lines.append(f"| {label} | {n_used} | {counts[0.05]}/{runs} | {counts[0.01]}/{runs} | "
                     f"{counts[CALL_ALPHA]}/{runs} | {elapsed:.0f} |")
    lines += ["", "## Mutants: how often verify flags them at CALL_ALPHA", "",
              "| mutant | mistake | detected | seconds |", "|---|---|---|---|"]
    for mutant in MUTANTS:
        case = mutant.case()
        detected = 0
        start = time.perf_counter()
        for r in tqdm(range(runs), desc=mutant.name, leave=False):
            verdict = verify(mutant.sampler, case, seed=seed0 + r, alpha=CALL_ALPHA, n=mutant.n)
            detected += int(not verdict.equivalent)
        lines.append(f"| {mutant.name} | {mutant.mistake} | {detected}/{runs} | "
                     f"{time.perf_counter() - start:.0f} |")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """``"1-20"`` or ``"3,5,8"``."""
    if "-" in text:
        lo, hi = text.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",") if s]


def gate_mode(seeds: Sequence[int], extra: Sequence[str]) -> str:
    """Run ``pytest property_tests/`` once per CSPD_SEED and tabulate the outcomes."""
    lines = ["## The whole gate under different CSPD_SEED values", "",
             "| CSPD_SEED | result | seconds |", "|---|---|---|"]
    failures = 0
    for seed in tqdm(seeds, desc="gate runs"):
        env = dict(os.environ, CSPD_SEED=str(seed))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "property_tests/", *extra], env=env, capture_output=True,
                              text=True, check=False)
        elapsed = time.perf_counter() - start
        tail = [ln for ln in proc.stdout.splitlines() if " passed" in ln or " failed" in ln]
        failures += int(proc.returncode != 0)
        lines.append(f"| {seed} | {tail[-1] if tail else 'exit ' + str(proc.returncode)} | "
                     f"{elapsed:.0f} |")
    lines += ["", f"Runs with a failure: {failures}/{len(seeds)}."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m property_tests.calibrate {battery,gate,pvalues} ...``."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    battery = sub.add_parser("battery", help="per-call flag rates and mutant detections")
    battery.add_argument("--runs", type=int, default=100)
    battery.add_argument("--seed0", type=int, default=1000)
    gate = sub.add_parser("gate", help="the whole gate under several CSPD_SEED values")
    gate.add_argument("--seeds", default="1-20")
    gate.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    for p in (battery, gate):
        p.add_argument("--out", type=Path, default=Path("reports/calibration.md"))
    from property_tests import calibrate_pvalues

    calibrate_pvalues.build_parser(sub.add_parser(
        "pvalues", help="p-value distributions of exact samplers at scale, on Dask",
        description=calibrate_pvalues.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    if args.mode == "pvalues":
        raw = list(sys.argv[1:] if argv is None else argv)
        return calibrate_pvalues.run(args, " ".join(["python -m property_tests.calibrate", *raw]))
    header = (f"# cspd gate calibration ({args.mode} mode)\n\nGate budget: GATE_ALPHA = "
              f"{GATE_ALPHA:g} over at most {PLANNED_EXACT_CALLS} exact-sampler statistical "
              f"assertions, CALL_ALPHA = {CALL_ALPHA:.1e} each.\n\n")
    if args.mode == "battery":
        body = battery_mode(args.runs, args.seed0)
    else:
        body = gate_mode(parse_seeds(args.seeds), args.pytest_args)
    text = header + body + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists() and args.mode == "gate":
        text = args.out.read_text() + "\n" + body + "\n"
    args.out.write_text(text)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
