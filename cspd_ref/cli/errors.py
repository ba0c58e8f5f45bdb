"""How the ``cspd`` commands fail: one line on stderr and exit status 2.

Exit status of every command: 0 equivalent (or success), 1 not equivalent (or a mismatch), 2
could not decide — a bad argument, an import that fails, a sampler that raises or breaks the
output contract, a timeout. A traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

EXIT_EQUIVALENT = 0
EXIT_NOT_EQUIVALENT = 1
EXIT_UNDECIDED = 2


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors raise ``CliError`` (one line, exit 2) instead of
    printing the usage block and calling ``sys.exit``."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: {message} (see {self.prog} --help)")


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (newlines folded), for stderr."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
