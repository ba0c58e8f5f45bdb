"""The gate's false-alarm budget and its seeds (SPEC §5).

Design: the whole gate (one ``pytest property_tests/`` run) may flag an exact sampler with
probability at most ``GATE_ALPHA = 1e-4``. Every statistical assertion about an exact sampler is
one ``verify`` call at level ``CALL_ALPHA = GATE_ALPHA / PLANNED_EXACT_CALLS``; inside a call
Holm's procedure keeps the call's family-wise error at ``CALL_ALPHA`` whatever the dependence
between its checks; across calls the union (Bonferroni) bound gives

    P(any exact-sampler assertion fails) <= (number of calls) * CALL_ALPHA <= GATE_ALPHA.

``conftest.py`` counts the exact-sampler calls a run really makes and fails the session if the
count exceeds ``PLANNED_EXACT_CALLS`` (so the arithmetic above stays true as tests are added).
Mutant assertions ("verify flags this known-bad sampler") use the same ``CALL_ALPHA`` — the
level the gate applies to every implementation — and are about power, not false alarms.

Seeds: every statistical seed derives from the single environment variable ``CSPD_SEED``
(default ``DEFAULT_SEED``) and the test's own label, so a run is reproducible and a new seed is
one variable: ``CSPD_SEED=7 pytest property_tests/``.
"""

from __future__ import annotations

import hashlib
import os

GATE_ALPHA = 1e-4
PLANNED_EXACT_CALLS = 200
CALL_ALPHA = GATE_ALPHA / PLANNED_EXACT_CALLS
DEFAULT_SEED = 20241118
"""The paper's date (arXiv 2411.11925); any integer works."""

EXACT_CALLS = {"count": 0}


def cspd_seed() -> int:
    """The run's master seed: ``CSPD_SEED`` from the environment, else ``DEFAULT_SEED``."""
    raw = os.environ.get("CSPD_SEED", "")
    if raw == "":
        return DEFAULT_SEED
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"CSPD_SEED: expected an integer, got {raw!r}") from exc


def statistical_seed(*labels: object) -> int:
    """A 63-bit seed derived from ``CSPD_SEED`` and ``labels`` (test name, case repr, ...)."""
    text = "|".join([str(cspd_seed()), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def record_exact_call() -> None:
    """Count one exact-sampler statistical assertion against the budget."""
    EXACT_CALLS["count"] += 1
