"""The false-alarm rate at scale: p-value distributions of exact samplers, measured on Dask.

``python -m property_tests.calibrate_pvalues --runs 1000 --tier both`` (or
``python -m property_tests.calibrate pvalues ...``) runs ``verify`` on every exact reference
sampler of :data:`WORKLOADS` ``--runs`` times per tier with fresh seeds, on a Dask cluster: an
existing one (``--scheduler ADDRESS``) or a ``distributed.LocalCluster`` of ``--workers``
single-threaded processes. Each task is one ``(workload, tier, seed)``; its result (the check
p-values, the verdict's smallest Holm-adjusted p-value, ``n`` and the seconds it took) is
appended to ``--results`` as one JSON line as soon as it arrives, and a later invocation skips
the tasks already in that file, so a killed run resumes where it stopped.

The summary (:func:`summarise`) groups the p-values by check *family* (the check name without
its ``[i]`` suffix) × workload × tier, plus the call-level verdict (``min_adjusted_pvalue``).
Under the null (an exact sampler) every valid p-value is super-uniform, ``P(p <= t) <= t`` for
all ``t``, and so is Holm's smallest adjusted p-value. For each group it reports the flag rates
at 0.05 / 0.01 / 0.001 with exact Clopper–Pearson 95% intervals, the smallest p-value, and a
one-sided KS test of super-uniformity: ``scipy.stats.kstest(p, "uniform",
alternative="greater")``, whose null (SciPy's docs) is ``F(t) <= t`` for all ``t`` and whose
alternative is ``F(t) > t`` for at least one ``t`` — the p-values' CDF lies above the diagonal
somewhere, i.e. too many small p-values. It writes ECDF-vs-diagonal figures per family.

Dask (the ``distributed`` package) is an optional extra: ``pip install -e ".[distributed]"``.
Workers must be able to import ``cspd_ref`` and ``property_tests`` (start them in the
repository root with the project installed); tasks name their workload, they do not ship it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cspd_ref.stats import holm
from cspd_ref.verify import DEFAULT_ALPHA

TIERS = ("quick", "full")
LEVELS = (0.05, 0.01, 0.001)
"""Levels at which the flag rate P(p <= level) is estimated (each must stay <= level)."""
ALERT_ALPHA = 0.01
"""Family-wise level of the alerts: Holm over every group's KS and binomial tests."""
VERIFY_ALPHA = DEFAULT_ALPHA
"""``alpha`` passed to ``verify``: verify's own default, so that the tier's planned ``n`` is
the one users get (the p-values themselves do not depend on alpha)."""
VERDICT_FAMILY = "verdict (min Holm-adjusted p)"
DEFAULT_RESULTS = Path("reports/calibration/pvalues.jsonl")
DEFAULT_OUT = Path("reports/calibration.md")
EXTRA_HINT = ('the pvalues calibration needs Dask: pip install -e ".[distributed]" '
              '(or pip install "distributed>=2024.1")')

Key = tuple[str, str, int]
Record = dict[str, Any]


