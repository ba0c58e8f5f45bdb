"""The reference token samplers pass the battery on Hypothesis-generated cases
(docs/algorithms.md §3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from cspd_ref.cases import Case
from cspd_ref.samplers import token_sampler
from cspd_ref.strategies import equal_scale_gaussian_cases, extreme_valid_cases, token_cases
from property_tests.gate import assert_equivalent


@pytest.mark.parametrize("residual", ["auto", "batched"])
@settings(max_examples=20)
@given(case=token_cases())
def test_reference_sampler_is_exact_on_mixtures(residual: str, case: Case) -> None:
    assert_equivalent(token_sampler(residual), case, residual, repr(case.target.means.sum()))


@settings(max_examples=8)
@given(case=token_cases(max_dim=8))
def test_sequential_residual_loop_is_exact(case: Case) -> None:
    assert_equivalent(token_sampler("loop"), case, "loop", repr(case.target.means.sum()))


@settings(max_examples=12)
@given(case=equal_scale_gaussian_cases())
def test_reflection_residual_is_exact(case: Case) -> None:
    assert_equivalent(token_sampler("reflection"), case, "reflection",
                      repr(case.target.means.sum()))


@pytest.mark.parametrize("case", extreme_valid_cases(), ids=lambda c: c.name)
def test_extreme_valid_inputs_stay_exact(case: Case) -> None:
    n = 1000 if case.dim > 1000 else None
    assert_equivalent(token_sampler("auto"), case, "extreme", n=n)
