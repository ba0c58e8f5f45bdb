"""Result 2 -- the bounded residual sampler needs no normaliser and costs one proposal per token.

Statement
---------
Residual r = (p - q)^+ / TV, TV = int (p - q)^+.  Propose y ~ p and accept with probability
a(y) = max(0, 1 - q(y)/p(y)) (in log space: ``-expm1(min(0, log q - log p))``).  Then

* a = (p - q)^+ / p, so r / p = a / TV <= 1 / TV (the rejection-sampling bound, M = 1/TV);
* each trial succeeds with probability int p a = TV;
* an accepted y has density p a / TV = (p - q)^+ / TV = r: TV is never computed, because the
  un-normalised target p a = (p - q)^+ = TV r already has the right shape;
* the number N of trials is Geometric(TV): P(N = k) = (1 - TV)^(k-1) TV, sum 1, mean 1/TV,
  tail P(N > n) = (1 - TV)^n, and N is independent of the accepted value;
* the residual sampler runs only after a rejection (probability TV), so the expected residual
  work per token is TV * E[N] = 1 proposal, whatever p and q are.

Derivation
----------
All steps are symbolic (SymPy): the case split p >= q / p < q for the pointwise identities,
closed-form geometric sums (``summation``) for the trial law, and the joint
P(N = k, Y in dy) = (1 - TV)^(k-1) p(y) a(y) dy = [(1 - TV)^(k-1) TV] [r(y) dy], which factorises
(independence).  A numeric check at 30 digits (mpmath) on seeded Gaussian pairs confirms
int p a = TV and sup r/p <= 1/TV with equality approached in the tails where q/p -> 0.

Implemented by ``cspd_ref.speculative.residual_acceptance_probability`` and
``cspd_ref.speculative.residual_sample_loop``.
"""

from __future__ import annotations

import mpmath as mp
import sympy as sp

from proofs._common import (
    DPS,
    TOL,
    crossings_1d,
    gaussian_pairs,
    mp_integral,
    mp_pdf,
    zero_on_both_sides,
)

p, q = sp.symbols("p q", positive=True)
TV = sp.Symbol("TV", positive=True)
k = sp.Symbol("k", integer=True, positive=True)
n = sp.Symbol("n", integer=True, nonnegative=True)

a = sp.Max(0, 1 - q / p)


#: rho = 1 - TV, the per-trial failure probability; 0 < rho < 1 whenever p != q.
RHO = sp.Symbol("rho", positive=True)


def _geometric_sum(term: sp.Expr, lower: sp.Expr) -> sp.Expr:
    """sum_{k >= lower} term, with TV = 1 - rho and the convergence condition rho < 1 applied."""
    total = sp.summation(term, (k, lower, sp.oo)).subs(TV, 1 - RHO)
    return sp.simplify(sp.piecewise_fold(total).subs(RHO < 1, True))


def test_log_space_form_equals_max() -> None:
    """-expm1(min(0, log q - log p)) = 1 - min(1, q/p) = max(0, 1 - q/p).

    exp is increasing, so exp(min(0, L)) = min(exp 0, exp L) = min(1, q/p) with L = log(q/p);
    the remaining identity 1 - min(1, q/p) = max(0, 1 - q/p) is the case split.
    """
    L = sp.Symbol("L", real=True)
    assert sp.ask(sp.Q.positive(sp.diff(sp.exp(L), L)))  # exp increasing: commutes with min
    assert sp.simplify(sp.exp(sp.log(q) - sp.log(p)) - q / p) == 0

    def expm1(z: sp.Expr) -> sp.Expr:
        return sp.exp(z) - 1

    log_space = -expm1(sp.log(sp.Min(1, q / p)))  # = -expm1(min(0, log q - log p))
    assert zero_on_both_sides(log_space - a, p, q) == [0, 0]


