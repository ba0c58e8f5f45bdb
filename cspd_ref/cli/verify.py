"""``cspd verify``: run the statistical battery on a sampler and write a report.

Usage::

    cspd verify MODULE:FUNCTION [--case NAME|KIND|all|FILE.json ...] [--tier full|quick]
                [--n N] [--seed S] [--alpha A] [--timeout SECONDS] [--out DIR] [--json]
                [--title T] [--no-timestamp] [--no-figures] [--quiet] [--debug]

The sampler follows the contract ``sampler(case, n, seed)`` of ``docs/contract.md``
(``MODULE:factory()`` calls a factory that returns it; ``path/to/file.py:function`` loads a
file; ``MODULE`` is imported as ``python -m`` would, with the working directory importable).
``--case`` takes a built-in case name (``cspd_ref.builtin_cases``), a kind (``token``,
``diffusion``, ``ar``), ``all``, or a JSON case file (``cspd_ref.case_files``); it may be given
several times (default: the token cases).

Exit status: 0 every case equivalent, 1 some case not, 2 could not decide (one line on stderr).
"""

from __future__ import annotations

import argparse
import shlex

from cspd_ref.builtin_cases import AnyCase
from cspd_ref.cli.errors import CliError
from cspd_ref.cli.session import RunSpec, add_run_arguments, run_cases, run_options


def sample_size(text: str) -> int:
    """``--n``: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cspd verify``."""
    parser.description = __doc__.split("\n\n", 1)[0] if __doc__ else None
    parser.add_argument("sampler", help="MODULE:FUNCTION, MODULE:factory() or "
                                        "path/to/file.py:FUNCTION")
    parser.add_argument("--case", action="append", default=None, metavar="CASE",
                        help="a built-in case (demo, equal-scale, mixture-1d, linear-chain, "
                             "mlp-chain, ar-mixture), a kind (token, diffusion, ar), all, or a "
                             "JSON case file; repeatable (default: token)")
    parser.add_argument("--n", type=sample_size, default=None,
                        help="samples per case (overrides --tier; refused if too small for "
                             "any claim)")
    add_run_arguments(parser)


def selected_cases(selections: list[str] | None) -> list[AnyCase]:
    """The cases named by the ``--case`` options, in order, without repeats.

    Raises:
        CliError: an unknown name or a bad case file.
    """
    from cspd_ref.builtin_cases import builtin_case, builtin_case_names
    from cspd_ref.case_files import load_case_file

    cases: list[AnyCase] = []
    seen: set[str] = set()
    for selection in selections or ["token"]:
        try:
            found: list[AnyCase]
            if selection.endswith(".json"):
                found = [load_case_file(selection)]
            else:
                found = [builtin_case(name) for name in builtin_case_names(selection)]
        except ValueError as exc:
            raise CliError(f"--case: {exc}") from None
        for case in found:
            if case.name not in seen:
                seen.add(case.name)
                cases.append(case)
    return cases


def command_line(args: argparse.Namespace) -> str:
    """The canonical ``cspd verify`` command that reproduces this run."""
    parts = ["cspd", "verify", args.sampler]
    for selection in args.case or ["token"]:
        parts += ["--case", selection]
    parts += ["--tier", args.tier]
    if args.n is not None:
        parts += ["--n", str(args.n)]
    return shlex.join([*parts, *run_options(args)])


def run(args: argparse.Namespace) -> int:
    """Execute ``cspd verify``; returns the exit status."""
    from cspd_ref.loading import LoadError, load_callable

    cases = selected_cases(args.case)
    try:
        sampler = load_callable(args.sampler)
    except LoadError as exc:
        raise CliError(str(exc)) from None
    spec = RunSpec(sampler=sampler, sampler_name=args.sampler, command=command_line(args),
                   n=args.n)
    return run_cases(spec, cases, args, "cspd verify")
