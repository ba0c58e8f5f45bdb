"""AR speculative decoding passes the target's Rosenblatt test (docs/algorithms.md §5)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.stats import norm

from cspd_ref.ar import GroupSchedule, MixtureARModel, ar_speculative_decode
from cspd_ref.cases import ARCase
from cspd_ref.samplers import ar_sampler
from cspd_ref.strategies import ar_cases
from cspd_ref.theory import expected_groups_per_pass, tv_equal_scale_gaussians
from property_tests.budget import CALL_ALPHA, record_exact_call, statistical_seed
from property_tests.gate import assert_equivalent

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


def pass_count_pmf(num_groups: int, a: float, gamma: int) -> np.ndarray:
    """Exact law of the number of target passes of ONE sequence of ``num_groups`` groups when
    every drafted group is accepted independently with probability ``a`` (bonus group on, no
    pre-fill): ``pmf[m] = P(passes = m)``, ``m = 0..num_groups``.

    The recursion of ``expected_passes`` over distributions: with ``P_r`` the law of the passes
    still needed for ``r`` remaining groups, ``P_0 = delta_0`` and

        P_r = shift_1( sum_{j<k} a^j (1 - a) P_{r-j-1} + a^k P_{r-k-[r>k]} ),  k = min(gamma, r),

    (one pass, then the rest from the groups left: the first rejection at drafted group ``j``
    leaves ``r - j - 1``; all ``k`` accepted leave ``r - k``, less the bonus group when
    ``r > k``). The passes for ``r`` groups are at most ``r``, so the shift loses no mass.
    """
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"a: must lie in [0, 1], got {a}")
    if num_groups < 1 or gamma < 1:
        raise ValueError(f"num_groups, gamma: must be >= 1, got {num_groups}, {gamma}")
    laws = [np.zeros(num_groups + 1) for _ in range(num_groups + 1)]
    laws[0][0] = 1.0
    for r in range(1, num_groups + 1):
        k = min(gamma, r)
        rest = np.zeros(num_groups + 1)
        for j in range(k):
            rest += a**j * (1 - a) * laws[r - (j + 1)]
        rest += a**k * laws[r - k - (1 if r > k else 0)]
        if rest[-1] != 0.0:
            raise AssertionError("pass_count_pmf: mass beyond num_groups passes")
        laws[r][1:] = rest[:-1]
    return laws[num_groups]


def convolution_power(pmf: np.ndarray, n: int) -> np.ndarray:
    """The law of the sum of ``n`` iid draws from ``pmf`` (support ``0..len - 1``): the
    ``n``-fold convolution by repeated squaring with ``np.convolve`` (direct summation, no FFT:
    every term is a product of non-negative numbers, so each entry, tails included, carries a
    relative rounding error of order ``len x log2(n) x eps``, not an absolute one)."""
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    result = np.ones(1)
    power = np.asarray(pmf, dtype=float)
    while True:
        if n & 1:
            result = np.convolve(result, power)
        n >>= 1
        if n == 0:
            return result
        power = np.convolve(power, power)


def two_sided_pvalues(pmf: np.ndarray) -> np.ndarray:
    """``p(s) = min(1, 2 min(P(S <= s), P(S >= s)))`` for every ``s`` in the support of
    ``pmf`` (tails summed from their own ends, so small tails keep their relative precision)."""
    lower = np.cumsum(pmf)
    upper = np.cumsum(pmf[::-1])[::-1]
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


def exact_pass_test_pvalue(passes: np.ndarray, num_groups: int, a: float, gamma: int) -> float:
    """Exact two-sided p-value of the total target passes of ``len(passes)`` iid sequences
    against the law of ``pass_count_pmf`` (see ``test_target_passes_follow_their_exact_law``)."""
    total = int(np.sum(passes))
    law = convolution_power(pass_count_pmf(num_groups, a, gamma), len(passes))
    if not 0 <= total < law.size:
        raise ValueError(f"passes: total {total} outside the support 0..{law.size - 1}")
    return float(two_sided_pvalues(law)[total])


L_PASS, GAMMA_PASS, N_PASS = 24, 3, 400


def constant_acceptance_pair(shift: float) -> tuple[MixtureARModel, MixtureARModel,
                                                     GroupSchedule, float]:
    """Target ``N(0, 1)`` and draft ``N(shift, 1)`` at every position, whatever the prefix
    (zero coupling): each drafted group is accepted with probability ``a = 1 - TV =
    1 - (2 Phi(shift/2) - 1)``, independently of everything before it (its draft token and its
    uniform are fresh draws). Returns (draft, target, one-position-per-group schedule, a)."""
    L, d = L_PASS, 1
    target = MixtureARModel(np.zeros((L, 1)), np.zeros((L, 1, d)), np.ones((L, 1, d)),
                            np.zeros((L, L)), np.zeros(1))
    draft = MixtureARModel(np.zeros((L, 1)), np.full((L, 1, d), shift), np.ones((L, 1, d)),
                           np.zeros((L, L)), np.zeros(1))
    schedule = GroupSchedule(tuple((i,) for i in range(L)))
    a = 1.0 - tv_equal_scale_gaussians(np.array([shift]), np.zeros(1), np.ones(1))
    return draft, target, schedule, a


def passes_for_outcomes(accepts: tuple[bool, ...], gamma: int) -> int:
    """Target passes of the decoder's control flow (bonus group on, no pre-fill) when group
    ``g``'s verification, if it happens, accepts iff ``accepts[g]`` (each group is verified at
    most once: a rejected group is filled by the target, later drafts of the round are
    discarded unverified)."""
    G, g, passes = len(accepts), 0, 0
    while g < G:
        k = min(gamma, G - g)
        passes += 1
        for j in range(k):
            if not accepts[g + j]:
                g += j + 1
                break
        else:
            g += k + (1 if g + k < G else 0)
    return passes


def test_pass_count_pmf_matches_enumeration_and_expected_passes() -> None:
    """Deterministic: the pmf sums to 1, its mean is ``expected_passes``, and it equals the law
    obtained by enumerating all ``2^G`` acceptance patterns through the decoder's control flow."""
    for G in (1, 2, 5, 9):
        for gamma in (1, 2, 3, 4):
            for a in (0.0, 0.3, 0.8025, 1.0):
                pmf = pass_count_pmf(G, a, gamma)
                assert pmf.min() >= 0.0
                assert pmf.sum() == pytest.approx(1.0, abs=1e-14)
                mean = float(np.dot(np.arange(G + 1), pmf))
                assert mean == pytest.approx(expected_passes(G, a, gamma), rel=1e-12)
                brute = np.zeros(G + 1)
                for accepts in itertools.product((False, True), repeat=G):
                    hits = sum(accepts)
                    brute[passes_for_outcomes(accepts, gamma)] += a**hits * (1 - a) ** (G - hits)
                np.testing.assert_allclose(pmf, brute, rtol=1e-12, atol=1e-15)
    _, _, _, a = constant_acceptance_pair(0.5)
    pmf = pass_count_pmf(L_PASS, a, GAMMA_PASS)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-14)
    assert float(np.dot(np.arange(L_PASS + 1), pmf)) == pytest.approx(
        expected_passes(L_PASS, a, GAMMA_PASS), rel=1e-12)


