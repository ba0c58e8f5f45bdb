"""Power curves: how often the default ``verify`` flags each mutant family, against its effect.

    python -m property_tests.calibrate_power [--runs 50] [--points all|0,3,7]
        [--workers 2 | --scheduler tcp://host:8786] [--results reports/power/runs.jsonl]
        [--out reports/power.md]

For every point of ``POWER_POINTS`` (a family member of ``property_tests.mutant_families`` on
one case), the effect size is measured once (``mutant_families.effect_size``: the largest KS
distance along the case's directions from ``EFFECT_N_REF`` samples, the largest atom, the
acceptance deviation) and ``verify`` runs ``--runs`` times at its defaults (full tier,
``alpha = 1e-4``) with seeds ``seed0 ..``. A run *detects* the member when the verdict is not
equivalent; the report also records which check families rejected (after Holm).

Runs go through the same Dask engine as ``calibrate_pvalues`` (``execute``): results are
appended as JSON lines as they arrive and a killed run resumes. The report gives, per family,
the detection rate with its exact Clopper-Pearson 95% interval at each effect size, a figure of
detection probability against effect size, and per family the smallest measured effect that
every run detected (with the lower 95% bound of its detection rate).
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scipy import stats

from cspd_ref.mutants import FAMILY_GRID, GridPoint
from property_tests.calibrate_pvalues import execute, load_results, record_key
from property_tests.mutant_families import effect_size

EFFECT_N_REF = 2_000_000
"""Samples behind each point's effect-size measurement (DKW noise about 1.2e-3 at 99%)."""
EFFECT_SEED = 8
DEFAULT_RESULTS = Path("reports/power/runs.jsonl")
DEFAULT_OUT = Path("reports/power.md")


def _select() -> list[GridPoint]:
    """The dial of each family: a subset of ``FAMILY_GRID`` spanning detectable to not."""
    wanted = {
        ("capped_residual", "gaussian"): lambda p: p[1] == "zero" and p[0] in (5, 10, 20, 40),
        ("capped_residual", "mixture"): lambda p: p[1] == "draft" and p[0] in (5, 10, 20, 40),
        ("draft_temperature", "gaussian"): lambda p: p in (1.2, 1.1, 1.05, 1.02),
        ("draft_temperature", "mixture"): lambda p: p in (1.1, 1.05, 1.02, 1.01),
        ("mass_toward_draft", "mixture"): lambda p: p in (0.1, 0.05, 0.02, 0.01),
        ("residual_from_draft", "gaussian"): lambda p: True,
        ("low_precision_log_density", "gaussian"): lambda p: True,
        ("single_axis_shift", "standard_normal"): lambda p: p in (0.15, 0.05, 0.02),
    }
    chosen = []
    for point in FAMILY_GRID:
        rule = wanted.get((point.family, point.case_args[0]))
        if rule is None or not rule(point.parameter):
            continue
        if point.family == "low_precision_log_density" and point.case_args[1].get("d") == 64:
            continue  # d = 64 points are the slowest; the d = 1 points carry the curve
        chosen.append(point)
    return chosen


POWER_POINTS: list[GridPoint] = _select()
"""The points of the power curves (see ``_select``)."""


def point_label(index: int) -> str:
    """``"p<index>"``: the key of a point in the results file."""
    return f"p{index}"


def describe(point: GridPoint) -> str:
    """``family(parameter) on builder(kwargs)``."""
    kwargs = ", ".join(f"{k}={v}" for k, v in point.case_args[1].items())
    return f"{point.family}({point.parameter}) on {point.case_args[0]}({kwargs})"


@functools.cache
def _built(index: int) -> tuple[Any, Any]:
    point = POWER_POINTS[index]
    return point.sampler(), point.case()


def run_point(workload: str, tier: str, seed: int, n: int | None = None) -> dict[str, Any]:
    """One task on a Dask worker: ``tier == "effect"`` measures the point's effect size,
    otherwise one ``verify`` run at its defaults (or ``n`` when given, for tests)."""
    from cspd_ref.verify import verify

    index = int(workload[1:])
    sampler, case = _built(index)
    start = time.perf_counter()
    if tier == "effect":
        effect = effect_size(sampler, case, n_ref=n or EFFECT_N_REF, seed=EFFECT_SEED)
        return {"workload": workload, "tier": tier, "seed": seed,
                "seconds": round(time.perf_counter() - start, 3), "ks": effect.ks,
                "ks_direction": effect.ks_direction, "ks_noise": effect.ks_noise,
                "atom_mass": effect.atom_mass,
                "acceptance_deviation": effect.acceptance_deviation}
    verdict = verify(sampler, case, seed=seed, n=n)
    return {"workload": workload, "tier": tier, "seed": seed, "n": verdict.n,
            "seconds": round(time.perf_counter() - start, 3),
            "detected": not verdict.equivalent,
            "families": sorted({c.family for c in verdict.failed}),
            "min_adjusted_pvalue": verdict.min_adjusted_pvalue}


