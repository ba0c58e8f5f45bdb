"""Result 5 -- total variation between Gaussians, closed forms.

Statement
---------
(i) Equal scales: TV(N(mu_q, Sigma), N(mu_p, Sigma)) = 2 Phi(delta/2) - 1 = erf(delta/(2 sqrt 2))
with delta = sqrt((mu_p - mu_q)^T Sigma^{-1} (mu_p - mu_q)) the Mahalanobis distance (for a
diagonal Sigma = S^2, delta = ||S^{-1}(mu_p - mu_q)||).

(ii) Unequal scales in 1-D: log p(x) - log q(x) = A x^2 + B x + C with

    A = 1/(2 s_q^2) - 1/(2 s_p^2),   B = mu_p/s_p^2 - mu_q/s_q^2,
    C = mu_q^2/(2 s_q^2) - mu_p^2/(2 s_p^2) + log(s_q/s_p),

discriminant B^2 - 4AC = [(mu_p - mu_q)^2 + 2 (s_p^2 - s_q^2) log(s_p/s_q)] / (s_p^2 s_q^2) > 0,
so the densities cross exactly twice (r_1 < r_2).  If s_p > s_q, p > q outside [r_1, r_2] and
TV = [P - Q](-inf, r_1) + [P - Q](r_2, inf); if s_p < s_q, p > q inside and
TV = [P - Q](r_1, r_2), with P, Q the Gaussian CDF masses.

Derivation
----------
* (i) TV is invariant under the bijection x = mu_q + S z (both densities pick up the same
  Jacobian), and then under a rotation taking e = S^{-1}(mu_p - mu_q)/delta to the first axis
  (result 4): q becomes N(0, I), p becomes N(delta e_1, I).  The orthogonal coordinates have the
  same N(0, 1) factor under p and q and integrate to 1 (symbolic, d = 2, rotation by a symbolic
  angle), leaving 1-D: the crossing is delta/2 (``solve``) and
  TV = int_{delta/2}^inf (phi(t - delta) - phi(t)) dt = 2 Phi(delta/2) - 1 (``integrate``,
  erf).  The Mahalanobis form of delta is a symbolic identity.  [symbolic]
* (ii) A, B, C are read off the expanded log-ratio (``Poly``); the discriminant identity and its
  positivity for s_p != s_q (substitute s_p = s_q (1 + k) or s_q / (1 + k), k > 0) are
  symbolic; the Gaussian interval masses are Phi differences (fundamental theorem of
  calculus: d/dr Phi((r - mu)/s) is the density, with limits 0 and 1).  [symbolic]
  The final TV formula is then checked against mpmath quadrature of max(0, p - q) at 30 digits
  on seeded random parameter sets (both orderings of the scales), and the equal-scale formula
  likewise.  [numeric]

Implemented by ``cspd_ref.theory.tv_equal_scale_gaussians`` and ``cspd_ref.theory.tv_distance``;
crossing points by ``cspd_ref.theory.density_crossings_1d``.
"""

from __future__ import annotations

import mpmath as mp
import sympy as sp

from proofs._common import (
    DPS,
    TOL,
    crossings_1d,
    gaussian_pairs,
    mp_pdf,
    mp_tv,
    normal_logpdf,
    normal_pdf,
    std_normal_cdf,
)

x, t, u = sp.symbols("x t u", real=True)
delta = sp.Symbol("delta", positive=True)
mu_p, mu_q = sp.symbols("mu_p mu_q", real=True)
s_p, s_q = sp.symbols("s_p s_q", positive=True)


def tv_equal_scale(delta_value: mp.mpf) -> mp.mpf:
    """2 Phi(delta/2) - 1 in mpmath."""
    return 2 * mp.ncdf(delta_value / 2) - 1


