"""The ``cspd`` command line.

* ``cspd demo`` — reference speculative sampling on the built-in 2-D mixture case: acceptance
  rate vs ``1 - TV`` and a KS p-value against the exact target.
* ``cspd verify MODULE:FUNCTION`` — run the battery on any sampler following the contract of
  ``docs/contract.md`` and write a distribution-equivalence report.
* ``cspd report`` — the distribution-equivalence report of ``gpu_impl`` (or the reference)
  over the built-in token, diffusion and AR cases.
* ``cspd vectors export DIR`` / ``cspd vectors check DIR --impl ref|gpu|MODULE:FUNCTION`` —
  conformance vectors for ports (``docs/vectors.md``).

Exit status: 0 equivalent (or success), 1 not equivalent (or a mismatch), 2 could not decide
(one line on stderr; ``--debug`` prints the traceback).
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Sequence

import numpy as np
from scipy import stats

from cspd_ref.cli.errors import EXIT_UNDECIDED, CliError, OneLineParser, one_line


def run_demo(n: int, seed: int) -> int:
    """Print acceptance vs ``1 - TV`` (with its 3-standard-error band) and a KS p-value."""
    from cspd_ref.cases import demo_case
    from cspd_ref.speculative import speculative_sample
    from cspd_ref.theory import tv_distance

    case = demo_case()
    rng = np.random.default_rng(seed)
    result = speculative_sample(case.draft, case.target, n, rng)
    tv = tv_distance(case.draft, case.target, rng=np.random.default_rng(seed + 1))
    expected = 1.0 - tv.value
    rate = float(result.accepted.mean())
    se = math.sqrt(expected * (1 - expected) / n + tv.stderr**2)
    direction = np.array([0.6, 0.8])
    ks = stats.kstest(result.samples @ direction, case.target.project(direction).cdf)
    rejected = ~result.accepted
    print(f"case: {case.name} (target K={case.target.n_components}, draft "
          f"K={case.draft.n_components}, d={case.dim}); n={n}, seed={seed}")
    print(f"acceptance rate      : {rate:.4f}")
    print(f"1 - TV (expected)    : {expected:.4f} ± {tv.stderr:.4f} ({tv.method})")
    print(f"deviation            : {(rate - expected) / se:+.2f} standard errors "
          f"({'within' if abs(rate - expected) <= 3 * se else 'OUTSIDE'} 3 SE)")
    if rejected.any():
        print(f"residual trials      : mean {result.trials[rejected].mean():.3f} "
              f"(Geometric(TV) mean 1/TV = {1 / tv.value:.3f})")
    print(f"KS vs exact target   : statistic {ks.statistic:.4f}, p-value {ks.pvalue:.4f} "
          "(projection on (0.6, 0.8))")
    return 0


def add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug``: print the traceback of a failure (default: one line on stderr)."""
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback when the command fails")


def build_parser() -> OneLineParser:
    """The ``cspd`` parser with its sub-commands."""
    from cspd_ref import __version__
    from cspd_ref.cli import report as report_cli
    from cspd_ref.cli import verify as verify_cli

    parser = OneLineParser(prog="cspd", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cspd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    demo = sub.add_parser("demo", help="reference speculative sampling on a built-in 2-D case")
    demo.add_argument("--n", type=int, default=100_000, help="number of tokens (default 100000)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_debug(demo)
    verify = sub.add_parser("verify", help="run the battery on a sampler and write a report")
    verify_cli.add_arguments(verify)
    add_debug(verify)
    report = sub.add_parser("report", help="the distribution-equivalence report of gpu_impl "
                                           "(or the reference) over the built-in cases")
    report_cli.add_arguments(report)
    add_debug(report)
    vectors = sub.add_parser("vectors", help="conformance vectors for ports: export, check")
    add_vectors_arguments(vectors)
    add_debug(vectors)
    return parser


def add_vectors_arguments(parser: argparse.ArgumentParser) -> None:
    """``cspd vectors export|check`` (``cspd_ref.vectors.cli``)."""
    from cspd_ref.vectors.cli import add_arguments

    add_arguments(parser)


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen sub-command; returns its exit status."""
    if args.command == "demo":
        if args.n < 1:
            raise CliError("cspd demo: --n must be >= 1")
        return run_demo(args.n, args.seed)
    if args.command == "verify":
        from cspd_ref.cli import verify as verify_cli

        return verify_cli.run(args)
    if args.command == "report":
        from cspd_ref.cli import report as report_cli

        return report_cli.run(args)
    from cspd_ref.vectors.cli import run as run_vectors

    return int(run_vectors(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cspd`` console script: 0 equivalent (success), 1 not equivalent
    (mismatch), 2 could not decide — with one line on stderr, a traceback only with
    ``--debug``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CliError as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNDECIDED
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_UNDECIDED
    prog = f"cspd {args.command}"
    try:
        return dispatch(args)
    except CliError as exc:
        message = str(exc)
        print(message if message.startswith("cspd") else f"{prog}: {message}",
              file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
    except Exception as exc:
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        print(f"{prog}: {one_line(exc)}", file=sys.stderr)
    return EXIT_UNDECIDED


if __name__ == "__main__":
    sys.exit(main())
