"""Result 7 -- aligned diffusion-head trajectories give exactly the target's token law.

Statement
---------
Draft and target diffusion heads run on the **same** x_T and eps_T, ..., eps_2, reaching x_1^q
and x_1^p.  The draft proposes x_0 ~ q_1 = N(m_q(x_1^q, 1), (tau s_q)^2); speculative sampling
(result 1, with the residual of result 2 or 4) is applied between q_1 and the target's last
step p_1 = N(m_p(x_1^p, 1), (tau s_p)^2).  Then the token x_0 has exactly the law of the
target chain's x_0, whatever the draft's parameters.

Derivation
----------
Let S = (x_T, eps_T, ..., eps_2) be the shared noise.  Given S, q_1 and p_1 are fixed Gaussians
and the output is the one-token sampler between them.  Its conditional law is computed from the
sampler written out (draw x ~ q_1, accept with probability min(1, p_1/q_1), otherwise draw from
(p_1 - q_1)^+ normalised by its own integral); every integral is evaluated by SymPy on the
regions where the sign of p_1 - q_1 is constant (``proofs._common.speculative_integrals``,
checked in result 1).  The draft's parameters enter this computation through q_1 and drop out:
the conditional law is p_1( . | x_1^p(S)).  Because S ~ N(0, I) and x_1^p(S) is produced by
the target's own transitions, integrating over S gives the target chain's x_0 law.  (Sharing
the noise raises the acceptance rate; it is not what makes the scheme exact.)

Checked on a 1-D linear-Gaussian chain with T = 3: target m_t(x) = a_t x + b_t with scales
s_t, draft m_t(x) = c_t x + d_t with scales u_t, all symbolic:

* the conditional MGF E[e^{theta x_0} | S] is computed for every sign pattern of p_1 - q_1
  (equal last-step scales u_1 = s_1 with m_p > m_q, m_p < m_q, m_p = m_q; s_1 > u_1;
  s_1 < u_1; m_p and m_q are the two last-step means as functions of S).  As
  computed, it is a function of the draft's c_1..c_3, d_1..d_3, u_1..u_3 and of the target's
  coefficients; it equals (ratio simplifies to 1) the MGF of N(a_1 x_1^p + b_1, (tau s_1)^2),
  which contains no draft coefficient, in every case;  [symbolic]
* the output's MGF, the expectation of the conditional MGF over S (lemma
  E exp(k Z) = exp(k^2/2), Z ~ N(0, 1), by ``integrate``), equals the MGF of the target chain
  run with independent noises and the closed form N(mean_0, var_0) of the recursion
  mean_{t-1} = a_t mean_t + b_t, var_{t-1} = a_t^2 var_t + tau^2 s_t^2.  Equal MGFs on a
  neighbourhood of 0 mean equal laws.  [symbolic]

Negative controls (each must depend on the draft, so the derivation cannot be vacuous):
* unaligned last step -- the target's last step evaluated at the draft's state x_1^q: the same
  pipeline gives an output MGF that depends on c_t, d_t, u_t and differs from the target's;
  with a draft shift d_2 = b_2 + 1/2 the mean is off by a_1/2, with a draft slope c_3 = 2 a_3
  the variance is off by 3 a_1^2 a_2^2 a_3^2;  [symbolic]
* "resample from the target on rejection": the conditional law of the output changes when
  only the draft's coefficients change (evaluated at a rational point).  [symbolic, evaluated]

The joint alternative (accept on the whole-trajectory log-ratio, result 6; docs/algorithms.md
§4.3) is exact as well, with acceptance usually lower.  Exact: yes (result 1 on trajectory space).
Lower acceptance: not always.  Counterexample (T = 2, 1-D): target x_1 = x_2 + s_2 eps_2,
draft x_1 = -x_2 + s_2 eps_2, identical last steps x_0 = A x_1 + tau s_1 eps_1.  With
Z ~ N(0, 1) and the equal-scale TV of result 5, aligned acceptance = E[2 Phi(-c |Z|)] with
c = A / (tau s_1), joint acceptance = E[2 Phi(-|Z| / s_2)], and
E[2 Phi(-c |Z|)] = 1 - (2/pi) arctan(c); for s_2 = 1, c = 10 the joint accepts 0.5 of the
drafts and the aligned scheme 0.063, although the draft's token law equals the target's.
[numeric, mpmath quadrature at 30 digits]

Implemented by ``cspd_ref.diffusion_sampling.aligned_speculative_sample``; the closed-form
marginal by ``cspd_ref.diffusion.LinearGaussianChain.marginal``.
"""

from __future__ import annotations

import functools

import mpmath as mp
import pytest
import sympy as sp

from proofs._common import (
    DPS,
    P_VAL,
    TOL,
    ratio_is_one,
    speculative_integrals,
    zero_on_both_sides,
)

