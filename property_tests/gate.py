"""Assertions the gate makes, with the budget bookkeeping of ``budget.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cspd_ref.verify import Verdict, verify
from property_tests.budget import CALL_ALPHA, record_exact_call, statistical_seed


def assert_equivalent(sampler: Callable[..., Any], case: Any, *labels: object,
                      n: int | None = None, tier: str = "quick") -> Verdict:
    """An exact sampler must pass ``verify`` at ``CALL_ALPHA`` (one unit of the budget).

    ``tier="quick"`` for the broad Hypothesis sweeps; ``tier="full"`` (verify's default, ~10^6
    tokens) for the few calls that carry the gate's power claim."""
    record_exact_call()
    seed = statistical_seed(getattr(sampler, "__name__", repr(sampler)), case.name, *labels)
    verdict = verify(sampler, case, seed=seed, alpha=CALL_ALPHA, n=n, tier=tier)
    assert verdict.equivalent, (
        f"an exact sampler was flagged (reproduce with the same CSPD_SEED; sampler seed "
        f"{seed}):\n{verdict.summary()}")
    return verdict


def assert_flagged(sampler: Callable[..., Any], case: Any, *labels: object,
                   n: int | None = None, tier: str = "quick") -> Verdict:
    """A known-bad sampler must be flagged by ``verify`` at ``CALL_ALPHA``."""
    seed = statistical_seed(getattr(sampler, "__name__", repr(sampler)), case.name, *labels)
    verdict = verify(sampler, case, seed=seed, alpha=CALL_ALPHA, n=n, tier=tier)
    assert not verdict.equivalent, (
        f"a known-bad sampler passed the battery (sampler seed {seed}):\n{verdict.summary()}")
    return verdict