def test_acceptance_is_residual_over_target() -> None:
    """a = (p - q)^+ / p, hence r / p = a / TV <= 1 / TV."""
    assert zero_on_both_sides(a - sp.Max(0, p - q) / p, p, q) == [0, 0]
    r = sp.Max(0, p - q) / TV
    assert zero_on_both_sides(r / p - a / TV, p, q) == [0, 0]
    # bound: 1 - a = min(1, q/p) >= 0, so a <= 1 and r/p <= 1/TV
    assert zero_on_both_sides((1 - a) - sp.Min(1, q / p), p, q) == [0, 0]
    lo, hi = zero_on_both_sides(1 / TV - r / p, p, q)
    assert sp.ask(sp.Q.nonnegative(lo)) and sp.ask(sp.Q.nonnegative(hi))


def test_accepted_law_is_residual_without_normaliser() -> None:
    """p a = (p - q)^+ = TV r: the accepted value's un-normalised density is already r."""
    r = sp.Max(0, p - q) / TV
    assert zero_on_both_sides(p * a - TV * r, p, q) == [0, 0]
    # success probability per trial: int p a = int (p - q)^+ = TV, so p a / P(success) = r
    with mp.workdps(DPS):
        for mu_q, s_q, mu_p, s_p in gaussian_pairs(3, 4):
            pd, qd = mp_pdf(mu_p, s_p), mp_pdf(mu_q, s_q)
            cuts = crossings_1d(mu_q, s_q, mu_p, s_p)
            success = mp_integral(lambda y, pd=pd, qd=qd: pd(y) * max(0, 1 - qd(y) / pd(y)), cuts)
            tv = 1 - mp_integral(lambda y, pd=pd, qd=qd: min(pd(y), qd(y)), cuts)
            assert abs(success - tv) < TOL
            # r/p <= 1/TV on a grid; the sup 1/TV is approached where q/p -> 0
            grid = [mu_p + s_p * mp.mpf(j) / 4 for j in range(-40, 41)]
            ratios = [max(0, pd(y) - qd(y)) / tv / pd(y) for y in grid]
            assert max(ratios) <= 1 / tv
            # tightness: where q/p -> 0 (a tail of the wider law, or the far side of mu_p
            # for equal scales) a -> 1 and r/p -> 1/TV
            if s_p >= s_q:
                far = mu_p + (40 if mu_p >= mu_q else -40) * s_p
                assert max(0, pd(far) - qd(far)) / pd(far) > 1 - mp.mpf(10) ** -6


def test_trial_count_is_geometric() -> None:
    """P(N = k) = (1 - TV)^(k-1) TV sums to 1, has mean 1/TV and tail (1 - TV)^n."""
    pmf = (1 - TV) ** (k - 1) * TV
    assert _geometric_sum(pmf, 1) == 1
    assert sp.simplify(_geometric_sum(k * pmf, 1) - 1 / (1 - RHO)) == 0  # mean 1/TV
    # tail P(N > n) = 1 - P(N <= n), a finite geometric sum: (1 - TV)^n
    head = sp.summation(pmf.subs(TV, 1 - RHO), (k, 1, n))
    assert sp.simplify(1 - head - RHO**n) == 0


def test_joint_law_factorises() -> None:
    """P(N = k, Y in dy) = (1 - TV)^(k-1) p a dy = Geometric(TV)(k) * r(y) dy."""
    # k - 1 failures (each of probability 1 - TV), then a success with value in dy
    joint = (1 - TV) ** (k - 1) * p * a
    factor = ((1 - TV) ** (k - 1) * TV) * (sp.Max(0, p - q) / TV)
    assert zero_on_both_sides(joint - factor, p, q) == [0, 0]


def test_expected_residual_work_is_one_proposal() -> None:
    """E[# residual proposals per token] = P(reject) E[N] = TV * (1/TV) = 1."""
    mean_trials = _geometric_sum(k * (1 - TV) ** (k - 1) * TV, 1)
    work = (1 - RHO) * mean_trials  # P(reject) = TV = 1 - rho
    assert sp.simplify(work) == 1