def tv_unequal_scale_1d(mu_q_: mp.mpf, s_q_: mp.mpf, mu_p_: mp.mpf, s_p_: mp.mpf) -> mp.mpf:
    """Closed form (ii): P-mass minus Q-mass over the intervals where p > q."""
    r1, r2 = crossings_1d(mu_q_, s_q_, mu_p_, s_p_)

    def mass(mu: mp.mpf, s: mp.mpf, lo: mp.mpf, hi: mp.mpf) -> mp.mpf:
        return mp.ncdf(hi, mu, s) - mp.ncdf(lo, mu, s)

    # s_p > s_q: p has the heavier tails, p > q outside [r1, r2]; otherwise inside
    intervals = [(mp.ninf, r1), (r2, mp.inf)] if s_p_ > s_q_ else [(r1, r2)]
    return sum(mass(mu_p_, s_p_, lo, hi) - mass(mu_q_, s_q_, lo, hi) for lo, hi in intervals)


# ------------------------------------------------------------------------------ equal scales


def test_equal_scale_1d_crossing_and_integral() -> None:
    """q = N(0,1), p = N(delta,1): crossing delta/2 and TV = 2 Phi(delta/2) - 1."""
    log_ratio = sp.expand(normal_logpdf(t, delta, 1) - normal_logpdf(t, 0, 1))
    assert sp.solve(sp.Eq(log_ratio, 0), t) == [delta / 2]
    assert log_ratio.diff(t) == delta  # increasing: p > q exactly on (delta/2, inf)
    tv = sp.integrate(normal_pdf(t, delta, 1) - normal_pdf(t, 0, 1), (t, delta / 2, sp.oo))
    target = 2 * std_normal_cdf(delta / 2) - 1
    assert sp.simplify((tv - target).rewrite(sp.erf)) == 0
    assert sp.simplify(target - sp.erf(delta / (2 * sp.sqrt(2)))) == 0


def test_equal_scale_orthogonal_part_integrates_out() -> None:
    """d = 2 whitened: rotating to (t along e, u orthogonal) factorises p - q."""
    th = sp.Symbol("theta", real=True)
    e = sp.Matrix([sp.cos(th), sp.sin(th)])
    e_perp = sp.Matrix([-sp.sin(th), sp.cos(th)])
    w = t * e + u * e_perp  # rotation: Jacobian det [e e_perp] = 1
    assert sp.simplify(sp.Matrix.hstack(e, e_perp).det()) == 1

    def std2(z: sp.Matrix) -> sp.Expr:
        return sp.exp(-sp.simplify((z.T * z)[0]) / 2) / (2 * sp.pi)

    p_w, q_w = std2(w - delta * e), std2(w)
    phi_u = normal_pdf(u, 0, 1)
    assert sp.simplify(p_w - phi_u * normal_pdf(t, delta, 1)) == 0
    assert sp.simplify(q_w - phi_u * normal_pdf(t, 0, 1)) == 0
    assert sp.integrate(phi_u, (u, -sp.oo, sp.oo)) == 1


def test_equal_scale_whitening_and_mahalanobis() -> None:
    """Whitening x = mu_q + S z preserves TV; delta = ||S^{-1} dmu|| = sqrt(dmu^T Sigma^-1 dmu)."""
    s1, s2 = sp.symbols("s1 s2", positive=True)
    z1, z2, m1, m2 = sp.symbols("z1 z2 m1 m2", real=True)
    S = sp.diag(s1, s2)
    z = sp.Matrix([z1, z2])
    xz = S * z
    # density of N(mu, S^2) at x = S z, times |det S|, equals density of N(S^{-1} mu, I) at z
    dens_x = (normal_pdf(xz[0], m1, s1) * normal_pdf(xz[1], m2, s2)) * S.det()
    dens_z = normal_pdf(z1, m1 / s1, 1) * normal_pdf(z2, m2 / s2, 1)
    assert sp.simplify(dens_x - dens_z) == 0
    # so (p - q)^+ transforms like a density and its integral, TV, is unchanged.
    dmu = sp.Matrix(sp.symbols("d1 d2", real=True))
    Sigma_inv = sp.diag(1 / s1**2, 1 / s2**2)
    white = S.inv() * dmu
    assert sp.simplify((white.T * white)[0] - (dmu.T * Sigma_inv * dmu)[0]) == 0


def test_equal_scale_formula_numeric() -> None:
    """2 Phi(delta/2) - 1 against mpmath.quad of max(0, p - q), seeded random 1-D pairs."""
    with mp.workdps(DPS):
        for mu_q_, s_, mu_p_, _ in gaussian_pairs(5, 4, equal_scale=True):
            tv_quad = mp_tv(mp_pdf(mu_p_, s_), mp_pdf(mu_q_, s_), [(mu_p_ + mu_q_) / 2])
            assert abs(tv_quad - tv_equal_scale(abs(mu_p_ - mu_q_) / s_)) < TOL


