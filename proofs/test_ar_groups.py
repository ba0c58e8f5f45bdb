"""Result 8 -- AR speculative decoding over groups is exact; groups per pass and speed-up.

Statement
---------
Two groups of one token each, target p(x1) p(x2 | x1), draft q(x1) q(x2 | x1).  The draft
proposes both groups, the target scores them (group 2 conditioned on the draft's x1), and the
groups are walked in order: each is accepted or resampled from its residual (result 1); at the
first group with a rejection the resampled token is kept and every later group is discarded
(the next round restarts from the new prefix).  Then the output's joint law is
p(x1) p(x2 | x1).  Keeping group 2 after group 1 was rejected is *not* exact.

With a constant per-group acceptance probability a (an idealisation, as in Leviathan et al.
2023; exactness does not need it), draft length gamma and a bonus group when all gamma groups
pass, the number of groups produced per target pass has mean
    sum_{i=0}^{gamma} a^i = (1 - a^(gamma+1)) / (1 - a),
and with a draft/target cost ratio c (one round = gamma draft passes + one target pass) the
speed-up over target-only decoding is (1 - a^(gamma+1)) / ((1 - a)(gamma c + 1)).

Derivation
----------
* Exactness, symbolic and exhaustive on a finite toy: tokens take 2 values, all probabilities
  are SymPy symbols.  Every path of the algorithm (draft values, accept/reject of each group,
  residual value, continuation round) is enumerated with its probability; min(1, p/q) and the
  residual are resolved by a case split on which value has p > q, for every combination of
  orderings (group 1, group 2 given x1 = 0, group 2 given x1 = 1: 8 cases).  In every case the
  output law equals p(x1) p(x2 | x1) identically.  Two schedules are checked: gamma = 2 (walk
  and discard) and gamma = 1 with a bonus group.  The argument only uses result 1 for each
  group (accepted part min(p, q) + residual part (p - q)^+ = p), so it is the same for
  densities.  The path probabilities show *why*: P(x1, x2) = [min(p1, q1)(x1) + (p1 - q1)^+(x1)]
  p2(x2 | x1); the first bracket is "group 1 accepted" (group 2 then verified against the
  correct prefix), the second "group 1 resampled" (group 2 redrawn from the new prefix).
* Counterexample (symbolic): keeping group 2 after a rejection pairs the resampled x1' with an
  x2 ~ p(. | old x1).  In the case p1(0) > q1(0) the law at (0, v) is off by exactly
  (p1(0) - q1(0)) (p2(v | 1) - p2(v | 0)), nonzero whenever group 2 depends on group 1.
* Groups per pass (symbolic in gamma): the number N of accepted groups before the first
  rejection is truncated geometric, P(N = i) = a^i (1 - a) for i < gamma, P(N = gamma) = a^gamma
  (sums to 1); the pass yields N + 1 groups (the resampled group, or the bonus group);
  E[N + 1] = sum_{i=0}^{gamma} a^i = (1 - a^(gamma+1))/(1 - a) (``summation``), confirmed by
  brute-force enumeration of accept/reject patterns for gamma = 1..4.  Speed-up = E[N + 1] /
  (gamma c + 1), a symbolic identity.

No step is numeric.

Implemented by ``cspd_ref.ar.ar_speculative_decode``; the formulas by
``cspd_ref.theory.expected_groups_per_pass`` and ``cspd_ref.theory.expected_speedup``.
"""

from __future__ import annotations

import itertools

import sympy as sp

Dist = dict[int, sp.Expr]
VALUES = (0, 1)

P1, Q1 = sp.symbols("P1 Q1", positive=True)  # p1(0), q1(0)
P2 = {v: sp.Symbol(f"P2_{v}", positive=True) for v in VALUES}  # p2(0 | x1 = v)
Q2 = {v: sp.Symbol(f"Q2_{v}", positive=True) for v in VALUES}  # q2(0 | x1 = v)


def binary(prob0: sp.Expr) -> Dist:
    return {0: prob0, 1: 1 - prob0}


p1, q1 = binary(P1), binary(Q1)
p2 = {v: binary(P2[v]) for v in VALUES}
q2 = {v: binary(Q2[v]) for v in VALUES}


