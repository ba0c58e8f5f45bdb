"""Result 9 -- why the known non-exact variants are not exact (the mutant catalog's maths).

(a) Inner temperature: accept iff log u < lr / T_in, T_in != 1.
    Output density f = q min(1, (p/q)^(1/T)) + (1 - beta_T) r, beta_T = int q min(1, (p/q)^(1/T)),
    r the correct residual.  On {p < q}, r = 0 and f = p (q/p)^(1 - 1/T): above p for T > 1,
    below for T < 1, so f != p wherever p != q (symbolic).  At T = 1, f = p (symbolic).  The
    deviation TV(f, p) = int (f - p)^+ is computed by mpmath quadrature (30 digits) on Gaussian
    pairs and is > 1e-3 (numeric; the sign of f - p changes only where p = q, so the density
    crossings are the quadrature breakpoints).

(b) Residual loop capped at N tries with a fallback value c.  Rejected rows (mass TV) succeed
    at try k with probability (1 - TV)^(k-1) TV, each success drawn from r; otherwise c is
    returned.  Output law = [p - eps r] dx + eps delta_c with eps = TV (1 - TV)^N: the
    continuous part is min(p, q) + TV (1 - (1 - TV)^N) r = p - eps r (finite geometric sum,
    symbolic).  Its TV distance from p is (1/2)(int |eps r| + eps) = eps exactly (symbolic).
    If the fallback is "leave the rejected draft in place", the atom is replaced by eps times
    the rejected-draft law (q - p)^+/TV, whose support is disjoint from r's: TV = eps again
    (symbolic case split for the disjointness; quadrature check on a Gaussian pair).

(c) Noiseless last step scored as Gaussian.  The draft outputs its mean m_q deterministically
    but is scored with q_g = N(m_q, s_q^2).  Given x_1, it is accepted with probability
    alpha = min(1, p(m_q)/q_g(m_q)) = min(1, (s_q/s_p) exp(-(m_q - m_p)^2 / (2 s_p^2)))
    (symbolic) and on rejection the residual r of (p, q_g) is drawn.  Output law =
    alpha delta_{m_q} + (1 - alpha) r: an atom, so TV(output, p) >= alpha > 0.  Exactly,
    TV = int (p - (1 - alpha) r)^+ dx (the atom carries the rest), computed by mpmath at
    30 digits on seeded pairs (numeric); when alpha >= 1 - TV(p, q_g) it equals alpha (the
    continuous part then never exceeds p; symbolic argument, numeric check).  With a perfect
    draft (m_q = m_p, s_q = s_p) alpha = 1 and the output is the point m_p: TV = 1.  Over x_1
    (linear chain) the atoms smear into a continuous law, still wrong: with a perfect draft
    the token's variance is a_1^2 Var(x_1) instead of a_1^2 Var(x_1) + tau^2 s_1^2 (symbolic).

Mutants ``inner_temperature``, ``capped_residual_with_fallback`` and ``noiseless_last_step`` in
``property_tests/mutants.py`` implement these variants; ``property_tests/test_mutants.py``
checks that the statistical battery flags each of them.
"""

from __future__ import annotations

import mpmath as mp
import sympy as sp

from proofs._common import (
    DPS,
    TOL,
    crossings_1d,
    gaussian_pairs,
    log_ratio_coeffs,
    mp_integral,
    mp_pdf,
    normal_pdf,
    zero_on_both_sides,
)

p, q = sp.symbols("p q", positive=True)
Tin = sp.Symbol("T_in", positive=True)

# ----------------------------------------------------------------------- (a) inner temperature


