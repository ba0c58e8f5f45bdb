"""Pytest plugin: count a run's exact-sampler statistical assertions and enforce the budget.

Loaded by the root ``conftest.py`` (``pytest_plugins``), so it covers ``tests/``, ``proofs/``
and ``property_tests/`` alike; any other pytest run can load it with
``-p property_tests.budget_plugin``. The arithmetic it enforces is in ``budget.py``:
``P(false alarm) <= count x CALL_ALPHA <= PLANNED_EXACT_CALLS x CALL_ALPHA = GATE_ALPHA``.

Counting under pytest-xdist. ``record_exact_call()`` increments a counter of the Python process
it runs in, and a session's count is that counter's increase between ``pytest_sessionstart`` and
``pytest_sessionfinish``. Without xdist the tests run in the pytest process and that is the
run's count. With ``pytest -n N`` the tests run in worker processes: each worker's
``pytest_sessionfinish`` stores its own count in ``config.workeroutput["cspd_exact_calls"]``,
xdist sends that dict to the controller, and the controller's ``pytest_testnodedown`` adds it
up; the controller's own ``pytest_sessionfinish`` then checks the total (its own counter
included, which is 0 when every test ran in workers). A worker that went down without sending
its count (a crash) makes the total unknown: the run fails and says so, rather than reporting
a count that may be too small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from property_tests.budget import (
    CALL_ALPHA,
    GATE_ALPHA,
    PLANNED_EXACT_CALLS,
    exact_calls_in_this_process,
    false_alarm_bound,
)

WORKEROUTPUT_KEY = "cspd_exact_calls"
SUMMARY_PREFIX = "cspd budget:"


@dataclass
class BudgetState:
    """One pytest process's view of the run's budget."""

    baseline: int = 0
    """``exact_calls_in_this_process()`` at session start."""
    worker_counts: list[tuple[str, int]] = field(default_factory=list)
    """(xdist worker id, its count), filled by the controller."""
    workers_without_count: list[str] = field(default_factory=list)
    """xdist workers that went down without reporting a count."""
    total: int | None = None
    """The run's count, set by the controller's (or lone process's) session finish."""


_STATE = pytest.StashKey[BudgetState]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workeroutput")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = BudgetState()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STATE].baseline = exact_calls_in_this_process()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist controller: add up the count a worker (``node``, an xdist ``WorkerController``)
    sent with its ``workeroutput``."""
    state = node.config.stash[_STATE]
    worker_id = str(node.gateway.id)
    output = getattr(node, "workeroutput", None)
    if output is None or WORKEROUTPUT_KEY not in output:
        state.workers_without_count.append(worker_id)
        return
    state.worker_counts.append((worker_id, int(output[WORKEROUTPUT_KEY])))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Worker: send the count. Controller or single process: total it and enforce the plan."""
    config = session.config
    state = config.stash[_STATE]
    local = exact_calls_in_this_process() - state.baseline
    if _is_xdist_worker(config):
        config.workeroutput[WORKEROUTPUT_KEY] = local  # type: ignore[attr-defined]
        return
    state.total = local + sum(count for _, count in state.worker_counts)
    over = state.total > PLANNED_EXACT_CALLS or bool(state.workers_without_count)
    if over and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def summary_line(state: BudgetState) -> str:
    """The one-line report: count, planned maximum, union bound (and why the run fails)."""
    if state.total is None:
        raise RuntimeError("summary_line: the session has not finished")
    count = state.total
    bound = false_alarm_bound(count)
    line = (f"{SUMMARY_PREFIX} {count} exact-sampler statistical assertions (planned <= "
            f"{PLANNED_EXACT_CALLS}); false-alarm bound {count} x CALL_ALPHA = {count} x "
            f"{CALL_ALPHA:.3g} = {bound:.3g} (GATE_ALPHA = {GATE_ALPHA:.3g})")
    if state.workers_without_count:
        line += (f"; FAILED: xdist worker(s) {', '.join(state.workers_without_count)} went down "
                 "without reporting their count, so the total is a lower bound")
    if count > PLANNED_EXACT_CALLS:
        line += (f"; FAILED: {count} exceeds the planned {PLANNED_EXACT_CALLS} (bound "
                 f"{bound:.3g} > GATE_ALPHA); raise PLANNED_EXACT_CALLS (and so lower "
                 "CALL_ALPHA) in property_tests/budget.py")
    return line


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if _is_xdist_worker(config):
        return
    terminalreporter.write_line(summary_line(config.stash[_STATE]))
