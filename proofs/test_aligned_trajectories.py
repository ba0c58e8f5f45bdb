"""Result 7 -- aligned diffusion-head trajectories give exactly the target's token law.

Statement
---------
Draft and target diffusion heads run on the **same** x_T and eps_T, ..., eps_2, reaching x_1^q
and x_1^p.  The last step is speculative sampling (result 1, with the residual of result 2 or
4) between q_1 = N(m_q(x_1^q, 1), (tau s_q)^2) and p_1 = N(m_p(x_1^p, 1), (tau s_p)^2).  Then
the token x_0 has exactly the target head's law.

Derivation
----------
Let S = (x_T, eps_T, ..., eps_2) be the shared noise.  Given S, both last-step Gaussians are
fixed, so by result 1 the output's conditional density is
q_1 min(1, p_1/q_1) + (p_1 - q_1)^+ = p_1( . | x_1^p(S)).  Because S ~ N(0, I) and x_1^p(S)
is computed by the target's own transitions, x_1^p is a genuine target state, and integrating
the conditional law over S gives the target's marginal.  The draft's x_1^q only influences
*whether* the draft is accepted, never the law of the output.  (Sharing the noise is what
raises the acceptance rate; it is not what makes the scheme exact.)

Checked symbolically on a 1-D linear-Gaussian chain with T = 3, m_t(x) = a_t x + b_t
(target) and c_t x + d_t (draft), constant scales s_t (target) and u_t (draft):

* the conditional output density equals p_1 pointwise (case split, result 1);
* moment generating function of the aligned output, computed by integrating the conditional
  MGF exp(theta m + theta^2 sigma^2 / 2) over the shared noise (lemma
  E exp(c Z) = exp(c^2/2), Z ~ N(0, 1), by ``integrate``) = MGF of the target chain run directly
  (independent noises) = the closed-form marginal N(mean_0, var_0) from the recursion
  mean_{t-1} = a_t mean_t + b_t, var_{t-1} = a_t^2 var_t + tau^2 s_t^2 (mean_T = 0, var_T = 1).
  Equal MGFs on a neighbourhood of 0 mean equal laws; mean and variance are compared with
  ``sympy.stats`` as well;
* counterexample: feeding the draft's x_1^q into the target's last step (a non-aligned bug)
  gives mean a_1 E[x_1^q] + b_1 and variance a_1^2 Var[x_1^q] + tau^2 s_1^2, which differ from
  the target's unless the draft's first T - 1 steps have the target's law (symbolic
  difference, and a concrete instance).

* SPEC section 3 calls the joint alternative (accept on the whole-trajectory log-ratio,
  result 6) "exact as well, with lower acceptance".  Exact: yes (result 1 on trajectory space).
  Lower acceptance: not in general.  Counterexample (T = 2, 1-D): target x_1 = x_2 + s_2 eps_2,
  draft x_1 = -x_2 + s_2 eps_2, identical last steps x_0 = A x_1 + tau s_1 eps_1.  With
  Z ~ N(0, 1) and the equal-scale TV of result 5, aligned acceptance = E[2 Phi(-c |Z|)] with
  c = A / (tau s_1), joint acceptance = E[2 Phi(-|Z| / s_2)], and
  E[2 Phi(-c |Z|)] = 1 - (2/pi) arctan(c); for s_2 = 1, c = 10 the joint accepts 0.5 of the
  drafts and the aligned scheme 0.063, although the draft's token law equals the target's.
  [numeric, mpmath quadrature at 30 digits]

Everything else is symbolic.

Implemented by ``cspd_ref.diffusion.aligned_speculative_sample``; the closed-form marginal by
``cspd_ref.diffusion.LinearGaussianChain.marginal``.
"""

from __future__ import annotations

import mpmath as mp
import sympy as sp
from sympy.stats import E, Normal

from proofs._common import DPS, TOL, zero_on_both_sides

T = 3
theta = sp.Symbol("theta", real=True)
tau = sp.Symbol("tau", positive=True)
a = sp.symbols(f"a1:{T + 1}", real=True)  # target slopes a_1..a_T (index t-1)
b = sp.symbols(f"b1:{T + 1}", real=True)
s = sp.symbols(f"s1:{T + 1}", positive=True)
c = sp.symbols(f"c1:{T + 1}", real=True)  # draft slopes
d = sp.symbols(f"d1:{T + 1}", real=True)
u = sp.symbols(f"u1:{T + 1}", positive=True)


def run_to_x1(slopes: tuple, shifts: tuple, scales: tuple, x_T: sp.Expr, eps: dict) -> sp.Expr:
    """x_1 from x_T with x_{t-1} = slope_t x_t + shift_t + tau scale_t eps_t, t = T..2."""
    state = x_T
    for t in range(T, 1, -1):
        state = slopes[t - 1] * state + shifts[t - 1] + tau * scales[t - 1] * eps[t]
    return state


def closed_form_marginal() -> tuple[sp.Expr, sp.Expr]:
    """Mean and variance of the target's x_0 by the linear-Gaussian recursion."""
    mean, var = sp.Integer(0), sp.Integer(1)
    for t in range(T, 0, -1):
        mean = a[t - 1] * mean + b[t - 1]
        var = a[t - 1] ** 2 * var + tau**2 * s[t - 1] ** 2
    return mean, var


