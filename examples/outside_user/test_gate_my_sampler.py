from hypothesis import given, settings

from cspd_ref import strategies
from cspd_ref.cases import demo_case
from cspd_ref.mutants import MUTANTS
from cspd_ref.testing import assert_equivalent, assert_flagged
from gpu_impl import as_sampler as my_sampler_factory  # <- your implementation here

sampler = my_sampler_factory()


def test_exact_on_the_demo_case():
    assert_equivalent(sampler, demo_case(), alpha=1e-6)


@settings(max_examples=5, deadline=None, derandomize=True)
@given(case=strategies.token_cases(max_dim=8))
def test_exact_on_generated_cases(case):
    assert_equivalent(sampler, case, alpha=1e-6, tier="quick")


def test_this_gate_catches_a_known_bug():
    bug = next(m for m in MUTANTS if m.name == "capped_residual_with_fallback")
    assert_flagged(bug.sampler, bug.case(), alpha=1e-6, tier="quick")
