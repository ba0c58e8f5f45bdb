"""``--timeout``: a per-case deadline that ends a hanging sampler.

``time_limit(seconds, what, on_stuck)`` arms ``SIGALRM``: when it fires, ``CaseTimeout`` is raised
in the main thread, inside whatever Python code the sampler is running. ``CaseTimeout`` derives
from ``BaseException``, so a sampler's own ``except Exception`` does not swallow it. Code that
never returns to the interpreter (a long C call) cannot be interrupted that way: ``on_stuck``
then runs from a watchdog thread ``STUCK_GRACE`` seconds later (the command writes its partial
report and exits with status 2).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from cspd_ref.cli.errors import CliError

STUCK_GRACE = 10.0
"""Seconds after the deadline before the watchdog gives up on interrupting the sampler."""


class CaseTimeout(BaseException):
    """A case ran past its ``--timeout``."""


@contextmanager
def time_limit(seconds: float | None, what: str,
               on_stuck: Callable[[], None]) -> Iterator[None]:
    """Run the body under a deadline of ``seconds`` (None: no deadline).

    Raises:
        CaseTimeout: the body did not finish in time.
        CliError: a deadline was asked for where ``SIGALRM`` is not available (not POSIX, or
            not the main thread).
    """
    if seconds is None:
        yield
        return
    if not hasattr(signal, "setitimer"):
        raise CliError("--timeout needs SIGALRM, which this platform lacks")
    if threading.current_thread() is not threading.main_thread():
        raise CliError("--timeout works only in the main thread")

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise CaseTimeout(f"did not finish within --timeout {seconds:g} s ({what})")

    previous = signal.signal(signal.SIGALRM, interrupt)
    watchdog = threading.Timer(seconds + STUCK_GRACE, on_stuck)
    watchdog.daemon = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog.start()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        watchdog.cancel()
        signal.signal(signal.SIGALRM, previous)