def test_inner_temperature_pointwise() -> None:
    """On {p < q}: f = q (p/q)^(1/T) = p (q/p)^(1 - 1/T) != p; T = 1 recovers p."""
    k = sp.Symbol("k", positive=True)
    f_low = q * (p / q) ** (1 / Tin)  # r = 0 where p < q
    ratio = sp.simplify((f_low / p).subs(q, p * (1 + k)))  # q = p (1 + k) > p
    assert sp.simplify(ratio - (1 + k) ** (1 - 1 / Tin)) == 0
    # log(f/p) = (1 - 1/T) log(1 + k): positive for T > 1, negative for T < 1 (log(1+k) > 0)
    log_ratio = sp.expand_log(sp.log(ratio), force=True)
    assert sp.simplify(log_ratio - (1 - 1 / Tin) * sp.log(1 + k)) == 0
    assert log_ratio.subs(Tin, 2).is_positive
    assert log_ratio.subs(Tin, sp.Rational(1, 2)).is_negative
    # T = 1: the exact algorithm, f = p in both regions
    beta = sp.Symbol("beta", positive=True)
    f1 = q * sp.Min(1, p / q) + (1 - beta) * sp.Max(0, p - q) / (1 - beta)
    assert zero_on_both_sides(f1 - p, p, q) == [0, 0]


def inner_temperature_tv(
    mu_q: mp.mpf, s_q: mp.mpf, mu_p: mp.mpf, s_p: mp.mpf, t_in: mp.mpf
) -> tuple[mp.mpf, mp.mpf]:
    """(int f, TV(f, p)) for the inner-temperature output density f (mpmath quadrature).

    Works from lr(x) = log p(x) - log q(x) = A x^2 + B x + C (exact quadratic), so that
    min(1, (p/q)^(1/T)) = exp(min(0, lr/T)) costs one exp per node.
    """
    A, B, C = log_ratio_coeffs(mu_q, s_q, mu_p, s_p)
    cuts = crossings_1d(mu_q, s_q, mu_p, s_p)

    def q_p_lr(x: mp.mpf) -> tuple[mp.mpf, mp.mpf, mp.mpf]:
        qx = mp.npdf(x, mu_q, s_q)
        lr = (A * x + B) * x + C
        return qx, qx * mp.exp(lr), lr

    def plus(x: mp.mpf) -> mp.mpf:  # (p - q)^+
        qx, px, lr = q_p_lr(x)
        return px - qx if lr > 0 else mp.mpf(0)

    def accepted(x: mp.mpf) -> mp.mpf:  # q min(1, exp(lr / T))
        qx, _, lr = q_p_lr(x)
        return qx if lr >= 0 else qx * mp.exp(lr / t_in)

    tv = mp_integral(plus, cuts)
    acc_t = mp_integral(accepted, cuts)

    def f(x: mp.mpf) -> mp.mpf:  # q min(1, (p/q)^(1/T)) + (1 - beta_T) r
        return accepted(x) + (1 - acc_t) * plus(x) / tv

    def excess(x: mp.mpf) -> mp.mpf:  # (f - p)^+
        return max(mp.mpf(0), f(x) - q_p_lr(x)[1])

    return mp_integral(f, cuts), mp_integral(excess, cuts)


def test_inner_temperature_deviation_numeric() -> None:
    """TV(f, p) > 1e-3 for T_in in {1/2, 2} on Gaussian pairs; = 0 at T_in = 1."""
    with mp.workdps(DPS):
        fixed = (mp.mpf(0), mp.mpf(1), mp.mpf(1), mp.mpf(1))  # q = N(0, 1), p = N(1, 1)
        for mu_q, s_q, mu_p, s_p in [fixed, *gaussian_pairs(9, 2)]:
            for t_in in (mp.mpf("0.5"), mp.mpf(2)):
                mass, dev = inner_temperature_tv(mu_q, s_q, mu_p, s_p, t_in)
                assert abs(mass - 1) < TOL  # f is a probability density
                assert dev > mp.mpf("1e-3")
        mass, dev = inner_temperature_tv(*fixed, mp.mpf(1))  # control: the exact algorithm
        assert abs(mass - 1) < TOL and dev < TOL


# ----------------------------------------------------------- (b) capped residual with fallback

TV = sp.Symbol("TV", positive=True)
N = sp.Symbol("N", integer=True, positive=True)
kk = sp.Symbol("k", integer=True, positive=True)


