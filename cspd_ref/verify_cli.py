"""``cspd verify``: run the statistical battery on a sampler and write a report (SPEC §5).

Usage::

    cspd verify package.module:function [--case demo|equal-scale|mixture-1d|all]
                [--tier full|quick] [--n N]
                [--seed S] [--alpha A] [--out DIR] [--title T] [--no-timestamp]
                [--no-figures] [--quiet]

The sampler follows the SPEC §5 contract ``sampler(case, n, seed) -> (n, d)`` (``module:factory()``
calls a factory that returns it). Each chosen case is run through ``cspd_ref.verify.verify`` at
``alpha / number of cases`` (Bonferroni across cases, ``cspd_ref.verify.iter_verify``) with seed
``seed + i`` for the i-th case, so the whole command calls an exact sampler not equivalent with
probability at most ``alpha``. A report (Markdown, HTML, JSON, PNGs) is written to ``--out``.

Exit status: 0 when every case is equivalent, 1 when at least one is not, 2 on a usage error
(bad option, a sampler spec that cannot be imported) or when the sampler cannot be run (it
raises, or returns the wrong shape).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cspd_ref.cases import Case, demo_case, equal_scale_gaussian_case, mixture_1d_case

DEFAULT_OUT = "reports/out"
CASE_CHOICES = ("demo", "equal-scale", "mixture-1d", "all")


BUILTIN_CASES: dict[str, Callable[[], Case]] = {
    "demo": demo_case,
    "equal-scale": lambda: equal_scale_gaussian_case(4, 1.0),
    "mixture-1d": mixture_1d_case,
}
"""The built-in cases by ``--case`` name (``all`` runs them in this order)."""


def builtin_cases(name: str) -> list[Case]:
    """The cases selected by ``--case name``.

    Raises:
        ValueError: for an unknown name.
    """
    if name == "all":
        return [make() for make in BUILTIN_CASES.values()]
    if name not in BUILTIN_CASES:
        raise ValueError(f"case: expected one of {', '.join(CASE_CHOICES)}, got {name!r}")
    return [BUILTIN_CASES[name]()]


def sample_size(text: str) -> int:
    """``--n``: an integer >= 2."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {value}")
    return value


def level(text: str) -> float:
    """``--alpha``: a float in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cspd verify``."""
    from cspd_ref.verify import DEFAULT_ALPHA

    parser.description = ("Run the statistical battery on a sampler following the SPEC §5 "
                          "contract sampler(case, n, seed) -> (n, d) and write a "
                          "distribution-equivalence report. Exit status 0: every case "
                          "equivalent; 1: some case not; 2: usage error or the sampler could "
                          "not be run.")
    parser.add_argument("sampler", help="package.module:function (or package.module:factory() "
                                        "returning the sampler)")
    parser.add_argument("--case", choices=CASE_CHOICES, default="all",
                        help="built-in case(s) to run (default all)")
    parser.add_argument("--tier", choices=("full", "quick"), default="full",
                        help="planned sizes: full (default; a KS distance of 0.005 along any "
                             "tested direction is caught with probability 0.99, ~10^6 "
                             "tokens) or quick (0.03, ~10^4 tokens)")
    parser.add_argument("--n", type=sample_size, default=None,
                        help="samples per case (overrides --tier; verify refuses an n too "
                             "small for any claim)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first case; case i gets seed + i (default 0)")
    parser.add_argument("--alpha", type=level, default=DEFAULT_ALPHA,
                        help=f"family-wise false-alarm probability of the whole command "
                             f"(default {DEFAULT_ALPHA:g})")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"report folder (default {DEFAULT_OUT})")
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--no-timestamp", action="store_true",
                        help="leave the 'generated' time out of the report (reproducible output)")
    parser.add_argument("--no-figures", action="store_true",
                        help="skip the PNG figures (faster; Markdown, HTML and JSON only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def command_line(args: argparse.Namespace) -> str:
    """The canonical ``cspd verify`` command that reproduces this run."""
    parts = ["cspd", "verify", args.sampler, "--case", args.case, "--tier", args.tier]
    if args.n is not None:
        parts += ["--n", str(args.n)]
    parts += ["--seed", str(args.seed), "--alpha", f"{args.alpha:g}", "--out", str(args.out)]
    if args.title:
        parts += ["--title", args.title]
    if args.no_timestamp:
        parts.append("--no-timestamp")
    if args.no_figures:
        parts.append("--no-figures")
    return shlex.join(parts)


def run(args: argparse.Namespace, load: Callable[[str], Callable[..., Any]]) -> int:
    """Execute ``cspd verify``; returns the exit status (0, 1 or 2, see the module docstring)."""
    from tqdm import tqdm

    from cspd_ref.report import write_report
    from cspd_ref.verify import Verdict, iter_verify

    try:
        sampler = load(args.sampler)
    except SystemExit as exc:  # load_callable reports bad specs this way
        if exc.code not in (None, 0):
            print(exc.code if isinstance(exc.code, str) else
                  f"cspd verify: cannot load {args.sampler!r}", file=sys.stderr)
        return 2
    cases = builtin_cases(args.case)
    verdicts: list[Verdict] = []
    started = time.perf_counter()
    bar = tqdm(iter_verify(sampler, cases, seed=args.seed, alpha=args.alpha, n=args.n,
                           tier=args.tier, keep_output=True),
               total=len(cases), desc="cspd verify", unit="case", disable=args.quiet,
               file=sys.stderr)
    try:
        for verdict in bar:
            verdicts.append(verdict)
            tqdm.write(verdict.summary(), file=sys.stdout)
    except Exception as exc:  # the sampler (or its output) is at fault: report and stop
        bar.close()
        traceback.print_exc(file=sys.stderr)
        print(f"cspd verify: the sampler could not be run on case {cases[len(verdicts)].name!r}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    bar.close()
    elapsed = time.perf_counter() - started
    out = Path(args.out)
    paths = write_report(verdicts, cases, out,
                         title=args.title or f"Distribution-equivalence report: {args.sampler}",
                         sampler_name=args.sampler, command=command_line(args),
                         generated=not args.no_timestamp, alpha=args.alpha,
                         figures=not args.no_figures)
    equivalent = all(v.equivalent for v in verdicts)
    failed = sum(not v.equivalent for v in verdicts)
    print(f"overall: {'EQUIVALENT' if equivalent else 'NOT EQUIVALENT'} "
          f"({len(verdicts) - failed} of {len(verdicts)} case(s) equivalent, family-wise "
          f"alpha={args.alpha:g}, {elapsed:.1f} s)")
    print(f"report: {paths.markdown}")
    print(f"        {paths.html}")
    print(f"        {paths.json}")
    return 0 if equivalent else 1
