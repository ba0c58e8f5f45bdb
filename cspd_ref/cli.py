"""The ``cspd`` command line.

* ``cspd demo`` — reference speculative sampling on the built-in 2-D mixture case: acceptance
  rate vs ``1 - TV`` and a KS p-value against the exact target.
* ``cspd verify package.module:function`` — run the battery on any sampler following the
  SPEC §5 contract and write a distribution-equivalence report.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats


def run_demo(n: int, seed: int) -> int:
    """Print acceptance vs ``1 - TV`` (with its 3-standard-error band) and a KS p-value."""
    from cspd_ref.cases import demo_case
    from cspd_ref.speculative import speculative_sample
    from cspd_ref.theory import tv_distance

    case = demo_case()
    rng = np.random.default_rng(seed)
    result = speculative_sample(case.draft, case.target, n, rng)
    tv = tv_distance(case.target, case.draft, rng=np.random.default_rng(seed + 1))
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


def load_callable(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (or ``package.module:factory()`` to call a factory)."""
    if ":" not in spec:
        raise SystemExit(f"cspd: expected package.module:function, got {spec!r}")
    module_name, attr = spec.split(":", 1)
    call = attr.endswith("()")
    attr = attr.removesuffix("()")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"cspd: cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SystemExit(f"cspd: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if call:
        obj = obj()
    if not callable(obj):
        raise SystemExit(f"cspd: {spec!r} is not callable")
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cspd`` console script."""
    parser = argparse.ArgumentParser(prog="cspd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="reference speculative sampling on a built-in 2-D case")
    demo.add_argument("--n", type=int, default=100_000, help="number of tokens (default 100000)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_verify_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.n < 1:
            parser.error("--n must be >= 1")
        return run_demo(args.n, args.seed)
    return run_verify_command(args)


def add_verify_parser(sub: Any) -> None:
    """Register ``cspd verify`` (implemented in ``cspd_ref.verify_cli``)."""
    from cspd_ref.verify_cli import add_arguments

    add_arguments(sub.add_parser("verify", help="run the battery on a sampler and write a report"))


def run_verify_command(args: argparse.Namespace) -> int:
    """Dispatch ``cspd verify``."""
    from cspd_ref.verify_cli import run

    return run(args, load_callable)


if __name__ == "__main__":
    sys.exit(main())
