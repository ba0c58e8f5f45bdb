"""Result 3 -- batched residual proposals with first-success selection = the sequential loop.

Statement
---------
Each residual trial (propose y ~ p, accept with probability a(y) = (p - q)^+ / p) is, by
result 2, an independent event "success with value in A" of probability TV * R(A), where R is
the residual law r.  The batched sampler draws k trials per still-pending row per round and
keeps the **first** success in index order; a row with no success gets another round.  Number
the trials globally, j = (m - 1) k + i for position i in round m.  Then

    P(selected trial is j, value in A) = (1 - TV)^(j-1) * TV * R(A),

exactly the law of the sequential loop (result 2): the selected index is Geometric(TV) (so the
reported trial count must be j, not k * rounds), the value has law r, and the two are
independent.  The number of rounds is Geometric(1 - (1 - TV)^k).

Derivation
----------
* Round m is reached iff the k (m - 1) earlier trials all failed: ((1 - TV)^k)^(m-1).  Inside
  round m, the first success is at position i iff positions 1..i-1 fail and i succeeds with a
  value in A: (1 - TV)^(i-1) TV R(A).  The product is (1 - TV)^(j-1) TV R(A) (power rule,
  symbolic in k, m, i).  Summed over i = 1..k and m >= 1 it is R(A) (symbolic geometric sums
  with symbolic k): the selection never fails and the value law is R.  [symbolic]
* Brute-force enumeration of every outcome of every trial (fail / success in A / success not
  in A) for k = 1, 2, 3 and three rounds reproduces the table P(j, A) exactly, with TV and
  R(A) as symbols.  [symbolic, exhaustive]
* The round sizes need not be constant: any sizes k_1, k_2, ... fixed before the round's
  outcomes are seen (doubling, a memory budget that depends on how many *other* rows are still
  pending) give the same law; symbolic for three rounds of sizes k_1, k_2, k_3, and exhaustive
  enumeration with sizes 1, 2, 4.  [symbolic]
* Contrasts (why "first" matters): keeping the *last* success of a round leaves the value law
  R but changes the index law (so trial counts stop being Geometric(TV)); preferring a
  success whose value lies in A (any value-dependent choice) changes the value law.

Implemented by ``cspd_ref.speculative.residual_sample_batched``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import sympy as sp

TV = sp.Symbol("TV", positive=True)
R = sp.Symbol("R_A", positive=True)  # R(A) = residual probability of a fixed set A
RHO = sp.Symbol("rho", positive=True)  # rho = 1 - TV, in (0, 1)

k, m, i = sp.symbols("k m i", integer=True, positive=True)

FAIL, HIT_IN_A, HIT_OUT_A = 0, 1, 2
#: probability of one trial's outcome: fail, success with value in A, success with value not in A
OUTCOME_PROB = {FAIL: 1 - TV, HIT_IN_A: TV * R, HIT_OUT_A: TV * (1 - R)}

Selector = Callable[[Sequence[int]], int | None]


def first_success(round_outcomes: Sequence[int]) -> int | None:
    """Index of the first success in the round (the rule of the batched sampler)."""
    return next((t for t, o in enumerate(round_outcomes) if o != FAIL), None)


def last_success(round_outcomes: Sequence[int]) -> int | None:
    """Index of the last success in the round (a wrong rule, for contrast)."""
    hits = [t for t, o in enumerate(round_outcomes) if o != FAIL]
    return hits[-1] if hits else None


def prefer_in_a(round_outcomes: Sequence[int]) -> int | None:
    """A success with value in A if there is one, else the first success (value-dependent)."""
    in_a = [t for t, o in enumerate(round_outcomes) if o == HIT_IN_A]
    return in_a[0] if in_a else first_success(round_outcomes)


def enumerate_batched(
    size: int | Sequence[int], rounds: int, select: Selector
) -> dict[tuple[int, int], sp.Expr]:
    """Exact law of (global index j, outcome) of the selected trial, over ``rounds`` rounds.

    ``size`` is the number of proposals per round, a constant or one entry per round (e.g.
    doubling).  Every outcome vector of a round is enumerated with its probability; a round with
    no success sends the row to the next round.
    """
    sizes = [size] * rounds if isinstance(size, int) else list(size)
    law: dict[tuple[int, int], sp.Expr] = {}
    reach = sp.Integer(1)  # probability that the round is reached
    used = 0  # proposals drawn in earlier rounds
    for k_round in sizes[:rounds]:
        for outcomes in itertools.product((FAIL, HIT_IN_A, HIT_OUT_A), repeat=k_round):
            prob = reach * sp.Mul(*(OUTCOME_PROB[o] for o in outcomes))
            t = select(outcomes)
            if t is not None:
                key = (used + t + 1, outcomes[t])
                law[key] = law.get(key, sp.Integer(0)) + prob
        reach = reach * (1 - TV) ** k_round
        used += k_round
    return law


def test_round_structure_gives_geometric_index() -> None:
    """((1-TV)^k)^(m-1) (1-TV)^(i-1) TV R = (1-TV)^(j-1) TV R with j = (m-1)k + i."""
    j = (m - 1) * k + i
    batched = ((1 - TV) ** k) ** (m - 1) * (1 - TV) ** (i - 1) * TV * R
    sequential = (1 - TV) ** (j - 1) * TV * R
    assert sp.simplify(sp.powsimp(batched / sequential, force=True)) == 1


def test_batched_selection_is_complete() -> None:
    """sum_{m >= 1} sum_{i=1}^{k} P(m, i, A) = R(A): never fails, value law R."""
    inner = sp.summation((RHO) ** (i - 1) * (1 - RHO) * R, (i, 1, k))  # within a round
    assert sp.simplify(inner - (1 - RHO**k) * R) == 0
    x = sp.Symbol("x", positive=True)  # x = rho^k in (0, 1): probability a round fails
    outer = sp.summation(x ** (m - 1), (m, 1, sp.oo))
    outer = sp.piecewise_fold(outer).subs(x < 1, True).subs(sp.Abs(x) < 1, True)
    total = sp.simplify(inner * outer.subs(x, RHO**k))
    assert sp.simplify(total - R) == 0
    # rounds ~ Geometric(1 - (1 - TV)^k): expected number of rounds 1 / (1 - rho^k)
    mean_rounds = sp.summation(m * x ** (m - 1) * (1 - x), (m, 1, sp.oo))
    mean_rounds = sp.piecewise_fold(mean_rounds).subs(x < 1, True).subs(sp.Abs(x) < 1, True)
    assert sp.simplify(mean_rounds - 1 / (1 - x)) == 0


def test_enumeration_matches_sequential_loop() -> None:
    """Exhaustive enumeration, k = 1, 2, 3: P(j, value in A) = (1 - TV)^(j-1) TV R(A)."""
    for size in (1, 2, 3):
        rounds = 3
        law = enumerate_batched(size, rounds, first_success)
        for j in range(1, size * rounds + 1):
            geo = (1 - TV) ** (j - 1) * TV
            assert sp.expand(law[(j, HIT_IN_A)] - geo * R) == 0
            assert sp.expand(law[(j, HIT_OUT_A)] - geo * (1 - R)) == 0


def test_variable_round_sizes() -> None:
    """Round sizes k_1, k_2, ... fixed before each round (doubling, memory caps): same law.

    Symbolic in k_1, k_2, k_3: reaching round 3 and succeeding first at its position i has
    probability (1-TV)^(k_1 + k_2) (1-TV)^(i-1) TV R = (1-TV)^(j-1) TV R, j = k_1 + k_2 + i.
    Exhaustive enumeration with the doubling schedule 1, 2, 4 confirms the whole table.
    """
    k1, k2 = sp.symbols("k_1 k_2", integer=True, positive=True)
    j = k1 + k2 + i
    batched = (1 - TV) ** k1 * (1 - TV) ** k2 * (1 - TV) ** (i - 1) * TV * R
    assert sp.simplify(sp.powsimp(batched / ((1 - TV) ** (j - 1) * TV * R), force=True)) == 1
    law = enumerate_batched([1, 2, 4], 3, first_success)
    for jj in range(1, 8):
        geo = (1 - TV) ** (jj - 1) * TV
        assert sp.expand(law[(jj, HIT_IN_A)] - geo * R) == 0
        assert sp.expand(law[(jj, HIT_OUT_A)] - geo * (1 - R)) == 0


def test_last_success_breaks_the_trial_count() -> None:
    """Last success per round: value law still R, index law no longer Geometric(TV)."""
    law = enumerate_batched(2, 1, last_success)
    p_index_1 = law[(1, HIT_IN_A)] + law[(1, HIT_OUT_A)]
    assert sp.expand(p_index_1 - TV * (1 - TV)) == 0  # success at 1 and failure at 2
    assert sp.expand(p_index_1 - TV) != 0  # geometric would give TV
    # the value law given selection is still R (selection ignores values)
    sel_in_a = sum(v for (_, o), v in law.items() if o == HIT_IN_A)
    sel = sum(law.values())
    assert sp.simplify(sel_in_a / sel - R) == 0


def test_value_dependent_selection_is_biased() -> None:
    """Preferring a success in A inflates P(value in A) above R(A)."""
    law = enumerate_batched(2, 1, prefer_in_a)
    sel_in_a = sum(v for (_, o), v in law.items() if o == HIT_IN_A)
    sel = sum(law.values())
    bias = sp.factor(sp.simplify(sel_in_a / sel - R))
    assert bias != 0
    # concrete numbers: TV = 1/2, R(A) = 1/2 gives P(A | selected) = 7/12, not 1/2
    assert sp.nsimplify(bias.subs({TV: sp.Rational(1, 2), R: sp.Rational(1, 2)})) == sp.Rational(
        1, 12
    )
