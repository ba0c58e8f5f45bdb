"""Result 1 -- speculative sampling of one token is exact.

Statement
---------
Draft density q, target density p.  Draw x ~ q, u ~ U(0, 1) and accept x iff
log u < lr(x) = log p(x) - log q(x); on rejection draw from the residual
r = max(0, p - q) / (1 - beta), beta = int min(p, q).  Then the output has density p, and
P(accept) = int q min(1, p/q) = beta = 1 - TV(p, q) with TV = int max(0, p - q).

Derivation
----------
1. P(log u < lr) = P(u < e^lr) = min(1, e^lr) = min(1, p/q): integrate the U(0, 1) density
   from 0 to min(1, e^lr).  [symbolic]
2. Pointwise, q min(1, p/q) = min(p, q) and p - min(p, q) = max(0, p - q): case split
   p >= q / p < q.  [symbolic]
3. Hence the sub-density of "accepted with value x" is min(p, q)(x), P(accept) = beta, and the
   rejected mass is 1 - beta = int (p - min(p, q)) = int max(0, p - q) = TV.  So
   (1 - beta) r = max(0, p - q) and the output density is
   q min(1, p/q) + (1 - beta) r = min(p, q) + max(0, p - q) = p.  [symbolic, pointwise]
4. On concrete Gaussian pairs (seeded random parameters, unequal scales) the integral identity
   int q min(1, p/q) = 1 - int max(0, p - q) and the exactness of the output density are checked
   by mpmath quadrature at 30 digits.  [numeric]

Implemented by ``cspd_ref.speculative.accept_from_uniforms`` and
``cspd_ref.speculative.speculative_sample``; TV by ``cspd_ref.theory.tv_distance``.
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
    """q min(1, p/q) = min(p, q) and p - min(p, q) = max(0, p - q)."""
    assert zero_on_both_sides(q * sp.Min(1, p / q) - sp.Min(p, q), p, q) == [0, 0]
    assert zero_on_both_sides(p - sp.Min(p, q) - sp.Max(0, p - q), p, q) == [0, 0]


def test_output_density_is_target_pointwise() -> None:
    """q min(1, p/q) + (1 - beta) r = p with (1 - beta) r = max(0, p - q)."""
    beta = sp.Symbol("beta", positive=True)
    r = sp.Max(0, p - q) / (1 - beta)
    output = q * sp.Min(1, p / q) + (1 - beta) * r
    assert zero_on_both_sides(output - p, p, q) == [0, 0]
    # the identity fails without the min (the "missing min" mutant): q * (p/q) + (p-q)^+ != p
    assert zero_on_both_sides(q * (p / q) + sp.Max(0, p - q) - p, p, q)[0] != 0


def test_rejected_mass_equals_tv() -> None:
    """1 - beta = TV: integrate p - min(p, q) = max(0, p - q) with int p = 1."""
    # Symbolic in the integrals: I_p = int p = 1, I_min = int min(p, q) = beta.
    # By linearity int max(0, p - q) = int (p - min(p, q)) = I_p - I_min.
    I_p, beta = sp.Integer(1), sp.Symbol("beta", positive=True)
    tv = I_p - beta
    assert sp.simplify((1 - beta) - tv) == 0
    # The same on a Gaussian pair by quadrature (the pointwise identity integrated).
    with mp.workdps(DPS):
        for mu_q, s_q, mu_p, s_p in gaussian_pairs(1, 4):
            pd, qd = mp_pdf(mu_p, s_p), mp_pdf(mu_q, s_q)
            cuts = crossings_1d(mu_q, s_q, mu_p, s_p)
            acc = mp_integral(lambda x, pd=pd, qd=qd: qd(x) * min(1, pd(x) / qd(x)), cuts)
            tv = mp_integral(lambda x, pd=pd, qd=qd: max(0, pd(x) - qd(x)), cuts)
            assert abs(acc - (1 - tv)) < TOL
            assert 0 < tv < 1


def test_gaussian_output_law_numeric() -> None:
    """On Gaussian pairs the output's CDF at several points equals the target's CDF."""
    with mp.workdps(DPS):
        for mu_q, s_q, mu_p, s_p in gaussian_pairs(2, 3):
            pd, qd = mp_pdf(mu_p, s_p), mp_pdf(mu_q, s_q)
            cuts = crossings_1d(mu_q, s_q, mu_p, s_p)
            beta = mp_integral(lambda x, pd=pd, qd=qd: min(pd(x), qd(x)), cuts)

            def out(x: mp.mpf, pd=pd, qd=qd, beta=beta) -> mp.mpf:
                r = max(0, pd(x) - qd(x)) / (1 - beta)
                return qd(x) * min(1, pd(x) / qd(x)) + (1 - beta) * r

            for t in (mu_p - s_p, mu_q + 2 * s_q):
                pts = [c for c in cuts if c < t]
                cdf_out = mp.quad(out, [mp.ninf, *pts, t])
                assert abs(cdf_out - mp.ncdf(t, mu_p, s_p)) < TOL
