"""``cspd verify``: placeholder until the battery lands (raises so nobody mistakes it for done)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cspd verify``."""
    parser.add_argument("sampler", help="package.module:function following the SPEC §5 contract")


def run(args: argparse.Namespace, load: Callable[[str], Callable[..., Any]]) -> int:
    """Not implemented yet."""
    raise SystemExit("cspd verify: not implemented yet")
