"""``cspd vectors export DIR`` and ``cspd vectors check DIR --impl ...`` (docs/vectors.md).

* ``export DIR [--kinds k1,k2]``: write the conformance-vector set (``manifest.json`` + ``.npy``)
  into ``DIR``; deterministic.
* ``check DIR --impl ref|gpu|MODULE:FUNCTION [--kinds ...] [--dtype float64|float32]
  [--device cpu|cuda] [--debug]``: replay every selected vector through the implementation and
  compare its outputs with the reference's.

Exit status: 0 every selected vector matches; 1 some output array mismatches (the report names
the vector, the array, how many elements and the worst one); 2 could not decide (missing or
corrupt set, missing array, unknown kind, the implementation raises or does not implement a
selected kind) — with one line on stderr, and a traceback only with ``--debug``.

Run as ``python -m cspd_ref.vectors.cli`` until the ``cspd`` command wires it in.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from cspd_ref.vectors.check import check_vectors
from cspd_ref.vectors.export import export_vectors
from cspd_ref.vectors.replay import COMPUTE_DTYPES, resolve_implementation


def kind_list(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (argparse type of ``--kinds``)."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise argparse.ArgumentTypeError("expected a comma-separated list of kind names")
    return kinds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` and ``check`` sub-commands to the ``vectors`` parser."""
    sub = parser.add_subparsers(dest="vectors_command", required=True, metavar="{export,check}")
    export = sub.add_parser("export", help="write the conformance-vector set into DIR",
                            description="Write the conformance vectors (manifest.json + .npy "
                                        "arrays, docs/vectors.md) into DIR; deterministic.")
    export.add_argument("directory", metavar="DIR", help="output folder")
    export.add_argument("--kinds", type=kind_list, default=None,
                        help="comma-separated kinds to export (default: all)")
    export.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks")
    check = sub.add_parser("check", help="replay the vectors in DIR through an implementation",
                           description="Replay the vectors in DIR through an implementation "
                                       "and compare with the reference outputs. Exit 0: all "
                                       "match; 1: some array mismatches; 2: could not decide.")
    check.add_argument("directory", metavar="DIR", help="a folder written by 'vectors export'")
    check.add_argument("--impl", required=True, metavar="ref|gpu|MODULE:FUNCTION",
                       help="'ref' (cspd_ref, float64), 'gpu' (gpu_impl) or a port's "
                            "replay(kind, params, noise) as module:function or "
                            "path/to/file.py:function")
    check.add_argument("--kinds", type=kind_list, default=None,
                       help="comma-separated kinds to check (default: every vector in DIR)")
    check.add_argument("--dtype", choices=COMPUTE_DTYPES, default="float64",
                       help="compute dtype: gpu_impl's tensors, or the precision a port "
                            "computes in; sets the float tolerance (default float64)")
    check.add_argument("--device", default="cpu", help="torch device for --impl gpu "
                                                       "(default cpu)")
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks (an implementation's exception propagates)")


def run(args: argparse.Namespace) -> int:
    """Run ``vectors export`` or ``vectors check``; returns the exit status."""
    command = args.vectors_command
    debug = bool(getattr(args, "debug", False))  # absent: no --debug anywhere (SUPPRESS)
    prefix = f"cspd vectors {command}"
    try:
        if command == "export":
            manifest = export_vectors(args.directory, kinds=args.kinds)
            arrays = sum(len(v.arrays) for v in manifest.vectors)
            print(f"wrote {len(manifest.vectors)} vectors ({arrays} arrays) and manifest.json "
                  f"to {args.directory}")
            return 0
        impl = resolve_implementation(args.impl, dtype=args.dtype, device=args.device)
        report = check_vectors(args.directory, impl.replay, kinds=args.kinds, dtype=impl.dtype,
                               label=impl.label, reraise=debug)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        message = str(exc).splitlines()[0] if str(exc) else ""
        if not isinstance(exc, ValueError) or not message:
            message = f"{type(exc).__name__}: {message}"
        print(f"{prefix}: could not decide: {message}" if command == "check"
              else f"{prefix}: {message}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    code = report.exit_code
    if code == 2:
        print(f"{prefix}: could not decide: {report.undecided_reason()}", file=sys.stderr)
    elif code == 1:
        print(f"{prefix}: {report.count('mismatch')} of {len(report.outcomes)} vectors "
              f"mismatch", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cspd_ref.vectors.cli export|check ...``."""
    parser = argparse.ArgumentParser(prog="cspd vectors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
