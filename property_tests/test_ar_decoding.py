"""AR speculative decoding passes the target's Rosenblatt test (SPEC §4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.stats import norm

from cspd_ref.ar import GroupSchedule, MixtureARModel, ar_speculative_decode
from cspd_ref.cases import ARCase
from cspd_ref.samplers import ar_sampler
from cspd_ref.theory import expected_groups_per_pass, tv_equal_scale_gaussians
from property_tests.budget import CALL_ALPHA, record_exact_call, statistical_seed
from property_tests.gate import assert_equivalent
from property_tests.strategies import ar_cases

CONFIGS = [
    {"gamma": 1, "prefill": 0.0, "bonus_group": True},
    {"gamma": 2, "prefill": 0.0, "bonus_group": True},
    {"gamma": 3, "prefill": 0.25, "bonus_group": True},
    {"gamma": 2, "prefill": 0.0, "bonus_group": False},
    {"gamma": 4, "prefill": 0.5, "bonus_group": False},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in
                                                                      c.items()))
@settings(max_examples=2)
@given(case=ar_cases())
def test_ar_speculative_decoding_is_exact(config: dict, case: ARCase) -> None:
    assert_equivalent(ar_sampler(**config), case, repr(config),
                      repr(case.target.base_means.sum()), n=2000)


def expected_passes(num_groups: int, a: float, gamma: int) -> float:
    """Exact expected target passes for ``num_groups`` groups when every drafted group is
    accepted independently with probability ``a`` (bonus group on, no pre-fill).

    ``f(r) = 1 + sum_outcomes P(outcome) f(r - produced)``: a round drafts ``k = min(gamma, r)``
    groups; the first rejection at group ``j`` produces ``j + 1`` groups (probability
    ``a^j (1 - a)``); all ``k`` accepted (probability ``a^k``) produce ``k``, plus the bonus
    group when ``r > k``.
    """
    f = [0.0] * (num_groups + 1)
    for r in range(1, num_groups + 1):
        k = min(gamma, r)
        total = 1.0
        for j in range(k):
            total += a**j * (1 - a) * f[r - (j + 1)]
        total += a**k * f[r - k - (1 if r > k else 0)]
        f[r] = total
    return f[num_groups]


def test_untruncated_round_of_the_recursion_is_the_closed_form() -> None:
    """Far from the sequence end a round produces ``(1 - a^(gamma+1)) / (1 - a)`` groups on
    average: the recursion above and ``expected_groups_per_pass`` agree (deterministic)."""
    for a in (0.1, 0.5, 0.8025, 0.99):
        for gamma in (1, 2, 3, 5):
            per_round = sum(a**j * (1 - a) * (j + 1) for j in range(gamma)) + a**gamma * (
                gamma + 1)
            assert per_round == pytest.approx(expected_groups_per_pass(a, gamma), rel=1e-12)


def test_target_passes_match_the_exact_expectation_when_acceptance_is_constant() -> None:
    """An AR model whose conditionals ignore the prefix has a constant per-group acceptance
    ``a = 1 - TV(N(0.5, 1), N(0, 1))``; the mean number of target passes per sequence must
    match ``expected_passes`` (which accounts for the short rounds at the end of a sequence —
    about 5% fewer groups per pass than the closed form at L = 24). Normal approximation to
    the mean of 400 sequences, two-sided at ``CALL_ALPHA`` (one unit of the gate's budget)."""
    L, d, gamma, n = 24, 1, 3, 400
    target = MixtureARModel(np.zeros((L, 1)), np.zeros((L, 1, d)), np.ones((L, 1, d)),
                            np.zeros((L, L)), np.zeros(1))
    draft = MixtureARModel(np.zeros((L, 1)), np.full((L, 1, d), 0.5), np.ones((L, 1, d)),
                           np.zeros((L, L)), np.zeros(1))
    schedule = GroupSchedule(tuple((i,) for i in range(L)))
    a = 1.0 - tv_equal_scale_gaussians(np.array([0.5]), np.zeros(1), np.ones(1))
    record_exact_call()
    seed = statistical_seed("ar-passes-constant-acceptance")
    out = ar_speculative_decode(draft, target, schedule, n, np.random.default_rng(seed),
                                gamma=gamma)
    passes = out.target_passes.astype(float)
    z = (passes.mean() - expected_passes(L, a, gamma)) / (passes.std(ddof=1) / np.sqrt(n))
    assert abs(z) < norm.isf(CALL_ALPHA / 2), (
        f"mean target passes {passes.mean():.4f} vs exact {expected_passes(L, a, gamma):.4f} "
        f"(z = {z:.2f}, seed {seed})")
