"""Gate configuration: deterministic Hypothesis, and the false-alarm budget check."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from property_tests.budget import EXACT_CALLS, PLANNED_EXACT_CALLS

settings.register_profile(
    "gate",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
settings.register_profile("explore", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("CSPD_HYPOTHESIS_PROFILE", "gate"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if it made more exact-sampler assertions than the budget planned for."""
    count = EXACT_CALLS["count"]
    if count > PLANNED_EXACT_CALLS:
        session.exitstatus = 1
        print(f"\ncspd gate: {count} exact-sampler statistical assertions exceed the planned "
              f"{PLANNED_EXACT_CALLS}; raise PLANNED_EXACT_CALLS (and so lower CALL_ALPHA) in "
              "property_tests/budget.py")
    elif count:
        print(f"\ncspd gate: {count} exact-sampler statistical assertions (planned <= "
              f"{PLANNED_EXACT_CALLS}, family-wise false-alarm bound {count} x CALL_ALPHA)")
