"""Shared helpers for the SymPy/mpmath derivations in ``proofs/``.

Nothing here is a proof by itself; the helpers only remove boilerplate:

* :func:`zero_on_both_sides` performs the case split ``p >= q`` / ``p < q`` that every
  ``min``/``max`` identity of speculative sampling needs.  It rewrites ``Min``/``Max`` as
  ``(a + b -/+ |a - b|)/2`` and substitutes ``p = q + d`` (``d >= 0``) or ``q = p + d``
  (``d > 0``), after which SymPy can resolve every ``Abs`` and close the identity.
* Gaussian densities, symbolic (SymPy) and high-precision numeric (mpmath).
* :func:`gaussian_pairs`: seeded random parameter sets for the numeric checks.
* :func:`speculative_integrals`: the one-token sampler between two 1-D Gaussians written out
  as integrals (acceptance probability, residual mass, output MGF), evaluated by SymPy on the
  regions where the sign of p - q is constant.  It evaluates; the tests assert.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath as mp
import sympy as sp

#: Working precision (decimal digits) of every mpmath check in this folder.
DPS = 30
#: Tolerance used when comparing two independently computed mpmath numbers at ``DPS`` digits.
TOL = mp.mpf(10) ** (-20)


def zero_on_both_sides(expr: sp.Expr, p: sp.Symbol, q: sp.Symbol) -> list[sp.Expr]:
    """Simplify ``expr`` on the two regions ``{p >= q}`` and ``{p < q}``.

    Returns the two simplified expressions; the identity ``expr == 0`` holds for every
    ``p, q > 0`` iff both are ``0``.  ``p`` and ``q`` must be positive symbols.
    """
    d_ge = sp.Symbol("d_ge", nonnegative=True)
    d_gt = sp.Symbol("d_gt", positive=True)
    e = expr.rewrite(sp.Abs)
    return [
        sp.simplify(e.subs(p, q + d_ge)),  # region p >= q
        sp.simplify(e.subs(q, p + d_gt)),  # region p < q
    ]


def normal_pdf(x: sp.Expr, mu: sp.Expr, s: sp.Expr) -> sp.Expr:
    """Density of N(mu, s**2) at x (SymPy)."""
    return sp.exp(-((x - mu) ** 2) / (2 * s**2)) / (sp.sqrt(2 * sp.pi) * s)


def normal_logpdf(x: sp.Expr, mu: sp.Expr, s: sp.Expr) -> sp.Expr:
    """Log-density of N(mu, s**2) at x (SymPy), written out, no ``exp``/``log`` round trip."""
    return -((x - mu) ** 2) / (2 * s**2) - sp.log(s) - sp.log(2 * sp.pi) / 2


def std_normal_cdf(z: sp.Expr) -> sp.Expr:
    """Phi(z) = (1 + erf(z / sqrt 2)) / 2 (SymPy)."""
    return (1 + sp.erf(z / sp.sqrt(2))) / 2


def mp_pdf(mu: mp.mpf, s: mp.mpf) -> Callable[[mp.mpf], mp.mpf]:
    """mpmath density of N(mu, s**2) as a one-argument function."""
    return lambda x: mp.npdf(x, mu, s)


def gaussian_pairs(
    seed: int, n: int, *, equal_scale: bool = False
) -> list[tuple[mp.mpf, mp.mpf, mp.mpf, mp.mpf]]:
    """``n`` seeded random 1-D Gaussian pairs ``(mu_q, s_q, mu_p, s_p)`` as mpmath numbers.

    Means in [-2, 2], scales in [0.3, 3]; with ``equal_scale`` the two scales coincide.
    Drawn from ``random.Random(seed)`` so that a failure is reproducible.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        mu_q = mp.mpf(rng.uniform(-2.0, 2.0))
        mu_p = mp.mpf(rng.uniform(-2.0, 2.0))
        s_q = mp.mpf(rng.uniform(0.3, 3.0))
        s_p = s_q if equal_scale else mp.mpf(rng.uniform(0.3, 3.0))
        out.append((mu_q, s_q, mu_p, s_p))
    return out