# --------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """An exact reference sampler on a fixed case.

    Attributes:
        name: a stable slug (the results file's key).
        label: a human-readable description.
        build: returns ``(sampler, case)``; called in the worker process.
        n: per-tier sample size override (``None``: ``verify``'s planned default).
    """

    name: str
    label: str
    build: Callable[[], tuple[Callable[..., Any], Any]]
    n: Mapping[str, int | None]


def _token_demo() -> tuple[Callable[..., Any], Any]:
    from cspd_ref.cases import demo_case
    from cspd_ref.samplers import token_sampler

    return token_sampler("auto"), demo_case()


def _token_1d() -> tuple[Callable[..., Any], Any]:
    from cspd_ref.cases import mixture_1d_case
    from cspd_ref.samplers import token_sampler

    return token_sampler("batched"), mixture_1d_case()


def _reflection() -> tuple[Callable[..., Any], Any]:
    from cspd_ref.cases import equal_scale_gaussian_case
    from cspd_ref.samplers import token_sampler

    return token_sampler("auto"), equal_scale_gaussian_case(4, 1.0)


def _diffusion_linear(kind: str) -> Callable[[], tuple[Callable[..., Any], Any]]:
    def build() -> tuple[Callable[..., Any], Any]:
        from cspd_ref.mutants.catalog import linear_diffusion_case
        from cspd_ref.samplers import diffusion_sampler

        return diffusion_sampler(kind), linear_diffusion_case()

    return build


def _diffusion_nonlinear() -> tuple[Callable[..., Any], Any]:
    from cspd_ref.cases import DiffusionCase
    from cspd_ref.samplers import diffusion_sampler
    from cspd_ref.strategies import tanh_mlp_chain

    steps, dim, hidden, seed = 3, 2, 16, 20240
    target = tanh_mlp_chain(steps, dim, hidden, rng=np.random.default_rng(seed))
    draft = tanh_mlp_chain(steps, dim, hidden, rng=np.random.default_rng(seed), perturbation=0.3)
    return diffusion_sampler("aligned"), DiffusionCase(draft, target,
                                                       name=f"mlp-chain-T{steps}-d{dim}")


def _ar() -> tuple[Callable[..., Any], Any]:
    from cspd_ref.mutants.catalog import ar_case
    from cspd_ref.samplers import ar_sampler

    return ar_sampler(gamma=2), ar_case()


DEFAULT_N: Mapping[str, int | None] = {"quick": None, "full": None}

WORKLOADS: tuple[Workload, ...] = (
    Workload("token-demo", "token auto, demo 2-D mixture", _token_demo, DEFAULT_N),
    Workload("token-1d", "token batched, 1-D mixture", _token_1d, DEFAULT_N),
    Workload("reflection-d4", "token auto (reflection), equal-scale Gaussians d=4", _reflection,
             DEFAULT_N),
    Workload("diffusion-linear-aligned", "diffusion aligned, linear chain T=4 d=2",
             _diffusion_linear("aligned"), DEFAULT_N),
    Workload("diffusion-linear-joint", "diffusion joint, linear chain T=4 d=2",
             _diffusion_linear("joint"), DEFAULT_N),
    Workload("diffusion-nonlinear-aligned", "diffusion aligned, tanh-MLP chain T=3 d=2 "
             "(two-sample checks)", _diffusion_nonlinear, DEFAULT_N),
    Workload("ar-gamma2", "AR gamma=2, L=6 d=2", _ar, {"quick": 2000, "full": None}),
)
WORKLOAD_BY_NAME: Mapping[str, Workload] = {w.name: w for w in WORKLOADS}


@functools.cache
def _built(name: str) -> tuple[Callable[..., Any], Any]:
    """The workload's ``(sampler, case)``, built once per worker process."""
    return WORKLOAD_BY_NAME[name].build()


def run_task(workload: str, tier: str, seed: int, n: int | None = None) -> Record:
    """One ``verify`` call of an exact sampler (runs on a Dask worker).

    Returns a JSON-ready dict: ``workload``, ``tier``, ``seed``, ``n``, ``seconds``,
    ``min_adjusted_pvalue`` and ``pvalues`` ({check name: p-value}); ``n`` given here overrides
    the workload's own choice.
    """
    from cspd_ref.verify import verify

    sampler, case = _built(workload)
    if n is None:
        n = WORKLOAD_BY_NAME[workload].n.get(tier)
    start = time.perf_counter()
    verdict = verify(sampler, case, seed=seed, alpha=VERIFY_ALPHA, tier=tier, n=n)
    seconds = time.perf_counter() - start
    pvalues: dict[str, float] = {}
    for check in verdict.checks:
        name, k = check.name, 1
        while name in pvalues:  # a repeated name keeps its family: "atoms" -> "atoms[#2]"
            k += 1
            name = f"{check.name}[#{k}]"
        pvalues[name] = float(check.pvalue)
    return {"workload": workload, "tier": tier, "seed": int(seed), "n": int(verdict.n),
            "seconds": round(seconds, 4),
            "min_adjusted_pvalue": float(verdict.min_adjusted_pvalue), "pvalues": pvalues}


# --------------------------------------------------------------------------- results file
def record_key(record: Mapping[str, Any]) -> Key:
    """The ``(workload, tier, seed)`` a result belongs to."""
    return (str(record["workload"]), str(record["tier"]), int(record["seed"]))


def load_results(path: Path) -> list[Record]:
    """The records of a JSON-lines results file (none if it does not exist). A line that does
    not parse (a run killed mid-write) is skipped with a warning; its task is redone."""
    if not path.exists():
        return []
    records: list[Record] = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record_key(record)
        except (ValueError, KeyError, TypeError):
            print(f"warning: {path}:{i}: unreadable line skipped", file=sys.stderr)
            continue
        records.append(record)
    return records


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with path.open("a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()


def _terminate_partial_line(path: Path) -> None:
    """End a last line that a killed run left without its newline."""
    if path.exists() and path.stat().st_size:
        with path.open("rb") as fh:
            fh.seek(-1, 2)
            last = fh.read(1)
        if last != b"\n":
            with path.open("a") as fh:
                fh.write("\n")


def planned_tasks(workloads: Sequence[str], tiers: Sequence[str], runs: int,
                  seed0: int) -> list[Key]:
    """Every ``(workload, tier, seed)``, seeds ``seed0 .. seed0 + runs - 1``: tier by tier
    (quick first), the workloads interleaved so an interrupted run covers them evenly."""
    return [(w, t, seed0 + r) for t in tiers for r in range(runs) for w in workloads]


# --------------------------------------------------------------------------- Dask
def _import_distributed() -> Any:
    """``distributed``, or a clear error naming the extra."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(EXTRA_HINT) from exc
    return distributed


def execute(tasks: Sequence[Key], results_path: Path, *, scheduler: str | None, workers: int,
            batch: int | None = None, n: int | None = None, progress: bool = True,
            task: Callable[..., Record] | None = None) -> tuple[int, int]:
    """Run ``tasks`` on Dask, appending each result to ``results_path`` as it arrives.

    Each key ``(workload, tier, seed)`` runs ``task(workload, tier, seed, n)`` on a worker
    (default ``run_task``; ``calibrate_power`` passes its own).

    At most ``batch`` tasks (default: 4 per worker thread) are in flight at a time. A task that
    raises is reported on stderr and not recorded (a later invocation retries it). Returns
    ``(failed tasks, worker processes seen at the start)``.
    """
    from tqdm import tqdm

    distributed = _import_distributed()
    results_path.parent.mkdir(parents=True, exist_ok=True)
    _terminate_partial_line(results_path)
    cluster = None
    if scheduler:
        client = distributed.Client(scheduler)
    else:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    failures = 0
    nthreads: dict[str, int] = {}
    try:
        nthreads = dict(client.nthreads())
        threads = sum(nthreads.values()) or workers
        window = batch or max(1, 4 * threads)
        queue = iter(tasks)

        function = run_task if task is None else task

        def submit(key: Key) -> Any:
            workload, tier, seed = key
            return client.submit(function, workload, tier, seed, n, pure=False,
                                 key=f"cspd-pvalues-{workload}-{tier}-{seed}-{time.time_ns()}")

        first = [submit(k) for k in _take(queue, window)]
        pending = distributed.as_completed(first)
        with tqdm(total=len(tasks), desc="verify runs", unit="run", disable=not progress,
                  file=sys.stderr) as bar:
            for future in pending:
                try:
                    record = future.result()
                except Exception as exc:  # a failing task must not lose the others' results
                    failures += 1
                    print(f"error: task {future.key}: {type(exc).__name__}: {exc}",
                          file=sys.stderr)
                else:
                    append_record(results_path, record)
                finally:
                    future.release()
                bar.update(1)
                for key in _take(queue, 1):
                    pending.add(submit(key))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failures, len(nthreads)


def _take(iterator: Iterator[Key], count: int) -> list[Key]:
    """Up to ``count`` items from ``iterator``."""
    out: list[Key] = []
    for item in iterator:
        out.append(item)
        if len(out) >= count:
            break
    return out


# --------------------------------------------------------------------------- summary
def family(name: str) -> str:
    """A check's family: its name without a trailing ``[...]`` index."""
    return re.sub(r"\[[^\]]*\]$", "", name)


@dataclass(frozen=True)
class GroupStats:
    """Calibration statistics of one set of p-values (a family × workload × tier).

    Attributes:
        runs: verify calls contributing.
        count: p-values (``runs`` × checks of the family per call).
        flags: ``{level: (k, lo, hi)}``: ``k`` p-values <= level and the Clopper–Pearson 95%
            interval of ``P(p <= level)``.
        binom_p: ``{level: p}``: exact one-sided binomial test of ``P(p <= level) <= level``.
        min_p: the smallest p-value.
        ks_stat: the one-sided KS statistic ``D+ = sup_t (ECDF(t) - t)``.
        ks_p: its p-value (small: the p-values are not super-uniform).
    """

    runs: int
    count: int
    flags: Mapping[float, tuple[int, float, float]]
    binom_p: Mapping[float, float]
    min_p: float
    ks_stat: float
    ks_p: float


def group_stats(pvalues: Sequence[float] | np.ndarray, runs: int | None = None,
                levels: Sequence[float] = LEVELS) -> GroupStats:
    """Flag rates with exact intervals, the smallest p-value and the one-sided KS test of
    super-uniformity (null ``P(p <= t) <= t`` for all ``t``) of ``pvalues``."""
    from scipy import stats

    p = np.clip(np.asarray(pvalues, dtype=np.float64), 0.0, 1.0)
    if p.size == 0:
        raise ValueError("pvalues: empty")
    flags: dict[float, tuple[int, float, float]] = {}
    binom_p: dict[float, float] = {}
    for level in levels:
        k = int(np.count_nonzero(p <= level))
        test = stats.binomtest(k, int(p.size), level, alternative="greater")
        ci = stats.binomtest(k, int(p.size)).proportion_ci(0.95, method="exact")
        flags[level] = (k, float(ci.low), float(ci.high))
        binom_p[level] = float(test.pvalue)
    # alternative="greater": H0 F(t) <= t for all t, H1 F(t) > t somewhere (SciPy's Notes), with
    # F the p-values' CDF: it rejects when there are too many small p-values.
    ks = stats.kstest(p, "uniform", alternative="greater")
    return GroupStats(runs=int(p.size if runs is None else runs), count=int(p.size), flags=flags,
                      binom_p=binom_p, min_p=float(p.min()), ks_stat=float(ks.statistic),
                      ks_p=float(ks.pvalue))


def collect(results: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[list[float]]]:
    """``{(family, workload, tier): [p-values of run 1, of run 2, ...]}``, the verdict's
    ``min_adjusted_pvalue`` under :data:`VERDICT_FAMILY`."""
    groups: dict[tuple[str, str, str], list[list[float]]] = defaultdict(list)
    for record in results:
        workload, tier = str(record["workload"]), str(record["tier"])
        per_run: dict[str, list[float]] = defaultdict(list)
        for name, value in record.get("pvalues", {}).items():
            per_run[family(name)].append(float(value))
        per_run[VERDICT_FAMILY].append(float(record["min_adjusted_pvalue"]))
        for fam, values in per_run.items():
            groups[(fam, workload, tier)].append(values)
    return dict(groups)


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 or p == 0 else f"{p:.1e}"


def _family_order(fam: str) -> tuple[int, str]:
    return (1 if fam == VERDICT_FAMILY else 0, fam)


def summarise(results: Sequence[Mapping[str, Any]], figures_dir: Path | None = None,
              context: Sequence[str] = (), link_base: Path | None = None) -> str:
    """The Markdown calibration report of ``results`` (records as written by ``run_task``).

    One table row per check family × workload × tier (and per workload × tier for the verdict):
    runs, p-values, flag rates at :data:`LEVELS` with Clopper–Pearson 95% intervals, the smallest
    p-value, and the one-sided KS test of super-uniformity. A row is ALERT when one of its tests
    (KS and one-sided binomial at each level) rejects after Holm's adjustment over every test of
    the report at :data:`ALERT_ALPHA`. ``context`` lines (command, workers, wall time) head the
    report. When ``figures_dir`` is given, ECDF figures are written there and linked (relative
    to ``link_base``, the report's folder, when given).
    """
    groups = collect(results)
    lines = ["# cspd gate calibration: p-values of exact samplers", ""]
    lines += [f"- {line}" for line in context]
    if context:
        lines.append("")
    if not groups:
        return "\n".join([*lines, "No results yet."]) + "\n"

    runs_by: dict[tuple[str, str], int] = defaultdict(int)
    n_by: dict[tuple[str, str], set[int]] = defaultdict(set)
    seconds_by: dict[tuple[str, str], float] = defaultdict(float)
    for record in results:
        wt = (str(record["workload"]), str(record["tier"]))
        runs_by[wt] += 1
        n_by[wt].add(int(record["n"]))
        seconds_by[wt] += float(record.get("seconds", 0.0))
    lines += ["## Runs", "", "| workload | tier | runs | n | compute seconds (sum) |",
              "|---|---|---|---|---|"]
    for (w, t), runs in sorted(runs_by.items()):
        ns = ", ".join(str(v) for v in sorted(n_by[(w, t)]))
        lines.append(f"| {w} | {t} | {runs} | {ns} | {seconds_by[(w, t)]:.0f} |")
    lines.append("")

    stats_by: dict[tuple[str, str, str], GroupStats] = {}
    for key, per_run in groups.items():
        stats_by[key] = group_stats([p for run in per_run for p in run], runs=len(per_run))
    tests: list[tuple[tuple[str, str, str], float]] = []
    for key, s in stats_by.items():
        tests.append((key, s.ks_p))
        tests.extend((key, s.binom_p[level]) for level in LEVELS)
    adjusted = holm([p for _, p in tests])
    alerts = {key for (key, _), q in zip(tests, adjusted, strict=True) if q <= ALERT_ALPHA}

    lines += [
        "## Flag rates and super-uniformity",
        "",
        "Under the null (an exact sampler) each p-value is super-uniform: `P(p <= t) <= t`. "
        "`flag@t` is the fraction of p-values <= t with its exact Clopper-Pearson 95% interval. "
        "`KS p` is `scipy.stats.kstest(p, \"uniform\", alternative=\"greater\")`: null "
        "`F(t) <= t` for all t (F the p-values' CDF), alternative `F(t) > t` somewhere, i.e. "
        "too many small p-values; `D+ = sup_t (ECDF(t) - t)`. ALERT: the KS test or a one-sided "
        f"binomial test of a flag rate rejects at {ALERT_ALPHA:g} after Holm over all "
        f"{len(tests)} tests of this report.",
        "",
        "Caveat: a family with several checks per call (e.g. the projections) pools them; "
        "they share one call's samples, so they are not independent and the intervals and "
        "test p-values of such rows are somewhat optimistic (`p-values` > `runs`). The verdict "
        "rows (Holm's smallest adjusted p-value, one per call) have no such dependence.",
        "",
    ]
    header = ("| family | workload | tier | runs | p-values | "
              + " | ".join(f"flag@{level:g} [95% CI]" for level in LEVELS)
              + " | min p | D+ | KS p | |")
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for key in sorted(stats_by, key=lambda k: (_family_order(k[0]), k[1], k[2])):
        fam, w, t = key
        s = stats_by[key]
        cells = []
        for level in LEVELS:
            k, lo, hi = s.flags[level]
            cells.append(f"{k}/{s.count} = {k / s.count:.3g} [{lo:.2g}, {hi:.2g}]")
        mark = "**ALERT**" if key in alerts else "ok"
        lines.append(f"| {fam} | {w} | {t} | {s.runs} | {s.count} | " + " | ".join(cells)
                     + f" | {_fmt_p(s.min_p)} | {s.ks_stat:.3g} | {_fmt_p(s.ks_p)} | {mark} |")
    lines += ["", f"Alerts: {len(alerts)} of {len(stats_by)} rows."
              + (" " + ", ".join(f"{f} / {w} / {t}" for f, w, t in sorted(alerts))
                 if alerts else ""), ""]

    if figures_dir is not None:
        paths = write_figures(groups, figures_dir)
        lines += ["## Figures", "",
                  "ECDF of the p-values against the diagonal (a calibrated family stays on or "
                  "below it), log-log from 1e-4 to 1 and linear.", ""]
        for fam, path in paths.items():
            link = Path(os.path.relpath(path, link_base)) if link_base is not None else path
            lines += [f"### {fam}", "", f"![{fam}]({link.as_posix()})", ""]
        lines.append("")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "family"


def write_figures(groups: Mapping[tuple[str, str, str], list[list[float]]],
                  figures_dir: Path) -> dict[str, Path]:
    """One PNG per family: the ECDF of each workload × tier against the diagonal, on log–log
    axes (1e-4 to 1) and on linear axes. Returns ``{family: path}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures_dir.mkdir(parents=True, exist_ok=True)
    by_family: dict[str, dict[tuple[str, str], np.ndarray]] = defaultdict(dict)
    for (fam, w, t), per_run in groups.items():
        by_family[fam][(w, t)] = np.sort(np.array([p for run in per_run for p in run]))
    paths: dict[str, Path] = {}
    lo = 1e-4
    for fam in sorted(by_family, key=_family_order):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
        for (w, t), p in sorted(by_family[fam].items()):
            y = np.arange(1, p.size + 1) / p.size
            label = f"{w} / {t} ({p.size})"
            axes[0].step(np.concatenate([[lo * 1e-3], np.clip(p, lo * 1e-3, 1.0), [1.0]]),
                         np.concatenate([[0.0], y, [1.0]]), where="post", label=label)
            axes[1].step(np.concatenate([[0.0], p, [1.0]]), np.concatenate([[0.0], y, [1.0]]),
                         where="post", label=label)
        for ax, scale in zip(axes, ("log", "linear"), strict=True):
            grid = np.geomspace(lo, 1.0, 50) if scale == "log" else np.linspace(0.0, 1.0, 2)
            ax.plot(grid, grid, "k--", lw=1, label="P(p <= t) = t")
            ax.set_xscale(scale)
            ax.set_yscale(scale)
            low = lo if scale == "log" else 0.0
            ax.set_xlim(low, 1.0)
            ax.set_ylim(low, 1.0)
            ax.set_xlabel("t")
            ax.set_ylabel("fraction of p-values <= t")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_title(f"{fam}: log-log")
        axes[1].set_title(f"{fam}: linear")
        axes[1].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = figures_dir / f"ecdf_{_slug(fam)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths[fam] = path
    return paths


# --------------------------------------------------------------------------- CLI
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The options (added to ``parser`` when given, e.g. a ``calibrate pvalues`` subparser)."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="python -m property_tests.calibrate_pvalues", description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100,
                        help="verify runs per (workload, tier) (default 100)")
    parser.add_argument("--tier", choices=("quick", "full", "both"), default="quick")
    parser.add_argument("--workloads", default="all",
                        help="comma list of: " + ", ".join(WORKLOAD_BY_NAME) + " (default all)")
    parser.add_argument("--scheduler", default=None,
                        help="address of an existing Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2,
                        help="LocalCluster worker processes, one thread each (default 2)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"JSON-lines results, appended and resumed (default "
                             f"{DEFAULT_RESULTS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"Markdown report (default {DEFAULT_OUT})")
    parser.add_argument("--figures", type=Path, default=None,
                        help="figure folder (default: the results file's folder)")
    parser.add_argument("--seed0", type=int, default=1000, help="first seed (default 1000)")
    parser.add_argument("--batch", type=int, default=None,
                        help="tasks in flight at once (default 4 per worker thread)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)  # tests only
    return parser


def parse_workloads(text: str) -> list[str]:
    """``"all"`` or a comma list of workload names."""
    if text.strip() == "all":
        return list(WORKLOAD_BY_NAME)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in WORKLOAD_BY_NAME]
    if unknown or not names:
        raise SystemExit(f"--workloads: unknown {unknown or text!r}; choose from "
                         f"{', '.join(WORKLOAD_BY_NAME)}")
    return names


def run(args: argparse.Namespace, command: str | None = None) -> int:
    """Run the calibration described by parsed ``args`` and write the report."""
    if args.runs < 0 or args.workers < 1:
        raise SystemExit("--runs must be >= 0 and --workers >= 1")
    workloads = parse_workloads(args.workloads)
    tiers = list(TIERS) if args.tier == "both" else [args.tier]
    results_path: Path = args.results
    done = {record_key(r) for r in load_results(results_path)}
    tasks = [k for k in planned_tasks(workloads, tiers, args.runs, args.seed0) if k not in done]
    print(f"{len(tasks)} runs to do, {args.runs * len(workloads) * len(tiers) - len(tasks)} "
          f"already in {results_path}", file=sys.stderr)
    start = time.perf_counter()
    failures, seen = 0, 0
    if tasks:
        failures, seen = execute(tasks, results_path, scheduler=args.scheduler,
                                 workers=args.workers, batch=args.batch, n=args.n,
                                 progress=not args.no_progress)
    wall = time.perf_counter() - start
    wanted = set(workloads)
    results = [r for r in load_results(results_path)
               if r["workload"] in wanted and r["tier"] in tiers]
    where = (f"scheduler {args.scheduler} ({seen} workers at the start)" if args.scheduler
             else f"LocalCluster, {args.workers} worker processes x 1 thread")
    if not tasks:
        where += " (not started: nothing to run)"
    context = [
        f"command: `{command or 'python -m property_tests.calibrate_pvalues'}`",
        f"workers: {where}",
        f"wall time of this invocation: {wall:.0f} s ({len(tasks)} runs submitted, "
        f"{failures} failed)",
        f"runs requested per workload and tier: {args.runs} (seeds {args.seed0}.."
        f"{args.seed0 + args.runs - 1}), tiers: {', '.join(tiers)}; verify alpha = "
        f"{VERIFY_ALPHA:g}" + (f", n = {args.n}" if args.n else ""),
        f"results: `{results_path.as_posix()}` ({len(results)} runs summarised)",
    ]
    figures_dir = args.figures if args.figures is not None else results_path.parent
    text = summarise(results, figures_dir=figures_dir, context=context,
                     link_base=args.out.parent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"written: {args.out}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m property_tests.calibrate_pvalues [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = " ".join(["python -m property_tests.calibrate_pvalues",
                        *(shlex.quote(a) for a in argv)])
    return run(args, command)


if __name__ == "__main__":
    raise SystemExit(main())

