"""Result 6 -- log-ratios of Gaussian transitions and of whole trajectories.

Statement
---------
(i) Equal scale s (isotropic, d dimensions):
    log N(x'; m_p, s^2 I) - log N(x'; m_q, s^2 I) = (||x' - m_q||^2 - ||x' - m_p||^2) / (2 s^2);
the normalisers cancel (an implementation may drop the log(2 pi) and log s terms).
With a diagonal scale shared by p and q the same holds coordinate-wise with s_i^2.
(ii) Unequal scales: the difference keeps sum_i log(s_q,i / s_p,i).
(iii) Two Markov chains with the same initial law pi(x_T) and transitions p_t, q_t:
    log p(x_T, ..., x_0) - log q(x_T, ..., x_0) = sum_{t=1}^{T} [log p_t(x_{t-1} | x_t)
                                                              - log q_t(x_{t-1} | x_t)]
(the initial law cancels).  For the diffusion head
p_t(.|x_t) = N(m_p(x_t, t), (tau s_p(x_t, t))^2), so every term is of form (i)/(ii).  This is
the acceptance ratio of the "joint alternative" of SPEC section 3 (speculative sampling on
whole trajectories).

Derivation
----------
All symbolic: the densities are SymPy's own ``sympy.stats.Normal`` densities (not hand-written),
logs expanded with ``expand_log``; (i) and (ii) for d = 3 with symbolic vectors and scales,
(iii) for T = 3 with the mean and scale functions left as undefined SymPy ``Function``s (so
the result holds for any m, s, e.g. an MLP with classifier-free guidance folded in).

Implemented by ``cspd_ref.diffusion.transition_log_prob`` and
``cspd_ref.diffusion.trajectory_log_ratio``.
"""

from __future__ import annotations

import sympy as sp
from sympy.stats import Normal, density

D = 3
xs = sp.symbols(f"x1:{D + 1}", real=True)
mps = sp.symbols(f"mp1:{D + 1}", real=True)
mqs = sp.symbols(f"mq1:{D + 1}", real=True)


def log_normal(value: sp.Expr, mean: sp.Expr, std: sp.Expr) -> sp.Expr:
    """log of SymPy's N(mean, std^2) density at value, logs expanded."""
    dens = density(Normal("Z", mean, std))(value)
    return sp.expand_log(sp.log(dens), force=True)


def diag_log_density(x: tuple, m: tuple, scales: tuple) -> sp.Expr:
    """log N(x; m, diag(scales)^2) = sum of coordinate log-densities."""
    return sp.Add(*(log_normal(xi, mi, si) for xi, mi, si in zip(x, m, scales, strict=True)))


def _sq(a: tuple, b: tuple) -> sp.Expr:
    return sp.Add(*((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)))


def test_equal_isotropic_scale_normalisers_cancel() -> None:
    """(i): (||x - m_q||^2 - ||x - m_p||^2) / (2 s^2)."""
    s = sp.Symbol("s", positive=True)
    lr = diag_log_density(xs, mps, (s,) * D) - diag_log_density(xs, mqs, (s,) * D)
    assert sp.simplify(lr - (_sq(xs, mqs) - _sq(xs, mps)) / (2 * s**2)) == 0
    assert not sp.simplify(lr).has(sp.pi)  # no normaliser survives


def test_equal_diagonal_scale() -> None:
    """(i) with a shared diagonal scale: sum_i ((x_i - mq_i)^2 - (x_i - mp_i)^2) / (2 s_i^2)."""
    ss = sp.symbols(f"s1:{D + 1}", positive=True)
    lr = diag_log_density(xs, mps, ss) - diag_log_density(xs, mqs, ss)
    stated = sp.Add(
        *(
            ((x - b) ** 2 - (x - a) ** 2) / (2 * s**2)
            for x, a, b, s in zip(xs, mps, mqs, ss, strict=True)
        )
    )
    assert sp.simplify(lr - stated) == 0


def test_unequal_scales_keep_log_scale_terms() -> None:
    """(ii): + sum_i log(s_q,i / s_p,i)."""
    sps = sp.symbols(f"sp1:{D + 1}", positive=True)
    sqs = sp.symbols(f"sq1:{D + 1}", positive=True)
    lr = diag_log_density(xs, mps, sps) - diag_log_density(xs, mqs, sqs)
    rows = list(zip(xs, mps, mqs, sps, sqs, strict=True))
    quad = sp.Add(
        *((x - b) ** 2 / (2 * t**2) - (x - a) ** 2 / (2 * s**2) for x, a, b, s, t in rows)
    )
    stated = quad + sp.Add(*(sp.log(t / s) for _, _, _, s, t in rows))
    assert sp.simplify(sp.expand_log(lr - stated, force=True)) == 0
    # dropping the log-scale terms is wrong whenever the scales differ
    dropped = quad
    assert sp.simplify(sp.expand_log(lr - dropped, force=True)) != 0


def test_trajectory_log_ratio_is_sum_of_transition_log_ratios() -> None:
    """(iii) for T = 3 steps, generic mean/scale functions, shared initial law N(0, 1)."""
    T = 3
    x = sp.symbols(f"x0:{T + 1}", real=True)  # x[T] is the initial state, x[0] the token
    tau = sp.Symbol("tau", positive=True)
    m_p, m_q = sp.Function("m_p"), sp.Function("m_q")
    s_p, s_q = sp.Function("s_p", positive=True), sp.Function("s_q", positive=True)

    def step(mf: sp.Function, sf: sp.Function, t: int) -> sp.Expr:
        """log density of x_{t-1} given x_t: N(m(x_t, t), (tau s(x_t, t))^2)."""
        return log_normal(x[t - 1], mf(x[t], t), tau * sf(x[t], t))

    log_init = log_normal(x[T], 0, 1)
    log_p_joint = log_init + sp.Add(*(step(m_p, s_p, t) for t in range(1, T + 1)))
    log_q_joint = log_init + sp.Add(*(step(m_q, s_q, t) for t in range(1, T + 1)))
    per_step = sp.Add(*(step(m_p, s_p, t) - step(m_q, s_q, t) for t in range(1, T + 1)))
    assert sp.simplify(log_p_joint - log_q_joint - per_step) == 0
    assert not (log_p_joint - log_q_joint).has(x[T] ** 2)  # the initial law cancelled
    # with equal scales each step is the closed form (i)
    eq = sp.expand(per_step.subs(s_q, s_p))
    closed = sp.Add(
        *(
            ((x[t - 1] - m_q(x[t], t)) ** 2 - (x[t - 1] - m_p(x[t], t)) ** 2)
            / (2 * tau**2 * s_p(x[t], t) ** 2)
            for t in range(1, T + 1)
        )
    )
    assert sp.simplify(eq - closed) == 0
