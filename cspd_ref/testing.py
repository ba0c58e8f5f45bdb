"""Assertions for your own test suite: gate an implementation with the battery.

``assert_equivalent(sampler, case)`` runs ``cspd_ref.verify`` and raises ``AssertionError``
(whose message is the verdict summary: failed checks, their statistics, what the call could not
see) when the sampler is flagged. ``assert_flagged`` is its mirror for power checks: a
known-bad sampler (``cspd_ref.mutants``) must be flagged.

The false-alarm budget of a test session. Each ``assert_equivalent`` call on an exact sampler
fails with probability at most its ``alpha``; a session that makes calls at levels
``alpha_1, ..., alpha_m`` flags an exact sampler with probability at most
``alpha_1 + ... + alpha_m`` (the union bound, valid under any dependence between the calls).
Every call adds its ``alpha`` to a per-process ledger (``record_statistical_assertion``); the
pytest plugin ``cspd_ref.pytest_plugin`` (installed with the package, entry point ``pytest11``)
adds the ledgers of all processes of a session — pytest-xdist workers included — prints the
count and the bound, and fails the session when the bound exceeds
``--cspd-false-alarm-budget`` (or the ini option ``cspd_false_alarm_budget``). Power assertions
(``assert_flagged``) are not counted: they can fail only when the battery lacks power, never by
a false alarm. See ``docs/battery.md``.

Examples:
    >>> from cspd_ref.cases import demo_case
    >>> from cspd_ref.samplers import token_sampler
    >>> verdict = assert_equivalent(token_sampler(), demo_case(), alpha=1e-6, tier="quick")
    >>> verdict.equivalent
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.verify import DEFAULT_ALPHA, Verdict, verify

__all__ = [
    "AssertionLedger",
    "assert_equivalent",
    "assert_flagged",
    "ledger_in_this_process",
    "record_statistical_assertion",
]


@dataclass(frozen=True)
class AssertionLedger:
    """Statistical assertions about exact samplers made so far in one process.

    Attributes:
        count: how many assertions were recorded.
        total_alpha: the sum of their levels: the union bound on the probability that at
            least one of them flags an exact sampler.
    """

    count: int = 0
    total_alpha: float = 0.0

    def __sub__(self, other: AssertionLedger) -> AssertionLedger:
        return AssertionLedger(self.count - other.count, self.total_alpha - other.total_alpha)

    def __add__(self, other: AssertionLedger) -> AssertionLedger:
        return AssertionLedger(self.count + other.count, self.total_alpha + other.total_alpha)


_lock = threading.Lock()
_ledger = AssertionLedger()


def record_statistical_assertion(alpha: float) -> None:
    """Count one statistical assertion about an exact sampler made at level ``alpha``.

    ``assert_equivalent`` calls this itself; call it from your own statistical assertions (one
    call per assertion, before its samples are drawn) so the session's bound includes them.

    Raises:
        ValueError: ``alpha`` is not a number in (0, 1).
    """
    global _ledger
    try:
        level = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}") from None
    if not 0.0 < level < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1), got {level}")
    with _lock:
        _ledger = _ledger + AssertionLedger(1, level)


def ledger_in_this_process() -> AssertionLedger:
    """The assertions recorded so far in this Python process (monotone; a pytest session
    counts the difference between its end and its start)."""
    return _ledger


def _sampler_name(sampler: Callable[..., Any]) -> str:
    return str(getattr(sampler, "__name__", repr(sampler)))


def assert_equivalent(sampler: Callable[..., Any], case: Case | DiffusionCase | ARCase, *,
                      seed: int = 0, alpha: float = DEFAULT_ALPHA, n: int | None = None,
                      tier: str = "full", **verify_options: Any) -> Verdict:
    """Assert that ``sampler`` passes the battery on ``case``; return the verdict.

    Runs ``verify(sampler, case, seed=seed, alpha=alpha, n=n, tier=tier, **verify_options)``
    (the sampler contract and the checks are in ``docs/contract.md`` and ``docs/battery.md``)
    and records one assertion at level ``alpha`` for the session's false-alarm bound. If the
    sampler is exact, this raises with probability at most ``alpha``.

    Args:
        sampler: ``sampler(case, n, seed)`` returning ``(n, d)`` samples (``(n, L, d)`` for an
            ``ARCase``), or an object with ``.samples`` (and optionally ``.accepted`` and
            ``.trials``, which are then tested too).
        case: a ``Case``, ``DiffusionCase`` or ``ARCase``.
        seed: passed to the sampler; change it to draw a new sample.
        alpha: the false-alarm probability of this assertion.
        n: samples to request; by default planned from ``tier``.
        tier: ``"full"`` (a KS distance of 0.005 along any tested direction is caught with
            probability 0.99; about 10^6 tokens) or ``"quick"`` (0.03; about 10^4).
        **verify_options: passed on to ``verify`` (e.g. ``n_projections``).

    Raises:
        AssertionError: the battery flagged the sampler; the message is ``Verdict.summary()``.
        ValueError: a bad argument, or a sampler output that breaks the contract (shape,
            dtype, an ``accepted``/``trials`` array of the wrong type or length).
    """
    record_statistical_assertion(alpha)
    verdict = verify(sampler, case, seed=seed, alpha=alpha, n=n, tier=tier, **verify_options)
    if not verdict.equivalent:
        raise AssertionError(
            f"{_sampler_name(sampler)} is not equivalent to the target of {verdict.case_name} "
            f"(a false alarm has probability <= {verdict.alpha:g}; rerun with "
            f"seed={seed} to reproduce):\n{verdict.summary()}")
    return verdict


def assert_flagged(sampler: Callable[..., Any], case: Case | DiffusionCase | ARCase, *,
                   seed: int = 0, alpha: float = DEFAULT_ALPHA, n: int | None = None,
                   tier: str = "full", **verify_options: Any) -> Verdict:
    """Assert that the battery flags ``sampler`` (a known-bad one) on ``case``; return the
    verdict.

    Mutation testing for samplers: run it on the catalog of ``cspd_ref.mutants`` with the same
    ``alpha``, ``n`` and ``tier`` as your ``assert_equivalent`` calls, to show that your gate
    configuration catches those bugs. Not counted in the session's false-alarm bound.

    Raises:
        AssertionError: the sampler passed; the message is ``Verdict.summary()``.
    """
    verdict = verify(sampler, case, seed=seed, alpha=alpha, n=n, tier=tier, **verify_options)
    if verdict.equivalent:
        raise AssertionError(
            f"{_sampler_name(sampler)} passed the battery on {verdict.case_name}, but it is "
            f"known to be wrong: this configuration lacks the power to see it:\n"
            f"{verdict.summary()}")
    return verdict