def detection_table(results: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per point index: runs, detections, the check families that fired, the effect."""
    table: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"runs": 0, "detected": 0, "families": defaultdict(int), "effect": None})
    for record in results:
        index = int(str(record["workload"])[1:])
        row = table[index]
        if record["tier"] == "effect":
            row["effect"] = record
            continue
        row["runs"] += 1
        row["detected"] += int(bool(record["detected"]))
        for family in record["families"]:
            row["families"][family] += 1
    return table


def summarise(results: Sequence[Mapping[str, Any]], figure: Path | None,
              context: Sequence[str], link: str | None) -> str:
    """The Markdown report (and the figure, when ``figure`` is given)."""
    table = detection_table(results)
    lines = ["# cspd power curves: detection of mutant families by the default verify", ""]
    lines += [f"- {line}" for line in context]
    lines += ["", "Effect: the largest KS distance between the member's output and the target "
              "along the directions the case determines (axes, draft-target directions), "
              f"measured from {EFFECT_N_REF:,} samples (± DKW noise at 99%), the largest atom "
              "(share of rows on one value), and the acceptance-rate deviation from 1 - TV. "
              "Detected: verify at its defaults (full tier, alpha = 1e-4) says NOT EQUIVALENT; "
              "interval: exact Clopper-Pearson 95%.", "",
              "| point | member | KS effect (± noise) | atom | acceptance dev. | detected | "
              "95% CI | checks that fired (runs) |", "|---|---|---|---|---|---|---|---|"]
    by_family: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    reach: dict[str, tuple[float, str, float]] = {}
    for index in sorted(table):
        row = table[index]
        point = POWER_POINTS[index]
        effect = row["effect"]
        runs, hits = row["runs"], row["detected"]
        if runs == 0:
            continue
        lo, hi = stats.binomtest(hits, runs).proportion_ci(0.95, method="exact")
        fired = ", ".join(f"{f} ({c})" for f, c in sorted(row["families"].items(),
                                                          key=lambda kv: -kv[1]))
        if effect is not None:
            ks, noise = float(effect["ks"]), float(effect["ks_noise"])
            atom = float(effect["atom_mass"])
            dev = effect["acceptance_deviation"]
            effect_text = f"{ks:.4f} ± {noise:.4f}"
            dev_text = "-" if dev is None else f"{float(dev):+.4f}"
            size = max(ks, atom)
            by_family[point.family].append((size, hits / runs, lo, hi))
            if hits == runs and size < reach.get(point.family, (1.0, "", 0.0))[0]:
                reach[point.family] = (size, point_label(index), lo)
        else:
            effect_text, dev_text, atom = "not measured", "-", float("nan")
        lines.append(f"| {point_label(index)} | {describe(point)} | {effect_text} | "
                     f"{atom:.2%} | {dev_text} | {hits}/{runs} | [{lo:.2f}, {hi:.2f}] | "
                     f"{fired} |")
    lines += ["", "## Smallest measured effect that every run detected", "",
              "| family | effect (max of KS distance and atom mass) | point | lower 95% bound of "
              "the detection rate |", "|---|---|---|---|"]
    for family in sorted(by_family):
        if family in reach:
            size, label, lower = reach[family]
            lines.append(f"| {family} | {size:.4f} | {label} | {lower:.2f} |")
        else:
            lines.append(f"| {family} | none of the measured points | | |")
    if figure is not None and by_family:
        write_figure(by_family, figure)
        lines += ["", f"![detection probability against effect size]({link or figure})", ""]
    return "\n".join(lines) + "\n"


def write_figure(by_family: Mapping[str, list[tuple[float, float, float, float]]],
                 path: Path) -> None:
    """Detection rate (with its 95% interval) against effect size, one line per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for family, points in sorted(by_family.items()):
        points = sorted(points)
        x = [p[0] for p in points]
        y = [p[1] for p in points]
        err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=family)
    ax.axvline(0.005, color="grey", linestyle=":", label="KS distance 0.005")
    ax.set_xscale("log")
    ax.set_xlabel("effect size (max of KS distance along the case's directions, atom mass)")
    ax.set_ylabel("detection rate of the default verify")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_points(text: str) -> list[int]:
    """``"all"`` or a comma list of indices into ``POWER_POINTS``."""
    if text.strip() == "all":
        return list(range(len(POWER_POINTS)))
    indices = [int(t) for t in text.split(",") if t.strip()]
    bad = [i for i in indices if not 0 <= i < len(POWER_POINTS)]
    if bad or not indices:
        raise SystemExit(f"--points: expected indices in 0..{len(POWER_POINTS) - 1}, got {text!r}")
    return indices


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m property_tests.calibrate_power [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m property_tests.calibrate_power",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="verify runs per point (default 50)")
    parser.add_argument("--points", default="all", help="indices into POWER_POINTS (default all)")
    parser.add_argument("--seed0", type=int, default=5000)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)  # tests only
    args = parser.parse_args(argv)
    indices = parse_points(args.points)
    done = {record_key(r) for r in load_results(args.results)}
    tasks = [(point_label(i), "effect", 0) for i in indices]
    tasks += [(point_label(i), "full", args.seed0 + r) for r in range(args.runs) for i in indices]
    todo = [t for t in tasks if t not in done]
    print(f"{len(todo)} tasks to do, {len(tasks) - len(todo)} already in {args.results}",
          file=sys.stderr)
    start = time.perf_counter()
    failures, seen = 0, 0
    if todo:
        failures, seen = execute(todo, args.results, scheduler=args.scheduler,
                                 workers=args.workers, n=args.n, task=run_point,
                                 progress=not args.no_progress)
    wall = time.perf_counter() - start
    labels = {point_label(i) for i in indices}
    results = [r for r in load_results(args.results) if r["workload"] in labels]
    command = " ".join(["python -m property_tests.calibrate_power", *map(shlex.quote, argv)])
    where = (f"scheduler {args.scheduler} ({seen} workers)" if args.scheduler
             else f"LocalCluster, {args.workers} worker processes x 1 thread")
    context = [f"command: `{command}`", f"workers: {where}",
               f"wall time of this invocation: {wall:.0f} s ({len(todo)} tasks, {failures} "
               "failed)",
               f"runs per point: {args.runs} (seeds {args.seed0}..{args.seed0 + args.runs - 1})",
               f"results: `{args.results.as_posix()}`"]
    figure = args.out.parent / "power" / "power_curves.png"
    text = summarise(results, figure, context, "power/power_curves.png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
