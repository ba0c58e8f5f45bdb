"""The gate's assertions: ``cspd_ref.testing`` at the gate's level ``CALL_ALPHA``, with seeds
derived from ``CSPD_SEED`` and the test's labels (``budget.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cspd_ref import testing
from cspd_ref.verify import Verdict
from property_tests.budget import CALL_ALPHA, statistical_seed


def assert_equivalent(sampler: Callable[..., Any], case: Any, *labels: object,
                      n: int | None = None, tier: str = "quick") -> Verdict:
    """An exact sampler must pass ``verify`` at ``CALL_ALPHA`` (one unit of the budget, recorded
    by ``cspd_ref.testing.assert_equivalent``).

    ``tier="quick"`` for the broad Hypothesis sweeps; ``tier="full"`` (verify's default, ~10^6
    tokens) for the few calls that carry the gate's power claim."""
    seed = statistical_seed(getattr(sampler, "__name__", repr(sampler)), case.name, *labels)
    return testing.assert_equivalent(sampler, case, seed=seed, alpha=CALL_ALPHA, n=n, tier=tier)


def assert_flagged(sampler: Callable[..., Any], case: Any, *labels: object,
                   n: int | None = None, tier: str = "quick") -> Verdict:
    """A known-bad sampler must be flagged by ``verify`` at ``CALL_ALPHA``."""
    seed = statistical_seed(getattr(sampler, "__name__", repr(sampler)), case.name, *labels)
    return testing.assert_flagged(sampler, case, seed=seed, alpha=CALL_ALPHA, n=n, tier=tier)