T = 3
theta = sp.Symbol("theta", real=True)
tau = sp.Symbol("tau", positive=True)
a = sp.symbols(f"a1:{T + 1}", real=True)  # target slopes a_1..a_T (index t-1)
b = sp.symbols(f"b1:{T + 1}", real=True)  # target shifts
s = sp.symbols(f"s1:{T + 1}", positive=True)  # target scales
c = sp.symbols(f"c1:{T + 1}", real=True)  # draft slopes
d = sp.symbols(f"d1:{T + 1}", real=True)  # draft shifts
u = sp.symbols(f"u1:{T + 1}", positive=True)  # draft scales
DRAFT = frozenset((*c, *d, *u))
x_top = sp.Symbol("x_T", real=True)
eps = {t: sp.Symbol(f"eps{t}", real=True) for t in range(1, T + 1)}
SHARED = [x_top] + [eps[t] for t in range(T, 1, -1)]  # S = (x_T, eps_T, ..., eps_2)

# Generic last-step parameters; each case parametrises (mu_q, s_q, mu_p, s_p) so that SymPy can
# decide the sign of p_1 - q_1 on every region.
M_Q, M_P = sp.symbols("M_Q M_P", real=True)
SIG, DEL, K = sp.symbols("SIG DEL K", positive=True)
CASES = {
    "equal scales, m_p > m_q": (M_Q, SIG, M_Q + DEL, SIG),
    "equal scales, m_p < m_q": (M_P + DEL, SIG, M_P, SIG),
    "equal scales, m_p = m_q": (M_P, SIG, M_P, SIG),
    "s_1 > u_1": (M_Q, SIG, M_P, SIG * (1 + K)),
    "s_1 < u_1": (M_Q, SIG * (1 + K), M_P, SIG),
}


def run_to_x1(slopes: tuple, shifts: tuple, scales: tuple) -> sp.Expr:
    """x_1 from the shared S: x_{t-1} = slope_t x_t + shift_t + tau scale_t eps_t, t = T..2."""
    state: sp.Expr = x_top
    for t in range(T, 1, -1):
        state = slopes[t - 1] * state + shifts[t - 1] + tau * scales[t - 1] * eps[t]
    return state


X1_P = run_to_x1(a, b, s)  # target state before the last step
X1_Q = run_to_x1(c, d, u)  # draft state before the last step, same noises


