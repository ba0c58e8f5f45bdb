"""The run loop shared by ``cspd verify`` and ``cspd report``.

Case ``i`` of ``m`` is judged by ``cspd_ref.verify.verify`` at ``alpha / m`` (Bonferroni across
cases, so an exact sampler is called not equivalent by the whole command with probability at
most ``alpha``) with seed ``seed + i``. A case that cannot be decided — the sampler raises,
breaks the output contract, or runs past ``--timeout`` — ends the run: the report written is
partial (it lists the case and the reason) and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cspd_ref.cli.deadline import CaseTimeout, time_limit
from cspd_ref.cli.errors import (
    EXIT_EQUIVALENT,
    EXIT_NOT_EQUIVALENT,
    EXIT_UNDECIDED,
    CliError,
    one_line,
)

DEFAULT_OUT = "reports/out"


def positive_seconds(text: str) -> float:
    """``--timeout``: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def level(text: str) -> float:
    """``--alpha``: a float in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {value:g}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``cspd verify`` and ``cspd report``."""
    from cspd_ref.verify import DEFAULT_ALPHA

    parser.add_argument("--tier", choices=("full", "quick"), default="full",
                        help="planned sizes: full (default; a KS distance of 0.005 along any "
                             "tested direction is caught with probability 0.99, ~10^6 tokens) "
                             "or quick (0.03, ~10^4 tokens)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first case; case i gets seed + i (default 0)")
    parser.add_argument("--alpha", type=level, default=DEFAULT_ALPHA,
                        help=f"family-wise false-alarm probability of the whole command "
                             f"(default {DEFAULT_ALPHA:g})")
    parser.add_argument("--timeout", type=positive_seconds, default=None, metavar="SECONDS",
                        help="per-case limit: a case that runs longer ends the run with exit "
                             "status 2 and a partial report")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--json", action="store_true",
                        help="write the verdict document (report.json's content) to stdout; the "
                             "human-readable lines go to stderr")
    parser.add_argument("--no-timestamp", action="store_true",
                        help="leave the 'generated' time out of the report (reproducible)")
    parser.add_argument("--no-figures", action="store_true",
                        help="skip the PNG figures (faster; Markdown, HTML and JSON only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_options(args: argparse.Namespace) -> list[str]:
    """The shared options of a run, as command-line words, for the report's command line."""
    parts = ["--seed", str(args.seed), "--alpha", f"{args.alpha:g}", "--out", str(args.out)]
    if args.title:
        parts += ["--title", args.title]
    if args.timeout is not None:
        parts += ["--timeout", f"{args.timeout:g}"]
    if args.no_timestamp:
        parts.append("--no-timestamp")
    if args.no_figures:
        parts.append("--no-figures")
    return parts


@dataclass
class RunState:
    """What a run has decided so far (read by the watchdog if a case cannot be interrupted)."""

    cases: list[Any]
    verdicts: list[Any] = field(default_factory=list)
    unfinished: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RunSpec:
    """How to run and report: the sampler, its name in the report, the command line."""

    sampler: Callable[..., Any]
    sampler_name: str
    command: str
    n: int | None = None


def check_sample_size(cases: Sequence[Any], n: int | None, alpha: float, tier: str) -> None:
    """Refuse an explicit ``--n`` too small for any claim before any sampler runs.

    Raises:
        CliError: naming the smallest admissible n.
    """
    if n is None:
        return
    from cspd_ref.verify import DEFAULT_PROJECTIONS, TIERS, minimum_sample_size, plan_for

    per_case = alpha / max(1, len(cases))
    for case in cases:
        smallest = minimum_sample_size(plan_for(case, DEFAULT_PROJECTIONS, TIERS[tier]), per_case)
        if n < smallest:
            raise CliError(f"--n {n} is too small for any claim on case {case.name!r} at "
                           f"alpha {per_case:g}: use --n {smallest} or more")


def case_name(case: Any) -> str:
    """A case's name for messages."""
    return str(getattr(case, "name", type(case).__name__))


def emit(line: str, args: argparse.Namespace, bar: Any = None) -> None:
    """A human-readable line: stdout, or stderr when stdout carries ``--json``."""
    stream = sys.stderr if args.json else sys.stdout
    if bar is not None:
        bar.write(line, file=stream)
    else:
        print(line, file=stream, flush=True)


def verdict_table(verdicts: Sequence[Any], cases: Sequence[Any]) -> str:
    """A plain-text table: one row per case with its size, checks, what it could see and its
    verdict."""
    from cspd_ref.report.render import describe_case

    header = ("case", "kind", "n", "checks", "detectable KS", "min adj. p", "verdict")
    rows = [header]
    for verdict, case in zip(verdicts, cases, strict=False):
        rows.append((verdict.case_name, describe_case(case)[0], str(verdict.n),
                     str(len(verdict.checks)), f"{verdict.detectable_distance:.4f}",
                     f"{verdict.min_adjusted_pvalue:.3g}",
                     "EQUIVALENT" if verdict.equivalent else "NOT EQUIVALENT"))
    widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_partial_or_full(state: RunState, spec: RunSpec, args: argparse.Namespace,
                          alpha: float) -> Any:
    """Write the report of what was decided (and what was not); returns its paths."""
    from cspd_ref.report import write_report

    done = state.cases[:len(state.verdicts)]
    return write_report(state.verdicts, done, Path(args.out),
                        title=args.title or f"Distribution-equivalence report: "
                                            f"{spec.sampler_name}",
                        sampler_name=spec.sampler_name, command=spec.command,
                        generated=not args.no_timestamp, alpha=alpha,
                        figures=not args.no_figures, unfinished=state.unfinished)


def print_json(paths: Any) -> None:
    """The verdict document on stdout."""
    doc = json.loads(Path(paths.json).read_text(encoding="utf-8"))
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def run_cases(spec: RunSpec, cases: Sequence[Any], args: argparse.Namespace, prog: str) -> int:
    """Verify ``spec.sampler`` on ``cases``, print, write the report; return the exit status."""
    from tqdm import tqdm

    from cspd_ref.verify import verify

    check_sample_size(cases, spec.n, args.alpha, args.tier)
    state = RunState(cases=list(cases))
    per_case = args.alpha / max(1, len(cases))
    show_bar = not args.quiet and sys.stderr.isatty()
    bar = tqdm(total=len(cases), desc=prog, unit="case", disable=not show_bar, file=sys.stderr)
    started = time.perf_counter()

    def stuck() -> None:  # the watchdog: the sampler ignored the interruption
        name = case_name(state.cases[len(state.verdicts)])
        reason = (f"did not return within --timeout {args.timeout:g} s and could not be "
                  "interrupted (it is running code outside Python)")
        state.unfinished.append((name, reason))
        try:
            write_partial_or_full(state, spec, args, args.alpha)
        finally:
            print(f"{prog}: case {name!r} {reason}; partial report in {args.out}",
                  file=sys.stderr, flush=True)
            os._exit(EXIT_UNDECIDED)

    for i, case in enumerate(cases):
        name = case_name(case)
        bar.set_postfix_str(name)
        try:
            with time_limit(args.timeout, "the sampler and the battery together", stuck):
                verdict = verify(spec.sampler, case, seed=args.seed + i, alpha=per_case,
                                 n=spec.n, tier=args.tier, keep_output=not args.no_figures)
        except CliError:
            raise
        except (Exception, CaseTimeout) as exc:
            bar.close()
            if getattr(args, "debug", False):
                traceback.print_exc(file=sys.stderr)
            reason = str(exc) if isinstance(exc, CaseTimeout) else (
                f"the sampler could not be judged: {one_line(exc)}")
            state.unfinished.append((name, reason))
            paths = write_partial_or_full(state, spec, args, args.alpha)
            if args.json:
                print_json(paths)
            print(f"{prog}: case {name!r}: {reason}; partial report in {paths.markdown}",
                  file=sys.stderr, flush=True)
            return EXIT_UNDECIDED
        state.verdicts.append(verdict)
        bar.update(1)
        emit(verdict.summary(), args, bar if show_bar else None)
    bar.close()
    elapsed = time.perf_counter() - started
    paths = write_partial_or_full(state, spec, args, args.alpha)
    equivalent = all(v.equivalent for v in state.verdicts)
    failed = sum(not v.equivalent for v in state.verdicts)
    emit("", args)
    emit(verdict_table(state.verdicts, state.cases), args)
    emit(f"overall: {'EQUIVALENT' if equivalent else 'NOT EQUIVALENT'} "
         f"({len(state.verdicts) - failed} of {len(state.verdicts)} case(s) equivalent, "
         f"family-wise alpha={args.alpha:g}, {elapsed:.1f} s)", args)
    emit(f"report: {paths.markdown}", args)
    emit(f"        {paths.html}", args)
    emit(f"        {paths.json}", args)
    if args.json:
        print_json(paths)
    return EXIT_EQUIVALENT if equivalent else EXIT_NOT_EQUIVALENT