def gaussian_mgf_lemma() -> sp.Expr:
    """E exp(k Z) for Z ~ N(0, 1), by symbolic integration: exp(k^2 / 2)."""
    k, z = sp.symbols("k z", real=True)
    val = sp.integrate(sp.exp(k * z) * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    assert sp.simplify(val - sp.exp(k**2 / 2)) == 0
    return sp.Lambda(k, sp.exp(k**2 / 2))


def expect_exp_linear(expr: sp.Expr, noises: list[sp.Symbol], mgf: sp.Lambda) -> sp.Expr:
    """E exp(expr) for expr linear in independent N(0, 1) ``noises`` (factorises per noise)."""
    poly = sp.Poly(sp.expand(expr), *noises)
    const = expr.subs(dict.fromkeys(noises, 0))
    out = sp.exp(const)
    for z in noises:
        out *= mgf(poly.coeff_monomial(z))
    assert sp.expand(expr - const - sum(poly.coeff_monomial(z) * z for z in noises)) == 0
    return out


def test_conditional_output_is_target_last_step() -> None:
    """Given the shared noise, q_1 min(1, p_1/q_1) + (p_1 - q_1)^+ = p_1 (result 1)."""
    P1, Q1 = sp.symbols("P1 Q1", positive=True)  # p_1(x_0 | S), q_1(x_0 | S) at a point x_0
    assert zero_on_both_sides(Q1 * sp.Min(1, P1 / Q1) + sp.Max(0, P1 - Q1) - P1, P1, Q1) == [0, 0]


def test_aligned_output_mgf_equals_target_chain() -> None:
    """MGF of the aligned output = MGF of the target chain = closed-form Gaussian MGF."""
    mgf = gaussian_mgf_lemma()
    x_T = sp.Symbol("x_T", real=True)
    eps = {t: sp.Symbol(f"eps{t}", real=True) for t in range(1, T + 1)}
    shared = [x_T] + [eps[t] for t in range(T, 1, -1)]
    x1_p = run_to_x1(a, b, s, x_T, eps)
    # conditional law of the output given S: N(a_1 x_1^p + b_1, (tau s_1)^2); its MGF
    cond_mean, cond_var = a[0] * x1_p + b[0], (tau * s[0]) ** 2
    aligned = expect_exp_linear(theta * cond_mean, shared, mgf) * sp.exp(theta**2 * cond_var / 2)
    # target chain run directly: x_0 = a_1 x_1 + b_1 + tau s_1 eps_1, all noises independent
    direct_x0 = a[0] * x1_p + b[0] + tau * s[0] * eps[1]
    direct = expect_exp_linear(theta * direct_x0, [*shared, eps[1]], mgf)
    mean0, var0 = closed_form_marginal()
    closed = sp.exp(theta * mean0 + theta**2 * var0 / 2)
    assert sp.simplify(sp.log(aligned) - sp.log(closed)) == 0
    assert sp.simplify(sp.expand(sp.log(direct)) - sp.expand(sp.log(closed))) == 0


def test_aligned_output_moments_with_sympy_stats() -> None:
    """Mean and variance via sympy.stats random variables, by the tower rule."""
    x_T = Normal("X_T", 0, 1)
    eps = {t: Normal(f"E{t}", 0, 1) for t in range(1, T + 1)}
    x1_p = run_to_x1(a, b, s, x_T, eps)
    cond_mean, cond_var = a[0] * x1_p + b[0], (tau * s[0]) ** 2
    mean_aligned = E(cond_mean)  # E[E[x_0 | S]]
    # law of total variance: E[Var(x_0 | S)] + Var(E[x_0 | S]), Var X = E[(X - E X)^2]
    var_aligned = E(cond_var) + E(sp.expand((cond_mean - mean_aligned) ** 2))
    mean0, var0 = closed_form_marginal()
    assert sp.simplify(mean_aligned - mean0) == 0
    assert sp.simplify(var_aligned - var0) == 0


def linear_moments(expr: sp.Expr, noises: list[sp.Symbol]) -> tuple[sp.Expr, sp.Expr]:
    """Mean and variance of an expression linear in independent N(0, 1) ``noises``."""
    poly = sp.Poly(sp.expand(expr), *noises)
    mean = sp.expand(expr).subs(dict.fromkeys(noises, 0))
    return mean, sp.Add(*(poly.coeff_monomial(z) ** 2 for z in noises))


def test_non_aligned_bug_changes_the_law() -> None:
    """Using the draft's x_1^q in the target's last step: different mean and variance."""
    x_T = sp.Symbol("x_T", real=True)
    eps = {t: sp.Symbol(f"eps{t}", real=True) for t in range(1, T + 1)}
    x1_q = run_to_x1(c, d, u, x_T, eps)
    m1, v1 = linear_moments(a[0] * x1_q + b[0], [x_T] + [eps[t] for t in range(T, 1, -1)])
    bug_mean, bug_var = m1, v1 + (tau * s[0]) ** 2
    mean0, var0 = closed_form_marginal()
    dmean, dvar = sp.simplify(bug_mean - mean0), sp.simplify(bug_var - var0)
    assert dmean != 0 and dvar != 0
    # both deviations vanish when the draft's steps T..2 equal the target's
    same = {
        **dict(zip(c, a, strict=True)),
        **dict(zip(d, b, strict=True)),
        **dict(zip(u, s, strict=True)),
    }
    assert sp.simplify(dmean.subs(same)) == 0 and sp.simplify(dvar.subs(same)) == 0
    # concrete instance: draft = target except the shift d_2 = b_2 + 1/2 -> mean off by a_1 / 2
    one_off = {**same, d[1]: b[1] + sp.Rational(1, 2)}
    assert sp.simplify(dmean.subs(one_off) - a[0] / 2) == 0
    # and draft slope c_3 = 2 a_3 -> variance off by 3 a_1^2 a_2^2 a_3^2
    slope_off = {**same, c[2]: 2 * a[2]}
    assert sp.simplify(dvar.subs(slope_off) - 3 * a[0] ** 2 * a[1] ** 2 * a[2] ** 2) == 0


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
