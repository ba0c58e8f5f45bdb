"""Result 1 -- speculative sampling of one token is exact.

Statement
---------
Draft density q, target density p.  Draw x ~ q, u ~ U(0, 1) and accept x iff
log u < lr(x) = log p(x) - log q(x); on rejection draw from the residual
r = max(0, p - q) / TV, TV = int max(0, p - q).  Then the output has density p, and
P(accept) = int q min(1, p/q) = 1 - TV.

Derivation
----------
1. P(log u < lr) = P(u < e^lr) = min(1, e^lr) = min(1, p/q): integrate the U(0, 1) density
   from 0 to min(1, e^lr).  [symbolic]
2. Pointwise, q min(1, p/q) = min(p, q), p - min(p, q) = max(0, p - q), and so
   q min(1, p/q) + max(0, p - q) = p: case split p >= q / p < q.  [symbolic]
3. The two integrals are computed separately, from their own integrands, for Gaussian pairs
   with symbolic means and scales (equal scales with mu_p > mu_q or mu_p < mu_q; s_p > s_q;
   s_p < s_q): the regions where p > q come from the roots of log p - log q, the Gaussian
   integrals over each region from a primitive found by ``sympy.integrate`` (checked by the
   fundamental theorem of calculus).  P(accept) + TV = 1 follows, because int p = int q = 1.
   The output law is then computed from the sampler written out,
   E e^{theta X} = int e^{theta x} q min(1, p/q) dx + (1 - P(accept)) int e^{theta x} r(x) dx,
   and equals the MGF of N(mu_p, s_p^2) for every theta: the output is the target.  [symbolic]
4. On seeded random Gaussian pairs with unequal scales, int q min(1, p/q) and
   1 - int max(0, p - q) are computed by two separate quadratures, and the output CDF (the
   sampler written out, the residual normalised by its own quadrature) is compared with the
   target's ``ncdf``.  [numeric, mpmath at 30 digits]

Negative controls (each must FAIL the identity it is set against):
* missing min (accept with "probability" p/q) and residual without the max (p - q): the
  pointwise identity of step 2 fails on {p < q};
* max in place of min (accepted sub-density q max(1, p/q)): P(accept) != 1 - TV;
* "resample from the target on rejection" (residual p) and "leave the rejected draft in
  place" (residual (q - p)^+): the output MGF is not the target's, symbolically and by
  quadrature.

Implemented by ``cspd_ref.speculative.accept_from_uniforms`` and
``cspd_ref.speculative.speculative_sample``; TV by ``cspd_ref.theory.tv_distance``.
"""

from __future__ import annotations

import mpmath as mp
import pytest
import sympy as sp

from proofs._common import (
    DPS,
    P_VAL,
    Q_VAL,
    TOL,
    crossings_1d,
    gaussian_exp_primitive,
    gaussian_pairs,
    mp_integral,
    mp_pdf,
    normal_pdf,
    ratio_is_one,
    speculative_integrals,
    zero_on_both_sides,
)

p, q = P_VAL, Q_VAL
theta = sp.Symbol("theta", real=True)
mu_q, mu_p = sp.symbols("mu_q mu_p", real=True)
s = sp.Symbol("s", positive=True)
delta, k = sp.symbols("delta k", positive=True)

#: Gaussian pairs (mu_q, s_q, mu_p, s_p) covering every sign pattern of p - q; the
#: parametrisation lets SymPy decide which side of each crossing has p > q.
CASES = {
    "equal scales, mu_p > mu_q": (mu_q, s, mu_q + delta, s),
    "equal scales, mu_p < mu_q": (mu_p + delta, s, mu_p, s),
    "s_p > s_q": (mu_q, s, mu_p, s * (1 + k)),
    "s_p < s_q": (mu_q, s * (1 + k), mu_p, s),
}


def target_mgf(mu: sp.Expr, sd: sp.Expr) -> sp.Expr:
    """MGF of N(mu, sd^2): exp(theta mu + theta^2 sd^2 / 2)."""
    return sp.exp(theta * mu + theta**2 * sd**2 / 2)


