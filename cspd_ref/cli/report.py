"""``cspd report``: the distribution-equivalence report of an implementation.

Usage::

    cspd report [--impl gpu|ref] [--device cpu|cuda] [--dtype float32|float64]
                [--tier full|quick] [--seed S] [--alpha A] [--timeout SECONDS] [--out DIR]
                [--json] [--no-figures] [--no-timestamp] [--quiet] [--debug]

Runs the battery on ``gpu_impl`` (default, on the CPU in float32) or on the float64 reference
over the built-in token, diffusion and AR cases (``REPORT_CASES``), prints a verdict table and
writes Markdown, HTML, JSON and figures to ``--out``. Exit status: 0 every case equivalent, 1
some case not, 2 could not decide.
"""

from __future__ import annotations

import argparse
import shlex

from cspd_ref.cli.errors import CliError
from cspd_ref.cli.session import RunSpec, add_run_arguments, run_cases, run_options

REPORT_CASES = ("demo", "equal-scale", "mixture-1d", "linear-chain", "ar-mixture")
"""Token cases (a mixture, the reflection case, 1-D), a linear-chain diffusion head, AR."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cspd report``."""
    parser.description = __doc__.split("\n\n", 1)[0] if __doc__ else None
    parser.add_argument("--impl", choices=("gpu", "ref"), default="gpu",
                        help="gpu_impl (default) or the float64 reference cspd_ref")
    parser.add_argument("--device", default="cpu", help="torch device for --impl gpu "
                                                        "(default cpu)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="gpu_impl's dtype (default float32)")
    add_run_arguments(parser)


def command_line(args: argparse.Namespace) -> str:
    """The ``cspd report`` command that reproduces this run."""
    parts = ["cspd", "report", "--impl", args.impl]
    if args.impl == "gpu":
        parts += ["--device", args.device, "--dtype", args.dtype]
    return shlex.join([*parts, "--tier", args.tier, *run_options(args)])


def run(args: argparse.Namespace) -> int:
    """Execute ``cspd report``; returns the exit status."""
    from cspd_ref.builtin_cases import builtin_case
    from cspd_ref.report.implementations import implementation_sampler

    try:
        sampler = implementation_sampler(args.impl, args.device, args.dtype)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    name = (f"gpu_impl (device {args.device}, {args.dtype})" if args.impl == "gpu"
            else "cspd_ref (float64 reference)")
    spec = RunSpec(sampler=sampler, sampler_name=name, command=command_line(args))
    cases = [builtin_case(case) for case in REPORT_CASES]
    return run_cases(spec, cases, args, "cspd report")
