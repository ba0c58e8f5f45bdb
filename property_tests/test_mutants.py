"""Power: every known-bad sampler of the mutant catalog is flagged by the battery
(docs/battery.md §8)."""

from __future__ import annotations

import pytest

from cspd_ref.mutants.catalog import MUTANTS, Mutant
from property_tests.gate import assert_flagged


def test_catalog_has_at_least_fifteen_distinct_mutants() -> None:
    assert len({m.name for m in MUTANTS}) == len(MUTANTS) >= 15


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_battery_flags_mutant(mutant: Mutant) -> None:
    assert_flagged(mutant.sampler, mutant.case(), mutant.name, n=mutant.n)