def test_log_uniform_acceptance_probability() -> None:
    """P(log u < lr) = P(u < e^lr) = min(1, e^lr) = min(1, p/q), u ~ U(0, 1)."""
    c = sp.Symbol("c", positive=True)  # c = e^lr = p/q > 0
    u = sp.Symbol("u", real=True)
    d = sp.Symbol("d", positive=True)
    # log is increasing, so {log u < lr} = {u < e^lr}; integrate its indicator against U(0, 1)
    prob = sp.integrate(sp.Heaviside(c - u), (u, 0, 1))
    assert sp.simplify(prob.subs(c, 1 + d)) == 1  # c > 1: always accepted
    assert sp.simplify(prob.subs(c, 1 / (1 + d)) - 1 / (1 + d)) == 0  # c < 1: probability c
    assert sp.simplify(prob.subs(c, 1)) == 1
    # with lr = log p - log q the threshold e^lr is p/q; no density is exponentiated alone
    assert sp.simplify(sp.exp(sp.log(p) - sp.log(q)) - p / q) == 0


def test_pointwise_min_identities() -> None:
    """q min(1, p/q) = min(p, q), p - min(p, q) = max(0, p - q), and their sum rule."""
    assert zero_on_both_sides(q * sp.Min(1, p / q) - sp.Min(p, q), p, q) == [0, 0]
    assert zero_on_both_sides(p - sp.Min(p, q) - sp.Max(0, p - q), p, q) == [0, 0]
    assert zero_on_both_sides(q * sp.Min(1, p / q) + sp.Max(0, p - q) - p, p, q) == [0, 0]
    # control, missing min: q (p/q) + (p - q)^+ = p + (p - q)^+ != p where p > q
    assert zero_on_both_sides(q * (p / q) + sp.Max(0, p - q) - p, p, q)[0] != 0
    # control, residual without the max: q min(1, p/q) + (p - q) != p where p < q
    assert zero_on_both_sides(q * sp.Min(1, p / q) + (p - q) - p, p, q)[1] != 0


def test_gaussian_primitive_by_fundamental_theorem() -> None:
    """The primitive behind every symbolic integral below is right.

    G' = exp(k z) phi(z); G(+inf) - G(-inf) = 1 at k = 0 (phi integrates to 1); and after
    x = m + s z, d/dx [exp(theta m) G((x - m)/s)] at k = theta s is exp(theta x) N(x; m, s^2).
    """
    prim, at_lo, at_hi, (z, kk) = gaussian_exp_primitive()
    assert sp.simplify(sp.diff(prim, z) - sp.exp(kk * z) * normal_pdf(z, 0, 1)) == 0
    assert sp.simplify((at_hi - at_lo).subs(kk, 0)) == 1
    x, m = sp.symbols("x m", real=True)
    shifted = sp.exp(theta * m) * prim.subs({kk: theta * s, z: (x - m) / s})
    assert sp.simplify(sp.diff(shifted, x) - sp.exp(theta * x) * normal_pdf(x, m, s)) == 0


@pytest.mark.parametrize("case", list(CASES))
def test_acceptance_and_output_law_symbolic(case: str) -> None:
    """P(accept) = 1 - TV and the output MGF is the target's, from separate integrals."""
    mq, sq, mp_, sp_ = CASES[case]
    res = speculative_integrals(mq, sq, mp_, sp_, theta)
    tv = res.residual_mass  # int max(0, p - q), integrated on its own
    assert sp.simplify(res.accept + tv - 1) == 0
    assert ratio_is_one(res.mgf, target_mgf(mp_, sp_))