def test_total_pass_law_and_its_pvalue_are_exact() -> None:
    """Deterministic: the ``n``-fold convolution sums to 1 and has mean ``n x`` the single
    mean; against a direct ``n``-step convolution it agrees; and the two-sided test is valid at
    ``CALL_ALPHA``: ``sum_{s: p(s) <= CALL_ALPHA} P(S = s) <= CALL_ALPHA`` over the whole
    support (the level computed, not assumed)."""
    _, _, _, a = constant_acceptance_pair(0.5)
    pmf = pass_count_pmf(L_PASS, a, GAMMA_PASS)
    law = convolution_power(pmf, N_PASS)
    assert law.size == N_PASS * L_PASS + 1
    assert law.sum() == pytest.approx(1.0, abs=1e-12)
    mean_one = float(np.dot(np.arange(pmf.size), pmf))
    assert float(np.dot(np.arange(law.size), law)) == pytest.approx(N_PASS * mean_one,
                                                                      rel=1e-12)
    direct = np.ones(1)
    for _ in range(37):
        direct = np.convolve(direct, pmf)
    np.testing.assert_allclose(convolution_power(pmf, 37), direct, rtol=1e-10, atol=1e-300)
    pvalues = two_sided_pvalues(law)
    level = float(law[pvalues <= CALL_ALPHA].sum())
    assert 0.0 < level <= CALL_ALPHA


