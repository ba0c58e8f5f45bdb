"""Gate configuration: deterministic Hypothesis.

The false-alarm budget is counted and enforced for the whole run by
the cspd pytest plugin (``cspd_ref/pytest_plugin.py``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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

