"""Pytest plugin: the false-alarm bound of a test session's statistical assertions.

Installed with the package (entry point ``pytest11``, name ``cspd``), so every pytest session
in an environment where cspd is installed loads it; ``-p no:cspd`` turns it off, and
``-p cspd_ref.pytest_plugin`` loads it where the package is only on ``PYTHONPATH``.

At the end of a session it prints one line::

    cspd: 12 statistical assertions about exact samplers; false-alarm bound 1.2e-05 (union
    bound: the sum of their alphas)

and, when a budget is set (``--cspd-false-alarm-budget=1e-4`` on the command line or
``cspd_false_alarm_budget = 1e-4`` in the ini file), fails the session (exit status 1) if the
bound exceeds it. The assertions counted are those recorded with
``cspd_ref.testing.record_statistical_assertion`` — every ``assert_equivalent`` call.

Under pytest-xdist. ``record_statistical_assertion`` adds to a ledger of the Python process it
runs in; a session's ledger is the difference between its end and its start. With ``-n N`` the
tests run in worker processes: each worker's ``pytest_sessionfinish`` puts its ledger in
``config.workeroutput``, xdist sends it to the controller, the controller's
``pytest_testnodedown`` adds it up, and the controller's own ``pytest_sessionfinish`` totals and
checks. A worker that went down without sending its ledger (a crash) leaves the total unknown:
the session then fails and says so when a budget is set, rather than report a bound that may be
too small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cspd_ref.testing import AssertionLedger, ledger_in_this_process

WORKEROUTPUT_KEY = "cspd_assertions"
SUMMARY_PREFIX = "cspd:"
BUDGET_OPTION = "cspd_false_alarm_budget"
RELATIVE_SLACK = 1e-9
"""A bound equal to the budget up to float rounding of the sum passes (200 x 5e-7 is not
exactly 1e-4 in binary)."""


@dataclass
class SessionLedger:
    """One pytest process's view of the session's assertions."""

    baseline: AssertionLedger = field(default_factory=AssertionLedger)
    worker_ledgers: list[tuple[str, AssertionLedger]] = field(default_factory=list)
    workers_without_ledger: list[str] = field(default_factory=list)
    total: AssertionLedger | None = None
    budget: float | None = None


_STATE = pytest.StashKey[SessionLedger]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cspd", "cspd false-alarm budget")
    group.addoption("--cspd-false-alarm-budget", dest=BUDGET_OPTION, default=None,
                    metavar="ALPHA",
                    help="fail the session if the union bound on its statistical assertions' "
                         "false-alarm probability exceeds ALPHA")
    parser.addini(BUDGET_OPTION, "the session's false-alarm budget (see "
                  "--cspd-false-alarm-budget)", default="")


def _budget(config: pytest.Config) -> float | None:
    raw = config.getoption(BUDGET_OPTION) or config.getini(BUDGET_OPTION)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{BUDGET_OPTION}: expected a number in (0, 1), "
                                f"got {raw!r}") from None
    if not 0.0 < value < 1.0:
        raise pytest.UsageError(f"{BUDGET_OPTION}: must lie in (0, 1), got {value}")
    return value


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workeroutput")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = SessionLedger(budget=_budget(config))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STATE].baseline = ledger_in_this_process()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist controller: add the ledger a worker (an xdist ``WorkerController``) sent."""
    state = node.config.stash[_STATE]
    worker_id = str(node.gateway.id)
    output = getattr(node, "workeroutput", None)
    if output is None or WORKEROUTPUT_KEY not in output:
        state.workers_without_ledger.append(worker_id)
        return
    count, total_alpha = output[WORKEROUTPUT_KEY]
    state.worker_ledgers.append((worker_id, AssertionLedger(int(count), float(total_alpha))))


def over_budget(state: SessionLedger) -> bool:
    """True when a budget is set and the bound exceeds it or is unknown (a lost worker)."""
    if state.budget is None or state.total is None:
        return False
    return (state.total.total_alpha > state.budget * (1 + RELATIVE_SLACK)
            or bool(state.workers_without_ledger))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Worker: send the ledger. Controller or single process: total it, check the budget."""
    config = session.config
    state = config.stash[_STATE]
    local = ledger_in_this_process() - state.baseline
    if _is_xdist_worker(config):
        config.workeroutput[WORKEROUTPUT_KEY] = (local.count,  # type: ignore[attr-defined]
                                                 local.total_alpha)
        return
    total = local
    for _, ledger in state.worker_ledgers:
        total = total + ledger
    state.total = total
    if over_budget(state) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def summary_line(state: SessionLedger) -> str:
    """The one-line report: count, bound, budget (and why the session fails)."""
    if state.total is None:
        raise RuntimeError("summary_line: the session has not finished")
    total = state.total
    line = (f"{SUMMARY_PREFIX} {total.count} statistical assertions about exact samplers; "
            f"false-alarm bound {total.total_alpha:.3g} (union bound: the sum of their alphas)")
    if state.budget is not None:
        line += f"; budget {state.budget:.3g}"
    if state.workers_without_ledger:
        line += (f"; xdist worker(s) {', '.join(state.workers_without_ledger)} went down "
                 "without reporting, so the bound is a lower bound")
        if state.budget is not None:
            line += " — FAILED"
    if state.budget is not None and total.total_alpha > state.budget * (1 + RELATIVE_SLACK):
        line += (f"; FAILED: the bound exceeds the budget: lower the alpha of the assertions "
                 f"or make fewer (or raise {BUDGET_OPTION})")
    return line


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if _is_xdist_worker(config):
        return
    state = config.stash[_STATE]
    if state.total is not None:
        terminalreporter.write_line(summary_line(state))