def test_capped_loop_atom_mass_and_tv() -> None:
    """Atom eps = TV (1 - TV)^N at c; continuous part p - eps r; TV distance = eps."""
    succeed_within_cap = sp.summation((1 - TV) ** (kk - 1) * TV, (kk, 1, N))
    rho = sp.Symbol("rho", positive=True)
    assert sp.simplify(succeed_within_cap.subs(TV, 1 - rho) - (1 - rho**N)) == 0
    eps = TV * (1 - TV) ** N
    # continuous density at a point: min(p, q) + TV (1 - (1-TV)^N) r, with TV r = (p - q)^+
    Pv, Qv = sp.symbols("P Q", positive=True)  # p(x), q(x) at a point
    r_tv = sp.Max(0, Pv - Qv)  # = TV r(x)
    cont = sp.Min(Pv, Qv) + (1 - (1 - TV) ** N) * r_tv
    assert zero_on_both_sides(cont - (Pv - (1 - TV) ** N * r_tv), Pv, Qv) == [0, 0]
    # TV between the mixed law (cont dx + eps delta_c) and p dx: for any set A,
    # out(A) - P(A) = eps (1_A(c) - R(A)) in [-eps, eps], and A = {c} attains eps (R has no
    # atom); equivalently (1/2)(int |cont - p| + eps) = (1/2)(eps int r + eps).  By quadrature:
    with mp.workdps(DPS):
        mu_q, s_q, mu_p, s_p = gaussian_pairs(12, 1)[0]
        pd, qd = mp_pdf(mu_p, s_p), mp_pdf(mu_q, s_q)
        cuts = crossings_1d(mu_q, s_q, mu_p, s_p)
        tv = mp_integral(lambda x: max(0, pd(x) - qd(x)), cuts)
        cap = 4
        eps_num = tv * (1 - tv) ** cap

        def cont_num(x: mp.mpf) -> mp.mpf:
            return min(pd(x), qd(x)) + (1 - (1 - tv) ** cap) * max(0, pd(x) - qd(x))

        assert abs(mp_integral(cont_num, cuts) + eps_num - 1) < TOL  # total mass 1
        half_l1 = mp_integral(lambda x: abs(cont_num(x) - pd(x)), cuts) / 2
        assert abs(half_l1 + eps_num / 2 - eps_num) < TOL
    # concrete: TV = 0.3, N = 10 caps -> eps = 0.3 * 0.7^10 ~ 0.0085, far above test resolution
    val = eps.subs({TV: sp.Rational(3, 10), N: 10})
    assert abs(float(val) - 0.3 * 0.7**10) < 1e-15 and float(val) > 8e-3


def test_capped_loop_draft_fallback() -> None:
    """Fallback = rejected draft: eps (q - p)^+/TV replaces eps r; supports disjoint, TV = eps."""
    Pv, Qv = sp.symbols("P Q", positive=True)
    # (p - q)^+ (q - p)^+ = 0 pointwise, so |r_q - r| = r_q + r and (1/2) int = 1
    assert zero_on_both_sides(sp.Max(0, Pv - Qv) * sp.Max(0, Qv - Pv), Pv, Qv) == [0, 0]
    assert zero_on_both_sides(
        sp.Abs(sp.Max(0, Qv - Pv) - sp.Max(0, Pv - Qv)) - sp.Max(0, Qv - Pv) - sp.Max(0, Pv - Qv),
        Pv,
        Qv,
    ) == [0, 0]
    # numeric: output density p - eps r + eps r_q on a Gaussian pair, N = 3
    with mp.workdps(DPS):
        mu_q, s_q, mu_p, s_p = gaussian_pairs(10, 1)[0]
        pd, qd = mp_pdf(mu_p, s_p), mp_pdf(mu_q, s_q)
        cuts = crossings_1d(mu_q, s_q, mu_p, s_p)
        tv = mp_integral(lambda x: max(0, pd(x) - qd(x)), cuts)
        eps = tv * (1 - tv) ** 3

        def out(x: mp.mpf) -> mp.mpf:
            return pd(x) - eps * max(0, pd(x) - qd(x)) / tv + eps * max(0, qd(x) - pd(x)) / tv

        assert abs(mp_integral(out, cuts) - 1) < TOL
        dist = mp_integral(lambda x: abs(out(x) - pd(x)), cuts) / 2
        assert abs(dist - eps) < TOL