def log_ratio_coeffs(
    mu_q: mp.mpf, s_q: mp.mpf, mu_p: mp.mpf, s_p: mp.mpf
) -> tuple[mp.mpf, mp.mpf, mp.mpf]:
    """(A, B, C) with log N(x; mu_p, s_p^2) - log N(x; mu_q, s_q^2) = A x^2 + B x + C.

    Derived symbolically in ``test_tv_gaussians.test_log_ratio_quadratic_coefficients``.
    """
    A = 1 / (2 * s_q**2) - 1 / (2 * s_p**2)
    B = mu_p / s_p**2 - mu_q / s_q**2
    C = mu_q**2 / (2 * s_q**2) - mu_p**2 / (2 * s_p**2) + mp.log(s_q / s_p)
    return A, B, C


def crossings_1d(
    mu_q: mp.mpf, s_q: mp.mpf, mu_p: mp.mpf, s_p: mp.mpf, level: mp.mpf = 0
) -> list[mp.mpf]:
    """Points where log N(x; mu_p, s_p^2) - log N(x; mu_q, s_q^2) = ``level`` (sorted).

    Roots of A x^2 + B x + C - level (coefficients derived in ``test_tv_gaussians``); with
    ``level = 0`` these are the points where the densities cross.  Equal scales: at most one
    root (none if the means coincide too).  No real root: empty list.
    """
    A, B, C = log_ratio_coeffs(mu_q, s_q, mu_p, s_p)
    C = C - level
    if A == 0:
        return [] if B == 0 else [-C / B]
    disc = B**2 - 4 * A * C
    if disc < 0:
        return []
    r = mp.sqrt(disc)
    return sorted([(-B - r) / (2 * A), (-B + r) / (2 * A)])


def mp_integral(f: Callable[[mp.mpf], mp.mpf], breakpoints: Sequence[mp.mpf]) -> mp.mpf:
    """Integral of ``f`` over the real line, split at ``breakpoints`` (kinks of max/min)."""
    pts = [mp.ninf, *sorted(breakpoints), mp.inf]
    return mp.quad(f, pts)


def mp_tv(
    f: Callable[[mp.mpf], mp.mpf], g: Callable[[mp.mpf], mp.mpf], breakpoints: Sequence[mp.mpf]
) -> mp.mpf:
    """TV(f, g) = int max(0, f - g) for two densities, by mpmath quadrature."""
    return mp_integral(lambda x: max(mp.mpf(0), f(x) - g(x)), breakpoints)


# --------------------------------------------------------------------------------------------
# Speculative sampling between two 1-D Gaussians, written out as integrals (SymPy).
#
# These helpers evaluate the integrals of the sampling procedure; they assert nothing about
# the result.  ``test_speculative_exact`` checks the primitive by the fundamental theorem of
# calculus and proves the identities; ``test_aligned_trajectories`` reuses the procedure.
# --------------------------------------------------------------------------------------------

#: Values of the target and draft densities at one point (for pointwise case splits).
P_VAL, Q_VAL = sp.symbols("p q", positive=True)
#: Sub-density of "draft drawn at x and accepted": q(x) P(u < p(x)/q(x)) = q min(1, p/q).
ACCEPTED = Q_VAL * sp.Min(1, P_VAL / Q_VAL)
#: Unnormalised residual (p - q)^+; the sampler draws from it divided by its mass.
RESIDUAL = sp.Max(0, P_VAL - Q_VAL)

_X = sp.Symbol("x_int", real=True)
_Z, _K = sp.symbols("z_std k_std", real=True)