def chain_substitution(case: str, mu_p_of_s: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
    """Put the chains' last-step laws into a case: q_1 = N(c_1 x_1^q + d_1, (tau u_1)^2),
    p_1 = N(mu_p_of_s, (tau s_1)^2).  Equal-scale cases have u_1 = s_1."""
    mu_q_of_s = c[0] * X1_Q + d[0]
    return {
        "equal scales, m_p > m_q": {M_Q: mu_q_of_s, DEL: mu_p_of_s - mu_q_of_s, SIG: tau * s[0]},
        "equal scales, m_p < m_q": {M_P: mu_p_of_s, DEL: mu_q_of_s - mu_p_of_s, SIG: tau * s[0]},
        "equal scales, m_p = m_q": {M_P: mu_p_of_s, SIG: tau * s[0]},
        "s_1 > u_1": {M_Q: mu_q_of_s, M_P: mu_p_of_s, SIG: tau * u[0], K: s[0] / u[0] - 1},
        "s_1 < u_1": {M_Q: mu_q_of_s, M_P: mu_p_of_s, SIG: tau * s[0], K: u[0] / s[0] - 1},
    }[case]


@functools.cache
def conditional_mgf(case: str) -> sp.Expr:
    """E[e^{theta x_0} | S] of the sampler as computed from its integrals, in the case's
    generic last-step parameters (not simplified)."""
    return speculative_integrals(*CASES[case], theta).mgf


def last_step_mgf(case: str) -> sp.Expr:
    """The claim: the MGF of p_1 = N(mu_p, s_p^2) in the case's generic parameters."""
    _, _, mu_p, s_p = CASES[case]
    return sp.exp(theta * mu_p + theta**2 * s_p**2 / 2)


def gaussian_mgf_lemma() -> sp.Lambda:
    """E exp(k Z) for Z ~ N(0, 1), by symbolic integration: exp(k^2 / 2)."""
    k, z = sp.symbols("k z", real=True)
    val = sp.integrate(sp.exp(k * z) * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    assert sp.simplify(val - sp.exp(k**2 / 2)) == 0
    return sp.Lambda(k, sp.exp(k**2 / 2))


def expect_exp_linear(expr: sp.Expr, noises: list[sp.Symbol], mgf: sp.Lambda) -> sp.Expr:
    """E exp(expr) for expr linear in independent N(0, 1) ``noises`` (factorises per noise)."""
    poly = sp.Poly(sp.expand(expr), *noises)
    assert poly.total_degree() <= 1
    const = sp.expand(expr).subs(dict.fromkeys(noises, 0))
    out = sp.exp(const)
    for z in noises:
        out *= mgf(poly.coeff_monomial(z))
    return out


def expect_over_shared(cond_mgf: sp.Expr, mgf: sp.Lambda) -> sp.Expr:
    """E_S[cond_mgf] for a conditional MGF of the form exp(linear in S)."""
    exponent = sp.expand(sp.expand_log(sp.log(cond_mgf), force=True))
    assert sp.simplify(sp.exp(exponent) - cond_mgf) == 0
    return expect_exp_linear(exponent, SHARED, mgf)


def target_chain_mgf(mgf: sp.Lambda) -> sp.Expr:
    """MGF of the target chain's x_0 run directly, all T + 1 noises independent."""
    x0 = a[0] * X1_P + b[0] + tau * s[0] * eps[1]
    return expect_exp_linear(theta * x0, [*SHARED, eps[1]], mgf)


def closed_form_marginal() -> tuple[sp.Expr, sp.Expr]:
    """Mean and variance of the target's x_0 by the linear-Gaussian recursion."""
    mean, var = sp.Integer(0), sp.Integer(1)
    for t in range(T, 0, -1):
        mean = a[t - 1] * mean + b[t - 1]
        var = a[t - 1] ** 2 * var + tau**2 * s[t - 1] ** 2
    return mean, var


def test_conditional_output_is_target_last_step_pointwise() -> None:
    """Given S, q_1 min(1, p_1/q_1) + (p_1 - q_1)^+ = p_1 at every point (case split)."""
    P1, Q1 = sp.symbols("P1 Q1", positive=True)  # p_1(x_0 | S), q_1(x_0 | S) at a point x_0
    assert zero_on_both_sides(Q1 * sp.Min(1, P1 / Q1) + sp.Max(0, P1 - Q1) - P1, P1, Q1) == [0, 0]


@pytest.mark.parametrize("case", list(CASES))
def test_conditional_law_drops_the_draft(case: str) -> None:
    """E[e^{theta x_0} | S], computed from the sampler's integrals, is a function of the
    draft's and the target's coefficients that equals the MGF of the target's last step
    N(a_1 x_1^p + b_1, (tau s_1)^2), which is free of every draft coefficient."""
    computed = conditional_mgf(case)
    sub = chain_substitution(case, a[0] * X1_P + b[0])
    if case != "equal scales, m_p = m_q":  # there q_1 = p_1 and the draft enters nowhere
        assert computed.xreplace(sub).free_symbols & DRAFT  # the draft's coefficients enter
    assert ratio_is_one(computed, last_step_mgf(case))  # ... the law is p_1's ...
    law = sp.simplify(last_step_mgf(case).subs(sub))
    assert not law.free_symbols & DRAFT  # ... which has none of them
    target_last_step = sp.exp(theta * (a[0] * X1_P + b[0]) + theta**2 * tau**2 * s[0] ** 2 / 2)
    assert sp.simplify(law - target_last_step) == 0


def test_aligned_output_law_is_target_chain_law() -> None:
    """E_S of the conditional MGF = MGF of the target chain run directly = closed form.

    On each case's region of S the conditional MGF is that case's law (previous test); all
    cases give the same expression, so E_S is taken of that one expression.
    """
    mgf = gaussian_mgf_lemma()
    laws = [
        sp.simplify(last_step_mgf(case).subs(chain_substitution(case, a[0] * X1_P + b[0])))
        for case in CASES
    ]
    assert all(sp.simplify(law - laws[0]) == 0 for law in laws[1:])
    aligned = expect_over_shared(laws[0], mgf)
    assert not aligned.free_symbols & DRAFT
    direct = target_chain_mgf(mgf)
    mean0, var0 = closed_form_marginal()
    closed = sp.exp(theta * mean0 + theta**2 * var0 / 2)
    assert sp.simplify(sp.expand(sp.log(aligned)) - sp.expand(sp.log(direct))) == 0
    assert sp.simplify(sp.expand(sp.log(direct)) - sp.expand(sp.log(closed))) == 0


def test_unaligned_last_step_depends_on_the_draft() -> None:
    """Negative control: the target's last step evaluated at the draft's x_1^q.

    Same pipeline, with p_1 = N(a_1 x_1^q + b_1, (tau s_1)^2).  The output MGF depends on the
    draft's coefficients and is not the target chain's; mean and variance (derivatives of the
    log-MGF at 0) are off by a_1/2 (draft shift d_2 = b_2 + 1/2) and 3 a_1^2 a_2^2 a_3^2
    (draft slope c_3 = 2 a_3).
    """
    mgf = gaussian_mgf_lemma()
    case = "s_1 > u_1"
    assert ratio_is_one(conditional_mgf(case), last_step_mgf(case))
    law = sp.simplify(last_step_mgf(case).subs(chain_substitution(case, a[0] * X1_Q + b[0])))
    unaligned = expect_over_shared(law, mgf)
    assert unaligned.free_symbols & DRAFT
    log_m = sp.expand(sp.log(unaligned), force=True)
    bug_mean = sp.diff(log_m, theta).subs(theta, 0)
    bug_var = sp.diff(log_m, theta, 2).subs(theta, 0)
    mean0, var0 = closed_form_marginal()
    dmean, dvar = sp.simplify(bug_mean - mean0), sp.simplify(bug_var - var0)
    assert dmean != 0 and dvar != 0
    same = {**dict(zip(c, a, strict=True)), **dict(zip(d, b, strict=True))}
    same.update(zip(u, s, strict=True))
    assert sp.simplify(dmean.subs(same)) == 0 and sp.simplify(dvar.subs(same)) == 0
    one_off = {**same, d[1]: b[1] + sp.Rational(1, 2)}
    assert sp.simplify(dmean.subs(one_off) - a[0] / 2) == 0
    slope_off = {**same, c[2]: 2 * a[2]}
    assert sp.simplify(dvar.subs(slope_off) - 3 * a[0] ** 2 * a[1] ** 2 * a[2] ** 2) == 0


@pytest.mark.parametrize("case", ["equal scales, m_p > m_q", "s_1 < u_1"])
def test_wrong_residual_depends_on_the_draft(case: str) -> None:
    """Negative control: resampling from p_1 on rejection makes the conditional law depend on
    the draft.  Evaluated at one rational point (theta, S, target) for two drafts, each
    placing the draft in this case's sign pattern; the correct sampler gives equal values."""
    wrong = speculative_integrals(*CASES[case], theta, residual=P_VAL).mgf
    right = conditional_mgf(case)
    sub = chain_substitution(case, a[0] * X1_P + b[0])
    point = {theta: sp.Rational(1, 2), tau: 1, x_top: sp.Rational(1, 3), eps[3]: -1, eps[2]: 2}
    point.update({**dict.fromkeys(a, 1), **dict.fromkeys(b, 0), **dict.fromkeys(s, 1)})
    # two drafts: slopes 1, scales 1 (or 2 at the last step when u_1 > s_1), shifts d_1 below
    # the target's mean by 1 or by 2 (m_p > m_q in both)
    drafts = []
    for shift in (-1, -2):
        draft = {**dict.fromkeys(c, 1), **dict.fromkeys(d, 0), **dict.fromkeys(u, 1)}
        draft[d[0]] = shift
        if case == "s_1 < u_1":
            draft[u[0]] = 2
        drafts.append({**point, **draft})

    def at(expr: sp.Expr, pt: dict) -> sp.Float:
        """expr with the chain substituted, evaluated at the rational point pt."""
        chain_at_pt = {k: v.xreplace(pt) for k, v in sub.items()}
        return sp.N(expr.xreplace(chain_at_pt).xreplace(pt), DPS)

    values_wrong = [at(wrong, pt) for pt in drafts]
    values_right = [at(right, pt) for pt in drafts]
    assert abs(values_right[0] - values_right[1]) < TOL
    assert abs(values_wrong[0] - values_wrong[1]) > 1e-3


def test_joint_alternative_is_not_always_lower_acceptance() -> None:
    """A case where whole-trajectory acceptance beats the aligned last-step acceptance."""

    def mean_overlap(c_: mp.mpf) -> mp.mpf:
        """E[1 - TV] = E[2 Phi(-c |Z|)]: two equal-scale Gaussians whose means differ by 2 c Z."""
        return mp.quad(lambda z: 2 * mp.ncdf(-c_ * abs(z)) * mp.npdf(z), [mp.ninf, 0, mp.inf])

    with mp.workdps(DPS):
        for c_ in (mp.mpf("0.5"), mp.mpf(10)):
            assert abs(mean_overlap(c_) - (1 - 2 / mp.pi * mp.atan(c_))) < TOL
        s2, A, tau_s1 = mp.mpf(1), mp.mpf(10), mp.mpf(1)
        # aligned: x_1^p - x_1^q = 2 x_T, last-step means differ by 2 A x_T, scale tau s_1
        aligned = mean_overlap(A / tau_s1)
        # joint: only step 2 differs, TV of trajectories = E over x_T of TV(N(x_T, s2^2),
        # N(-x_T, s2^2)) (identical later kernels do not change TV)
        joint = mean_overlap(1 / s2)
        assert abs(joint - mp.mpf("0.5")) < TOL
        assert joint > 7 * aligned