def test_target_passes_follow_their_exact_law() -> None:
    """An AR model whose conditionals ignore the prefix has a constant per-group acceptance
    ``a = 1 - TV(N(0.5, 1), N(0, 1))``: the total number of target passes of ``n = 400``
    sequences must follow its exact law. One unit of the gate's budget, at ``CALL_ALPHA``.

    Why the level is exact (no approximation): each drafted group is verified at most once and
    is accepted with probability ``a`` independently of all earlier randomness (fresh draft
    token, fresh uniform, conditionals that ignore the prefix), so one sequence's pass count
    has exactly the law ``pass_count_pmf(L, a, gamma)`` (the recursion of ``expected_passes``
    carried over distributions, checked against a brute-force enumeration). The ``n``
    sequences are independent, so the total ``S`` has exactly the ``n``-fold convolution of
    that law (computed by direct summation of non-negative terms). The p-value
    ``p = min(1, 2 min(P(S <= s), P(S >= s)))`` satisfies ``P(p <= alpha) <=
    P(F(S) <= alpha/2) + P(G(S) <= alpha/2) <= alpha`` for any ``alpha`` because each tail
    ``F(S) = P(S' <= S)``, ``G(S) = P(S' >= S)`` is super-uniform; the exact size at
    ``CALL_ALPHA`` is computed in ``test_total_pass_law_and_its_pvalue_are_exact``. The former
    z-test divided by the sample SD (a t-statistic with 399 degrees of freedom judged by the
    normal law: size 7.6e-7 > CALL_ALPHA); this test has size <= CALL_ALPHA. The law already
    accounts for the short rounds at the end of a sequence (about 5% fewer groups per pass than
    the closed form at L = 24)."""
    draft, target, schedule, a = constant_acceptance_pair(0.5)
    record_exact_call()
    seed = statistical_seed("ar-passes-constant-acceptance")
    out = ar_speculative_decode(draft, target, schedule, N_PASS, rng=np.random.default_rng(seed),
                                gamma=GAMMA_PASS)
    p = exact_pass_test_pvalue(out.target_passes, L_PASS, a, GAMMA_PASS)
    assert p > CALL_ALPHA, (
        f"total target passes {int(out.target_passes.sum())} vs exact mean "
        f"{N_PASS * expected_passes(L_PASS, a, GAMMA_PASS):.2f}: exact p = {p:.3g} <= "
        f"CALL_ALPHA (seed {seed})")


def test_exact_pass_test_flags_a_wrong_acceptance() -> None:
    """Negative control (power, not a unit of the budget): passes decoded with acceptance
    ``a = 0.7`` (draft mean ``2 Phi^-1(0.65)``) are tested against the law for ``a = 0.8025``
    (draft mean 0.5), ``n = 400``: the p-value must be far below ``CALL_ALPHA``."""
    draft, target, schedule, a_wrong = constant_acceptance_pair(2.0 * float(norm.ppf(0.65)))
    assert a_wrong == pytest.approx(0.7, abs=1e-12)
    _, _, _, a_claimed = constant_acceptance_pair(0.5)
    seed = statistical_seed("ar-passes-wrong-acceptance")
    out = ar_speculative_decode(draft, target, schedule, N_PASS, rng=np.random.default_rng(seed),
                                gamma=GAMMA_PASS)
    p = exact_pass_test_pvalue(out.target_passes, L_PASS, a_claimed, GAMMA_PASS)
    assert p < 1e-6 * CALL_ALPHA, f"p = {p:.3g} (seed {seed})"