@pytest.mark.parametrize("case", ["equal scales, mu_p > mu_q", "s_p < s_q"])
def test_wrong_samplers_fail_symbolically(case: str) -> None:
    """Negative controls: the same integrals for known wrong samplers give a wrong answer.

    Evaluated at one rational parameter point, where the difference must be clearly non-zero.
    """
    mq, sq, mp_, sp_ = CASES[case]
    at = {mu_q: sp.Rational(1, 3), mu_p: -1, s: sp.Rational(3, 2), delta: 1, k: 1, theta: 1}
    correct = speculative_integrals(mq, sq, mp_, sp_, theta)
    # max in place of min: accept with sub-density q max(1, p/q); P(accept) != 1 - TV
    swapped = speculative_integrals(mq, sq, mp_, sp_, theta, accepted=q * sp.Max(1, p / q))
    assert abs(sp.N((swapped.accept + correct.residual_mass - 1).subs(at))) > 1e-3
    # resample from the target on rejection / leave the rejected draft in place
    for residual in (p, sp.Max(0, q - p)):
        wrong = speculative_integrals(mq, sq, mp_, sp_, theta, residual=residual)
        assert abs(sp.N((wrong.mgf - target_mgf(mp_, sp_)).subs(at))) > 1e-3


def test_acceptance_equals_one_minus_tv_numeric() -> None:
    """int q min(1, p/q) = 1 - int max(0, p - q) on seeded Gaussian pairs, two quadratures."""
    with mp.workdps(DPS):
        for mu_q_, s_q_, mu_p_, s_p_ in gaussian_pairs(1, 4):
            pd, qd = mp_pdf(mu_p_, s_p_), mp_pdf(mu_q_, s_q_)
            cuts = crossings_1d(mu_q_, s_q_, mu_p_, s_p_)
            acc = mp_integral(lambda x, pd=pd, qd=qd: qd(x) * min(1, pd(x) / qd(x)), cuts)
            tv = mp_integral(lambda x, pd=pd, qd=qd: max(0, pd(x) - qd(x)), cuts)
            assert abs(acc - (1 - tv)) < TOL
            assert 0 < tv < 1


def test_gaussian_output_law_numeric() -> None:
    """On seeded Gaussian pairs the output CDF equals the target's ``ncdf``.

    Output density = q min(1, p/q) + P(reject) r with P(reject) = 1 - (quadrature of the
    acceptance) and r = (p - q)^+ / (its own quadrature).  Control: the sampler that resamples
    from p on rejection is more than 0.01 away from p in total variation.
    """
    with mp.workdps(DPS):
        for mu_q_, s_q_, mu_p_, s_p_ in gaussian_pairs(2, 3):
            pd, qd = mp_pdf(mu_p_, s_p_), mp_pdf(mu_q_, s_q_)
            cuts = crossings_1d(mu_q_, s_q_, mu_p_, s_p_)
            reject = 1 - mp_integral(lambda x, pd=pd, qd=qd: qd(x) * min(1, pd(x) / qd(x)), cuts)
            mass = mp_integral(lambda x, pd=pd, qd=qd: max(0, pd(x) - qd(x)), cuts)

            def out(x: mp.mpf, pd=pd, qd=qd, reject=reject, mass=mass) -> mp.mpf:
                return qd(x) * min(1, pd(x) / qd(x)) + reject * max(0, pd(x) - qd(x)) / mass

            def wrong(x: mp.mpf, pd=pd, qd=qd, reject=reject) -> mp.mpf:
                return qd(x) * min(1, pd(x) / qd(x)) + reject * pd(x)

            for t in (mu_p_ - s_p_, mu_q_ + 2 * s_q_):
                pts = [mp.ninf, *(c for c in cuts if c < t), t]
                assert abs(mp.quad(out, pts) - mp.ncdf(t, mu_p_, s_p_)) < TOL
            # control: the wrong sampler is off in total variation.  wrong - p = min(p, q) - beta p
            # changes sign where p = q and where q = beta p (log p - log q = -log beta)
            kinks = [*cuts, *crossings_1d(mu_q_, s_q_, mu_p_, s_p_, -mp.log(1 - reject))]
            tv_wrong = mp_integral(lambda x, pd=pd, wrong=wrong: abs(wrong(x) - pd(x)), kinks) / 2
            assert tv_wrong > mp.mpf("1e-2")
