"""The run's exact-sampler count is the same with and without pytest-xdist.

A synthetic test directory calls ``record_exact_call()`` a known number of times (7, across 3
files), under the cspd pytest plugin (``cspd_ref/pytest_plugin.py``, installed as a ``pytest11``
entry point, so it loads in every session of this environment); it runs
in subprocesses (``pytester.runpytest_subprocess``, so the counters of this process are not
touched) as ``pytest`` and ``pytest -n 2``, and both must report 7.

This fails on the old design (a module-level dict in ``budget.py`` read by
``property_tests/conftest.py``'s ``pytest_sessionfinish``): under ``-n 2`` the tests run in two
worker processes, each increments its own dict and prints from its own session finish (output
the controller discards), and the controller's dict stays at 0, so no "7" is reported —
``test_old_module_dict_design_loses_the_worker_counts`` reproduces that design and shows it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from property_tests.budget import CALL_ALPHA, GATE_ALPHA, PLANNED_EXACT_CALLS

REPO_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^cspd: (\d+) statistical assertions about exact samplers; false-alarm "
                     r"bound (\S+) \(union bound: the sum of their alphas\)(?:; budget (\S+))?")

SYNTHETIC_FILES = {
    "test_one.py": "def test_a():\n    record_exact_call()\n\n"
                   "def test_b():\n    record_exact_call()\n    record_exact_call()\n",
    "test_two.py": "def test_c():\n    record_exact_call()\n\n"
                   "def test_d():\n    pass\n",
    "test_three.py": "import pytest\n\n@pytest.mark.parametrize('i', range(3))\n"
                     "def test_e(i):\n    record_exact_call()\n",
}
EXPECTED = 7
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
        f"--cspd-false-alarm-budget={GATE_ALPHA}")
"""Options of every inner run: no cache, no Hypothesis plugin (its import costs ~1 s a process)."""


@pytest.fixture
def synthetic(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The synthetic directory: 7 calls in 3 files, the budget plugin loaded by its conftest,
    the repository importable in the subprocess and its xdist workers."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    header = "from property_tests.budget import record_exact_call\n\n"
    pytester.makepyfile(**{name[:-3]: header + body for name, body in SYNTHETIC_FILES.items()})
    return pytester


def reported(result: pytest.RunResult) -> list[tuple[int, float]]:
    """Every summary line of the plugin: (count, bound)."""
    out = []
    for line in result.outlines:
        match = SUMMARY.match(line)
        if match:
            out.append((int(match[1]), float(match[2])))
    return out


def test_count_is_identical_with_and_without_xdist(synthetic: pytest.Pytester) -> None:
    single = synthetic.runpytest_subprocess(*FAST)
    parallel = synthetic.runpytest_subprocess(*FAST, "-n", "2")
    for result in (single, parallel):
        assert result.ret == 0, "\n".join(result.outlines)
        lines = reported(result)
        assert len(lines) == 1, "\n".join(result.outlines)
        count, bound = lines[0]
        assert count == EXPECTED
        assert bound == pytest.approx(EXPECTED * CALL_ALPHA, rel=1e-2)
    assert any("2 workers" in line for line in parallel.outlines), "xdist did not run"


def test_run_fails_when_the_summed_count_exceeds_the_plan(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Two files of ``PLANNED // 2 + 1`` calls each under ``-n 2``: no worker alone exceeds the
    plan, the controller's total does, and the run must fail (exit status 1) saying so."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    calls = PLANNED_EXACT_CALLS // 2 + 1
    body = ("from property_tests.budget import record_exact_call\n\n"
            f"def test_many():\n    for _ in range({calls}):\n        record_exact_call()\n")
    pytester.makepyfile(test_left=body, test_right=body)
    result = pytester.runpytest_subprocess(*FAST, "-n", "2")
    assert result.ret == 1, "\n".join(result.outlines)
    lines = reported(result)
    assert [line[0] for line in lines] == [2 * calls]
    assert any("FAILED: the bound exceeds the budget" in line for line in result.outlines)


def test_user_assertions_at_mixed_levels_add_up_under_xdist(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A user's session: assertions at 1e-3 and 1e-5 in two files, run under ``-n 2``; the
    bound is their sum, and a budget below it fails the session."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    header = "from cspd_ref.testing import record_statistical_assertion\n\n"
    pytester.makepyfile(
        test_coarse=header + "def test_a():\n    record_statistical_assertion(1e-3)\n",
        test_fine=header + "def test_b():\n    for _ in range(3):\n"
                           "        record_statistical_assertion(1e-5)\n")
    fast = FAST[:-1]
    passing = pytester.runpytest_subprocess(*fast, "-n", "2", "--cspd-false-alarm-budget=0.01")
    assert passing.ret == 0, "\n".join(passing.outlines)
    assert reported(passing) == [(4, pytest.approx(1.03e-3))]
    failing = pytester.runpytest_subprocess(*fast, "-n", "2", "--cspd-false-alarm-budget=1e-3")
    assert failing.ret == 1, "\n".join(failing.outlines)
    unbudgeted = pytester.runpytest_subprocess(*fast)
    assert unbudgeted.ret == 0 and reported(unbudgeted) == [(4, pytest.approx(1.03e-3))]


OLD_DESIGN_CONFTEST = '''
from property_tests import budget

COUNT = {"count": 0}
budget.record_exact_call = lambda: COUNT.__setitem__("count", COUNT["count"] + 1)


def pytest_sessionfinish(session, exitstatus):
    if COUNT["count"]:
        print(f"\\ncspd: {COUNT['count']} statistical assertions about exact samplers; "
              "false-alarm bound 0 (union bound: the sum of their alphas) (old design)")
'''


def test_old_module_dict_design_loses_the_worker_counts(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The old design (a module-level dict, printed by the session finish of whichever process
    holds it) reports 7 without xdist and nothing under ``-n 2``: the controller's dict is 0."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    pytester.makeconftest(OLD_DESIGN_CONFTEST)
    header = ("from property_tests import budget\n\n"
              "def record_exact_call():\n    budget.record_exact_call()\n\n")
    pytester.makepyfile(**{name[:-3]: header + body for name, body in SYNTHETIC_FILES.items()})
    old = (*FAST[:-1], "-p", "no:cspd")
    single = pytester.runpytest_subprocess(*old, "-s")
    parallel = pytester.runpytest_subprocess(*old, "-s", "-n", "2")
    assert [line[0] for line in reported(single)] == [EXPECTED]
    assert [line[0] for line in reported(parallel)] == []
