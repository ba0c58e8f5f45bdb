"""Shared helpers for the SymPy/mpmath derivations in ``proofs/``.

Nothing here is a proof by itself; the helpers only remove boilerplate:

* :func:`zero_on_both_sides` performs the case split ``p >= q`` / ``p < q`` that every
  ``min``/``max`` identity of speculative sampling needs.  It rewrites ``Min``/``Max`` as
  ``(a + b -/+ |a - b|)/2`` and substitutes ``p = q + d`` (``d >= 0``) or ``q = p + d``
  (``d > 0``), after which SymPy can resolve every ``Abs`` and close the identity.
* Gaussian densities, symbolic (SymPy) and high-precision numeric (mpmath).
* :func:`gaussian_pairs`: seeded random parameter sets for the numeric checks.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

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