class Verifier:
    """Result 1 for one group, with min/max resolved by the case ``p(0) > q(0)`` or not."""

    def __init__(self, p: Dist, q: Dist, p_wins_at_0: bool) -> None:
        wins = {0: p_wins_at_0, 1: not p_wins_at_0}  # binary: p > q at exactly one value
        self.p, self.q = p, q
        #: P(accept | draft value v) = min(1, p(v)/q(v))
        self.accept = {v: sp.Integer(1) if wins[v] else p[v] / q[v] for v in VALUES}
        plus = {v: p[v] - q[v] if wins[v] else sp.Integer(0) for v in VALUES}
        tv = sum(plus.values())
        #: residual law r = (p - q)^+ / TV
        self.residual = {v: plus[v] / tv for v in VALUES}

    def output_law(self) -> Dist:
        """Law of one speculative step: draft, accept or resample."""
        out = {v: self.q[v] * self.accept[v] for v in VALUES}
        rejected = sum(self.q[v] * (1 - self.accept[v]) for v in VALUES)
        return {v: out[v] + rejected * self.residual[v] for v in VALUES}


def ar_law(cases: tuple[bool, bool, bool], schedule: str) -> dict[tuple[int, int], sp.Expr]:
    """Exact output law of one two-group sequence, every path enumerated.

    ``schedule``: ``"gamma2"`` (draft both groups, walk, discard after a rejection),
    ``"gamma2_keep"`` (the bug: keep group 2 after a rejection of group 1), or
    ``"gamma1_bonus"`` (draft one group; if accepted, sample group 2 from the target).
    """
    g1 = Verifier(p1, q1, cases[0])
    g2 = {v: Verifier(p2[v], q2[v], cases[1 + v]) for v in VALUES}
    law = {k: sp.Integer(0) for k in itertools.product(VALUES, VALUES)}
    for x1 in VALUES:
        # gamma = 1 drafts no group 2: a dummy x2 = 0 with probability 1 keeps one loop
        draft2 = q2[x1] if schedule != "gamma1_bonus" else {0: sp.Integer(1), 1: sp.Integer(0)}
        for x2 in VALUES:
            pq = q1[x1] * draft2[x2]
            acc1 = g1.accept[x1]
            # group 1 accepted: prefix unchanged, group 2 verified against p2(. | x1)
            if schedule == "gamma1_bonus":
                for y2 in VALUES:  # bonus group: straight from the target's conditional
                    law[(x1, y2)] += pq * acc1 * p2[x1][y2]
            else:
                acc2 = g2[x1].accept[x2]
                law[(x1, x2)] += pq * acc1 * acc2
                for y2 in VALUES:
                    law[(x1, y2)] += pq * acc1 * (1 - acc2) * g2[x1].residual[y2]
            # group 1 rejected: keep the resampled y1
            for y1 in VALUES:
                w = pq * (1 - acc1) * g1.residual[y1]
                if schedule == "gamma2_keep":  # bug: group 2's result (old prefix x1) is kept
                    acc2 = g2[x1].accept[x2]
                    law[(y1, x2)] += w * acc2
                    for y2 in VALUES:
                        law[(y1, y2)] += w * (1 - acc2) * g2[x1].residual[y2]
                else:  # discard group 2; next round verifies a fresh draft given y1
                    cont = g2[y1].output_law()
                    for y2 in VALUES:
                        law[(y1, y2)] += w * cont[y2]
    return law


ALL_CASES = list(itertools.product((True, False), repeat=3))


def test_single_group_verifier_is_exact() -> None:
    """Sanity: one group reproduces its target in both ordering cases (result 1)."""
    for win in (True, False):
        out = Verifier(p1, q1, win).output_law()
        assert all(sp.simplify(out[v] - p1[v]) == 0 for v in VALUES)


def test_walk_and_discard_is_exact() -> None:
    """gamma = 2: output law = p1(x1) p2(x2 | x1) in all 8 ordering cases."""
    for cases in ALL_CASES:
        law = ar_law(cases, "gamma2")
        for (v1, v2), prob in law.items():
            assert sp.simplify(prob - p1[v1] * p2[v1][v2]) == 0, (cases, v1, v2)


def test_bonus_group_schedule_is_exact() -> None:
    """gamma = 1 + bonus group: output law = p1(x1) p2(x2 | x1) in all cases."""
    for cases in ALL_CASES:
        law = ar_law(cases, "gamma1_bonus")
        for (v1, v2), prob in law.items():
            assert sp.simplify(prob - p1[v1] * p2[v1][v2]) == 0, (cases, v1, v2)