# ---------------------------------------------------------------------------- unequal scales


def test_log_ratio_quadratic_coefficients() -> None:
    """log p - log q = A x^2 + B x + C with the stated A, B, C."""
    lr = sp.expand(normal_logpdf(x, mu_p, s_p) - normal_logpdf(x, mu_q, s_q))
    A, B, C = sp.Poly(lr, x).all_coeffs()
    assert sp.simplify(A - (1 / (2 * s_q**2) - 1 / (2 * s_p**2))) == 0
    assert sp.simplify(B - (mu_p / s_p**2 - mu_q / s_q**2)) == 0
    C_stated = mu_q**2 / (2 * s_q**2) - mu_p**2 / (2 * s_p**2) + sp.log(s_q / s_p)
    assert sp.simplify(sp.expand_log(C - C_stated, force=True)) == 0
    disc = B**2 - 4 * A * C
    disc_stated = ((mu_p - mu_q) ** 2 + 2 * (s_p**2 - s_q**2) * sp.log(s_p / s_q)) / (
        s_p**2 * s_q**2
    )
    assert sp.simplify(sp.expand_log(disc - disc_stated, force=True)) == 0


def test_two_crossings_when_scales_differ() -> None:
    """(s_p^2 - s_q^2) log(s_p/s_q) > 0 for s_p != s_q, so the discriminant is > 0."""
    k = sp.Symbol("k", positive=True)
    term = (s_p**2 - s_q**2) * sp.log(s_p / s_q)
    for s_p_value in (s_q * (1 + k), s_q / (1 + k)):  # s_p > s_q, s_p < s_q
        assert sp.simplify(term.subs(s_p, s_p_value)).is_positive


def test_gaussian_interval_masses() -> None:
    """int_{-inf}^r N(x; mu, s^2) dx = Phi((r - mu)/s), and the upper tail 1 - Phi.

    Fundamental theorem of calculus: d/dr Phi((r - mu)/s) is the density and Phi -> 0 as
    r -> -inf, Phi -> 1 as r -> inf (so the upper tail is 1 - Phi).
    """
    r, mu = sp.symbols("r mu", real=True)
    s = sp.Symbol("s", positive=True)
    cdf = std_normal_cdf((r - mu) / s)
    assert sp.simplify(sp.diff(cdf, r) - normal_pdf(r, mu, s)) == 0
    # z = (r - mu)/s is increasing in r (dz/dr = 1/s > 0) and runs over the whole line, so the
    # limits in r are the limits of Phi(z) in z.  (Taking sp.limit directly in r with symbolic
    # mu and s returns 1 at -oo in SymPy 1.14 -- a SymPy bug; the substitution avoids it.)
    z = sp.Symbol("z", real=True)
    assert sp.diff((r - mu) / s, r).is_positive
    assert sp.limit(std_normal_cdf(z), z, -sp.oo) == 0
    assert sp.limit(std_normal_cdf(z), z, sp.oo) == 1


def test_unequal_scale_formula_numeric() -> None:
    """Closed form (ii) vs mpmath.quad of max(0, p - q); roots verified to cross."""
    with mp.workdps(DPS):
        cases = gaussian_pairs(6, 6)
        assert any(c[3] > c[1] for c in cases) and any(c[3] < c[1] for c in cases)
        for mu_q_, s_q_, mu_p_, s_p_ in cases:
            roots = crossings_1d(mu_q_, s_q_, mu_p_, s_p_)
            assert len(roots) == 2
            for rt in roots:  # p(r) = q(r), relatively
                assert abs(mp.npdf(rt, mu_p_, s_p_) / mp.npdf(rt, mu_q_, s_q_) - 1) < TOL
            tv_quad = mp_tv(mp_pdf(mu_p_, s_p_), mp_pdf(mu_q_, s_q_), roots)
            assert abs(tv_quad - tv_unequal_scale_1d(mu_q_, s_q_, mu_p_, s_p_)) < TOL
            assert 0 < tv_quad < 1