@functools.lru_cache(maxsize=1)
def gaussian_exp_primitive() -> tuple[sp.Expr, sp.Expr, sp.Expr, tuple[sp.Symbol, sp.Symbol]]:
    """``G(z)``, an antiderivative of ``exp(k z) phi(z)`` (phi the N(0, 1) density), by
    ``sympy.integrate``, with its limits at -inf and +inf (``sympy.limit``).

    Returns ``(G, G(-inf), G(+inf), (z, k))``.  With x = m + s z,
    ``int_lo^hi exp(theta x) N(x; m, s^2) dx = exp(theta m) [G(z_hi) - G(z_lo)]`` at
    ``k = theta s``.  Cached: the integral is computed once per session.
    """
    prim = sp.integrate(sp.exp(_K * _Z - _Z**2 / 2) / sp.sqrt(2 * sp.pi), _Z)
    return prim, sp.limit(prim, _Z, -sp.oo), sp.limit(prim, _Z, sp.oo), (_Z, _K)


def gaussian_interval_mgf(
    lo: sp.Expr, hi: sp.Expr, mu: sp.Expr, s: sp.Expr, theta: sp.Expr
) -> sp.Expr:
    """``int_lo^hi exp(theta x) N(x; mu, s^2) dx`` (``theta = 0``: the mass of [lo, hi])."""
    prim, at_lo, at_hi, (z, k) = gaussian_exp_primitive()

    def at(v: sp.Expr) -> sp.Expr:
        if v == -sp.oo:
            return at_lo.subs(k, theta * s)
        if v == sp.oo:
            return at_hi.subs(k, theta * s)
        return prim.subs({k: theta * s, z: (v - mu) / s})

    return sp.exp(theta * mu) * (at(hi) - at(lo))


def density_regions(
    mu_q: sp.Expr, s_q: sp.Expr, mu_p: sp.Expr, s_p: sp.Expr
) -> list[tuple[sp.Expr, sp.Expr, int]]:
    """Split the real line into intervals ``(lo, hi, sign)`` where ``sign(p - q)`` is constant.

    p = N(mu_p, s_p^2), q = N(mu_q, s_q^2).  The log-ratio L = log p - log q is a polynomial
    of degree <= 2 in x; its real roots split the line, and the sign of its leading coefficient
    tells which pieces have p > q.  The parameters must be given in a form in which SymPy can
    decide that sign (e.g. ``mu_p = mu_q + delta`` with ``delta > 0``, or
    ``s_p = s_q (1 + k)`` with ``k > 0``); otherwise ``ValueError``.  Two roots exist when the
    scales differ (discriminant > 0, result 5); the roots are spot-checked numerically.
    """
    L = sp.expand(normal_logpdf(_X, mu_p, s_p) - normal_logpdf(_X, mu_q, s_q))
    poly = sp.Poly(L, _X)
    coeffs = poly.all_coeffs()
    if poly.degree() <= 0:
        if sp.simplify(coeffs[-1]) != 0:
            raise ValueError("two normalised densities cannot differ by a constant factor")
        return [(-sp.oo, sp.oo, 0)]
    lead = sp.factor(sp.together(coeffs[0]))
    if lead.is_positive:
        up = 1
    elif lead.is_negative:
        up = -1
    else:
        raise ValueError(f"cannot decide the sign of the leading coefficient {lead}")
    if poly.degree() == 1:
        roots = [sp.simplify(-coeffs[1] / coeffs[0])]
        signs = [-up, up]
        assert sp.simplify(L.subs(_X, roots[0])) == 0
    else:
        A, B, C = coeffs
        sq = sp.sqrt(B**2 - 4 * A * C)
        lo_root, hi_root = (-B - sq) / (2 * A), (-B + sq) / (2 * A)
        roots = [lo_root, hi_root] if up > 0 else [hi_root, lo_root]
        signs = [up, -up, up]
        # sanity check of the quadratic formula: L vanishes at both roots (random rationals)
        rng = random.Random(0)
        for _ in range(2):
            at = {v: sp.Rational(rng.randint(1, 9), rng.randint(1, 9)) for v in L.free_symbols}
            at.pop(_X)
            for r in roots:
                assert abs(sp.N(L.subs(at).subs(_X, r.subs(at)), DPS)) < TOL
    cuts = [-sp.oo, *roots, sp.oo]
    return [(cuts[i], cuts[i + 1], signs[i]) for i in range(len(signs))]