def test_keeping_later_groups_after_rejection_is_biased() -> None:
    """The bug's deviation at (0, v) is (P1 - Q1)(p2(v|1) - p2(v|0)) when p1(0) > q1(0)."""
    for cases in ALL_CASES:
        if not cases[0]:
            continue
        law = ar_law(cases, "gamma2_keep")
        for v2 in VALUES:
            dev = sp.simplify(law[(0, v2)] - p1[0] * p2[0][v2])
            assert sp.simplify(dev - (P1 - Q1) * (p2[1][v2] - p2[0][v2])) == 0
            assert dev != 0
    # concrete numbers: p1(0) = 0.7, q1(0) = 0.4, p2(0|0) = 0.9, p2(0|1) = 0.2, q2 = 0.5
    law = ar_law((True, True, False), "gamma2_keep")
    nums = {
        P1: sp.Rational(7, 10),
        Q1: sp.Rational(2, 5),
        P2[0]: sp.Rational(9, 10),
        P2[1]: sp.Rational(1, 5),
        Q2[0]: sp.Rational(1, 2),
        Q2[1]: sp.Rational(1, 2),
    }
    got = sp.nsimplify(law[(0, 0)].subs(nums))
    want = sp.Rational(7, 10) * sp.Rational(9, 10)
    assert got == want - sp.Rational(3, 10) * sp.Rational(7, 10)  # 0.42 instead of 0.63


# ------------------------------------------------------------------- groups per pass, speed-up

acc = sp.Symbol("a", positive=True)
gamma = sp.Symbol("gamma", integer=True, positive=True)
i = sp.Symbol("i", integer=True, nonnegative=True)
cost = sp.Symbol("c", positive=True)

GROUPS_PER_PASS = (1 - acc ** (gamma + 1)) / (1 - acc)


def test_truncated_geometric_sums_to_one() -> None:
    """P(N = i) = a^i (1 - a), i < gamma; P(N = gamma) = a^gamma."""
    total = sp.summation(acc**i * (1 - acc), (i, 0, gamma - 1)) + acc**gamma
    assert sp.simplify(sp.piecewise_fold(total).subs(sp.Eq(acc, 1), False)) == 1


def test_expected_groups_per_pass() -> None:
    """E[N + 1] = sum_{i=0}^{gamma} a^i = (1 - a^(gamma+1)) / (1 - a)."""
    mean = sp.summation((i + 1) * acc**i * (1 - acc), (i, 0, gamma - 1)) + (gamma + 1) * acc**gamma
    mean = sp.piecewise_fold(mean).subs(sp.Eq(acc, 1), False)
    assert sp.simplify(mean - GROUPS_PER_PASS) == 0
    power_sum = sp.piecewise_fold(sp.summation(acc**i, (i, 0, gamma))).subs(sp.Eq(acc, 1), False)
    assert sp.simplify(power_sum - GROUPS_PER_PASS) == 0
    # a -> 1: every group accepted, gamma + 1 groups per pass
    assert sp.limit(GROUPS_PER_PASS.subs(gamma, 4), acc, 1) == 5


def test_groups_per_pass_by_enumeration() -> None:
    """Brute force over accept/reject patterns of the gamma drafted groups, gamma = 1..4."""
    for g in range(1, 5):
        mean = sp.Integer(0)
        for pattern in itertools.product((True, False), repeat=g):
            prob = sp.Mul(*(acc if ok else 1 - acc for ok in pattern))
            n_ok = next((j for j, ok in enumerate(pattern) if not ok), g)  # before 1st rejection
            mean += prob * (n_ok + 1)  # + the resampled group or the bonus group
        assert sp.simplify(mean - GROUPS_PER_PASS.subs(gamma, g)) == 0


def test_speedup_formula() -> None:
    """Speed-up = groups per round / cost per round (target-only: 1 group per unit cost)."""
    speedup = GROUPS_PER_PASS / (gamma * cost + 1)
    stated = (1 - acc ** (gamma + 1)) / ((1 - acc) * (gamma * cost + 1))
    assert sp.simplify(speedup - stated) == 0
    # e.g. a = 0.8, gamma = 4, c = 0.05: (1 + .8 + .64 + .512 + .4096) / 1.2 = 3.3616 / 1.2
    val = stated.subs({acc: sp.Rational(4, 5), gamma: 4, cost: sp.Rational(1, 20)})
    assert val == sp.Rational(33616, 10000) / sp.Rational(6, 5)  # = 2101/750 = 2.8013...
