"""Power: every known-bad sampler of the mutant catalog is flagged by the battery (SPEC §5)."""

from __future__ import annotations

import pytest

from property_tests.gate import assert_flagged
from property_tests.mutants import MUTANTS, Mutant


def test_catalog_has_at_least_fifteen_distinct_mutants() -> None:
    assert len({m.name for m in MUTANTS}) == len(MUTANTS) >= 15


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_battery_flags_mutant(mutant: Mutant) -> None:
    assert_flagged(mutant.sampler, mutant.case(), mutant.name, n=mutant.n)