# ------------------------------------------------------------- (c) noiseless last step scored


def test_noiseless_acceptance_probability_closed_form() -> None:
    """alpha = min(1, p(m_q) / q_g(m_q)) with q_g(m_q) = 1/(sqrt(2 pi) s_q)."""
    m_p, m_q = sp.symbols("m_p m_q", real=True)
    s_p, s_q = sp.symbols("s_p s_q", positive=True)
    ratio = normal_pdf(m_q, m_p, s_p) / normal_pdf(m_q, m_q, s_q)
    assert sp.simplify(ratio - (s_q / s_p) * sp.exp(-((m_q - m_p) ** 2) / (2 * s_p**2))) == 0
    # perfect draft: ratio 1, alpha = 1, output = the point m_p (TV to p is 1)
    assert sp.simplify(ratio.subs({m_q: m_p, s_q: s_p})) == 1


def noiseless_tv(mu_q: mp.mpf, s_q: mp.mpf, mu_p: mp.mpf, s_p: mp.mpf) -> tuple[mp.mpf, ...]:
    """(alpha, TV(p, q_g), TV(output, p)) for the noiseless-last-step output (mpmath)."""
    pd, qd = mp_pdf(mu_p, s_p), mp_pdf(mu_q, s_q)
    alpha = min(1, pd(mu_q) / qd(mu_q))
    cuts = crossings_1d(mu_q, s_q, mu_p, s_p)
    tv_pq = mp_integral(lambda x: max(0, pd(x) - qd(x)), cuts)

    def cont(x: mp.mpf) -> mp.mpf:  # continuous part (1 - alpha) r
        return (1 - alpha) * max(0, pd(x) - qd(x)) / tv_pq

    # kinks of (p - cont)^+: density crossings, and where p = cont, i.e. where
    # log p - log q_g = log(k / (k - 1)), k = (1 - alpha)/TV (only when k > 1)
    kink = (1 - alpha) / tv_pq
    extra = crossings_1d(mu_q, s_q, mu_p, s_p, level=mp.log(kink / (kink - 1))) if kink > 1 else []
    dev = mp_integral(lambda x: max(0, pd(x) - cont(x)), cuts + extra)
    return alpha, tv_pq, dev


def test_noiseless_last_step_deviation_numeric() -> None:
    """TV(output, p) >= alpha > 0, = alpha when alpha >= 1 - TV(p, q_g)."""
    with mp.workdps(DPS):
        pairs = [(mp.mpf(0), mp.mpf(1), mp.mpf("0.5"), mp.mpf(1)), *gaussian_pairs(11, 4)]
        saw_equal_case = saw_strict_case = False
        for mu_q, s_q, mu_p, s_p in pairs:
            alpha, tv_pq, dev = noiseless_tv(mu_q, s_q, mu_p, s_p)
            assert alpha > 0 and dev >= alpha - TOL and dev > mp.mpf("1e-3")
            if alpha >= 1 - tv_pq:
                assert abs(dev - alpha) < TOL
                saw_equal_case = True
            else:
                assert dev > alpha + mp.mpf("1e-6")
                saw_strict_case = True
        assert saw_equal_case and saw_strict_case


def test_noiseless_perfect_draft_marginal_variance_deficit() -> None:
    """Linear chain, perfect draft: x_0 = a_1 x_1 + b_1 always; variance short by tau^2 s_1^2."""
    a1 = sp.Symbol("a1", real=True)
    tau, s1, v1 = sp.symbols("tau s1 v1", positive=True)  # v1 = Var(x_1)
    var_mutant = a1**2 * v1  # deterministic last step, accepted with probability 1
    var_target = a1**2 * v1 + tau**2 * s1**2
    assert sp.simplify(var_target - var_mutant - tau**2 * s1**2) == 0
    assert (var_target - var_mutant).is_positive