def on_region(expr: sp.Expr, sign: int) -> sp.Expr:
    """``expr`` (built from ``P_VAL``, ``Q_VAL``, Min, Max) where ``sign(p - q) = sign``."""
    d = sp.Symbol("d_reg", positive=True)
    e = expr.rewrite(sp.Abs)
    if sign > 0:
        return sp.expand(sp.simplify(e.subs(P_VAL, Q_VAL + d)).subs(d, P_VAL - Q_VAL))
    if sign < 0:
        return sp.expand(sp.simplify(e.subs(Q_VAL, P_VAL + d)).subs(d, Q_VAL - P_VAL))
    return sp.expand(sp.simplify(e.subs(P_VAL, Q_VAL)))


@dataclass(frozen=True)
class SpeculativeIntegrals:
    """Integrals of the one-token speculative sampler between q and p (see below)."""

    accept: sp.Expr  #: P(accept) = int ``accepted``
    residual_mass: sp.Expr  #: int ``residual`` (the normaliser of the residual law)
    mgf: sp.Expr  #: E exp(theta X_out)


def speculative_integrals(
    mu_q: sp.Expr,
    s_q: sp.Expr,
    mu_p: sp.Expr,
    s_p: sp.Expr,
    theta: sp.Expr,
    *,
    accepted: sp.Expr = ACCEPTED,
    residual: sp.Expr = RESIDUAL,
) -> SpeculativeIntegrals:
    """The sampler written out: draw x ~ q, accept with the sub-density ``accepted``; on
    rejection (probability 1 - P(accept)) draw from ``residual / int residual``.

    E exp(theta X_out) = int e^{theta x} accepted + (1 - P(accept)) int e^{theta x} residual
    / int residual.  Each integrand is reduced on every region of :func:`density_regions` to
    a combination c_p p + c_q q (by :func:`on_region`) and integrated with
    :func:`gaussian_interval_mgf`.  Variants of the sampler (the negative controls) pass other
    ``accepted`` / ``residual`` expressions.  If p = q the residual term is dropped.
    """
    regions = density_regions(mu_q, s_q, mu_p, s_p)

    def pieces(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Expr]]:
        """(c_p, c_q) with expr = c_p p + c_q q on each region."""
        out = []
        for _, _, sign in regions:
            piece = on_region(expr, sign)
            c_p, c_q = piece.coeff(P_VAL), piece.coeff(Q_VAL)
            linear = sp.expand(piece - c_p * P_VAL - c_q * Q_VAL) == 0
            if not linear or (c_p.free_symbols | c_q.free_symbols) & {P_VAL, Q_VAL}:
                raise ValueError(f"not a linear combination of p and q: {piece}")
            out.append((c_p, c_q))
        return out

    def integral(coeffs: list[tuple[sp.Expr, sp.Expr]], th: sp.Expr) -> sp.Expr:
        total = sp.Integer(0)
        for (lo, hi, _), (c_p, c_q) in zip(regions, coeffs, strict=True):
            if c_p != 0:
                total += c_p * gaussian_interval_mgf(lo, hi, mu_p, s_p, th)
            if c_q != 0:
                total += c_q * gaussian_interval_mgf(lo, hi, mu_q, s_q, th)
        return total

    acc_pieces, res_pieces = pieces(accepted), pieces(residual)

    accept = integral(acc_pieces, 0)
    mgf = integral(acc_pieces, theta)
    if len(regions) == 1:  # p = q everywhere: every draft is accepted
        assert sp.simplify(1 - accept) == 0
        return SpeculativeIntegrals(accept, sp.Integer(0), mgf)
    mass = integral(res_pieces, 0)
    mgf += (1 - accept) * integral(res_pieces, theta) / mass
    return SpeculativeIntegrals(accept, mass, mgf)


def ratio_is_one(num: sp.Expr, den: sp.Expr) -> bool:
    """``num == den`` for two positive expressions (MGFs), tested as ``expand(num/den) == 1``.

    Much faster than simplifying the difference of two erf/exp expressions: the ratio cancels
    the common exponential factor before ``simplify`` sees it.
    """
    return sp.simplify(sp.expand(num / den)) == 1
