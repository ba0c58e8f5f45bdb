"""Result 6 -- log-ratios of Gaussian transitions and of whole trajectories.

Statement
---------
(i) Equal scale s (isotropic, d dimensions):
    log N(x'; m_p, s^2 I) - log N(x'; m_q, s^2 I) = (||x' - m_q||^2 - ||x' - m_p||^2) / (2 s^2);
the normalisers cancel (an implementation may drop the log(2 pi) and log s terms).
With a diagonal scale shared by p and q the same holds coordinate-wise with s_i^2.
(ii) Unequal diagonal scales: the difference keeps sum_i log(s_q,i / s_p,i).
(iii) Two diffusion heads (docs/algorithms.md §4.1) x_T ~ N(0, I),
x_{t-1} = m(x_t, t) + tau s(x_t, t) eps_t, eps_t ~ N(0, I), with the same initial law: the
log-density ratio of a whole trajectory (x_T, ..., x_0) is the sum over t of the transition
log-ratios of (i)/(ii),
    sum_t sum_i [ (x_{t-1,i} - m_q,i)^2 / (2 tau^2 s_q,i^2) - (x_{t-1,i} - m_p,i)^2
                  / (2 tau^2 s_p,i^2) + log(s_q,i / s_p,i) ],   means and scales at (x_t, t),
the initial law cancelling.  This is the acceptance ratio of the "joint criterion" of
docs/algorithms.md §4.3 (speculative sampling on whole trajectories).

Derivation
----------
(i), (ii): the densities are ``sympy.stats.MultivariateNormal`` densities with covariance
diag(s^2) (the multivariate formula with det and inverse, not a product we write), logs
expanded; the stated right-hand sides are written out by hand.  d = 3.  [symbolic]

(iii): the trajectory density is derived from the sampling procedure, not assumed to be a
product of transitions.  The noise (x_T, eps_T, ..., eps_1) is N(0, I); the map
noise -> trajectory is the sampler, and its inverse is eps_t = (x_{t-1} - m(x_t, t)) /
(tau s(x_t, t)) (checked: composing it with the sampler gives the noise back).  By the change
of variables formula the trajectory density is phi(noise(x)) |det d noise / d x|, with the
Jacobian determinant computed by SymPy from the inverse map.  m and s are undefined SymPy
functions of (x_t, t) (any network, CFG folded in), for d = 1, T = 3 and for d = 2, T = 2
(each coordinate of m and s a function of the whole state).  The log of the draft's density
is subtracted from the target's and compared with the stated sum.  [symbolic]

Negative controls (each must FAIL the identity):
* (i)/(ii): scales used where variances belong ((.)/(2 s) instead of (.)/(2 s^2)), and the
  log-scale terms dropped when the scales differ;
* (iii): the draft starting from N(0, v^2) with v != 1 (the initial law no longer cancels),
  the log-scale terms dropped, and each transition's mean and scale evaluated at x_{t-1}
  instead of x_t (an off-by-one).  The controls are evaluated at a rational point after
  substituting concrete functions for m and s.

Implemented by ``cspd_ref.diffusion.transition_log_prob`` and
``cspd_ref.diffusion.trajectory_log_ratio``.
"""

from __future__ import annotations

import pytest
import sympy as sp
from sympy.stats import MultivariateNormal, density

D = 3
xs = sp.symbols(f"x1:{D + 1}", real=True)
mps = sp.symbols(f"mp1:{D + 1}", real=True)
mqs = sp.symbols(f"mq1:{D + 1}", real=True)


def mvn_log_density(x: tuple, m: tuple, scales: tuple) -> sp.Expr:
    """log of SymPy's multivariate normal density N(m, diag(scales)^2) at x, logs expanded."""
    vec = MultivariateNormal("X", sp.Matrix(m), sp.diag(*(si**2 for si in scales)))
    return sp.expand(sp.expand_log(sp.log(density(vec)(*x)), force=True))


def _sq(a: tuple, b: tuple) -> sp.Expr:
    return sp.Add(*((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)))


def test_equal_isotropic_scale_normalisers_cancel() -> None:
    """(i): (||x - m_q||^2 - ||x - m_p||^2) / (2 s^2); control: (.)/(2 s) is wrong."""
    s = sp.Symbol("s", positive=True)
    lr = mvn_log_density(xs, mps, (s,) * D) - mvn_log_density(xs, mqs, (s,) * D)
    assert sp.simplify(lr - (_sq(xs, mqs) - _sq(xs, mps)) / (2 * s**2)) == 0
    assert not sp.simplify(lr).has(sp.pi)  # no normaliser survives
    assert sp.simplify(lr - (_sq(xs, mqs) - _sq(xs, mps)) / (2 * s)) != 0


def test_equal_diagonal_scale() -> None:
    """(i) with a shared diagonal scale: sum_i ((x_i - mq_i)^2 - (x_i - mp_i)^2) / (2 s_i^2)."""
    ss = sp.symbols(f"s1:{D + 1}", positive=True)
    lr = mvn_log_density(xs, mps, ss) - mvn_log_density(xs, mqs, ss)
    stated = sp.Add(
        *(
            ((x - b) ** 2 - (x - a) ** 2) / (2 * s**2)
            for x, a, b, s in zip(xs, mps, mqs, ss, strict=True)
        )
    )
    assert sp.simplify(lr - stated) == 0


def test_unequal_scales_keep_log_scale_terms() -> None:
    """(ii): + sum_i log(s_q,i / s_p,i); control: dropping these terms is wrong."""
    sps = sp.symbols(f"sp1:{D + 1}", positive=True)
    sqs = sp.symbols(f"sq1:{D + 1}", positive=True)
    lr = mvn_log_density(xs, mps, sps) - mvn_log_density(xs, mqs, sqs)
    rows = list(zip(xs, mps, mqs, sps, sqs, strict=True))
    quad = sp.Add(
        *((x - b) ** 2 / (2 * t**2) - (x - a) ** 2 / (2 * s**2) for x, a, b, s, t in rows)
    )
    stated = quad + sp.Add(*(sp.log(t / s) for _, _, _, s, t in rows))
    assert sp.simplify(sp.expand_log(lr - stated, force=True)) == 0
    assert sp.simplify(sp.expand_log(lr - quad, force=True)) != 0


# ---------------------------------------------------------------------------------------------
# (iii) whole trajectories
# ---------------------------------------------------------------------------------------------

tau = sp.Symbol("tau", positive=True)


class Head:
    """A diffusion head with undefined mean/scale functions: coordinate i of m(x_t, t) is
    ``m_<name><i>(x_t[0], ..., x_t[d-1], t)``, likewise s (positive)."""

    def __init__(self, name: str, d: int) -> None:
        self.m = [sp.Function(f"m_{name}{i}") for i in range(d)]
        self.s = [sp.Function(f"s_{name}{i}", positive=True) for i in range(d)]

    def mean(self, i: int, x_t: list[sp.Symbol], t: int) -> sp.Expr:
        """Coordinate i of m(x_t, t)."""
        return self.m[i](*x_t, t)

    def scale(self, i: int, x_t: list[sp.Symbol], t: int) -> sp.Expr:
        """Coordinate i of s(x_t, t)."""
        return self.s[i](*x_t, t)


def trajectory_symbols(T: int, d: int) -> list[list[sp.Symbol]]:
    """states[t][i] = coordinate i of x_t, t = 0..T."""
    return [[sp.Symbol(f"x{t}_{i}", real=True) for i in range(d)] for t in range(T + 1)]


def noise_of_states(
    head: Head, states: list, init_scale: sp.Expr, *, state_at: int = 0
) -> list[sp.Expr]:
    """Inverse of the sampler: (z_T, eps_T, ..., eps_1) as functions of the states.

    z_T = x_T / init_scale; eps_t = (x_{t-1} - m(x_t, t)) / (tau s(x_t, t)).  ``state_at = -1``
    evaluates m and s at x_{t-1} instead (the off-by-one control).
    """
    T = len(states) - 1
    out = [xi / init_scale for xi in states[T]]
    for t in range(T, 0, -1):
        where = states[t + state_at]
        for i, xi in enumerate(states[t - 1]):
            out.append((xi - head.mean(i, where, t)) / (tau * head.scale(i, where, t)))
    return out


def log_trajectory_density(head: Head, states: list, init_scale: sp.Expr = 1) -> sp.Expr:
    """log density of (x_T, ..., x_0) by change of variables from the N(0, I) noise:
    sum_j log phi(noise_j(x)) + log det(d noise / d x)."""
    T = len(states) - 1
    noise = noise_of_states(head, states, init_scale)
    order = [xi for t in range(T, -1, -1) for xi in states[t]]  # x_T first, as the noise
    jac_det = sp.Matrix(noise).jacobian(sp.Matrix(order)).det()
    log_phi = sp.Add(*(-(z**2) / 2 - sp.log(2 * sp.pi) / 2 for z in noise))
    return log_phi + sp.log(jac_det)


def stated_log_ratio(p: Head, q: Head, states: list, *, with_log_scales: bool = True) -> sp.Expr:
    """The claimed closed form: sum over steps and coordinates of the transition log-ratio."""
    T = len(states) - 1
    total = sp.Integer(0)
    for t in range(1, T + 1):
        x_t, x_prev = states[t], states[t - 1]
        for i, xi in enumerate(x_prev):
            sp_, sq_ = p.scale(i, x_t, t), q.scale(i, x_t, t)
            total += (xi - q.mean(i, x_t, t)) ** 2 / (2 * tau**2 * sq_**2)
            total -= (xi - p.mean(i, x_t, t)) ** 2 / (2 * tau**2 * sp_**2)
            if with_log_scales:
                total += sp.log(sq_) - sp.log(sp_)
    return total


def _is_zero(expr: sp.Expr) -> bool:
    return sp.simplify(sp.expand(sp.expand_log(expr, force=True))) == 0


def _concrete(expr: sp.Expr, heads: list[Head], d: int) -> sp.Expr:
    """Replace the undefined functions by concrete ones (for evaluating the controls)."""
    for k, head in enumerate(heads):
        for i in range(d):
            args = sp.symbols(f"y0:{d}", real=True)
            t = sp.Symbol("t_", integer=True)
            expr = expr.replace(
                head.m[i], sp.Lambda((*args, t), (k + 1) * sp.sin(sum(args)) + t + i)
            )
            expr = expr.replace(
                head.s[i], sp.Lambda((*args, t), 1 + (k + 1) * args[0] ** 2 + t / 3)
            )
    return expr.doit()


@pytest.mark.parametrize(("T", "d"), [(3, 1), (2, 2)])
def test_sampler_inverse_is_the_noise(T: int, d: int) -> None:
    """noise_of_states inverts the sampler: run the sampler on symbolic noise, invert, compare."""
    head = Head("p", d)
    z = [sp.Symbol(f"z{i}", real=True) for i in range(d)]
    e = {t: [sp.Symbol(f"e{t}_{i}", real=True) for i in range(d)] for t in range(1, T + 1)}
    states: list = [None] * (T + 1)
    states[T] = z
    for t in range(T, 0, -1):
        states[t - 1] = [
            head.mean(i, states[t], t) + tau * head.scale(i, states[t], t) * e[t][i]
            for i in range(d)
        ]
    expected = [*z, *(eps for t in range(T, 0, -1) for eps in e[t])]
    got = noise_of_states(head, states, 1)
    assert all(sp.simplify(g - w) == 0 for g, w in zip(got, expected, strict=True))


@pytest.mark.parametrize(("T", "d"), [(3, 1), (2, 2)])
def test_trajectory_log_ratio_is_sum_of_transition_log_ratios(T: int, d: int) -> None:
    """(iii) from the change of variables; controls: different initial law, dropped log-scale
    terms, off-by-one state."""
    p, q = Head("p", d), Head("q", d)
    states = trajectory_symbols(T, d)
    joint = log_trajectory_density(p, states) - log_trajectory_density(q, states)
    assert _is_zero(joint - stated_log_ratio(p, q, states))

    # equal scales: the per-step closed form of (i)
    same_scales = {q.s[i]: p.s[i] for i in range(d)}
    closed = sp.Add(
        *(
            (
                (states[t - 1][i] - q.mean(i, states[t], t)) ** 2
                - (states[t - 1][i] - p.mean(i, states[t], t)) ** 2
            )
            / (2 * tau**2 * p.scale(i, states[t], t) ** 2)
            for t in range(1, T + 1)
            for i in range(d)
        )
    )
    assert _is_zero(joint.subs(same_scales) - closed)

    # negative controls, evaluated at a rational point with concrete m and s
    flat = [xi for x_t in states for xi in x_t]
    point = {xi: sp.Rational(k + 1, 3) for k, xi in enumerate(flat)}
    point[tau] = sp.Rational(1, 2)
    v = sp.Integer(3)
    wrong_init = log_trajectory_density(p, states) - log_trajectory_density(q, states, v)
    order = [xi for t in range(T, -1, -1) for xi in states[t]]
    off_by_one = 0
    for head, sign in ((p, 1), (q, -1)):
        noise = noise_of_states(head, states, 1, state_at=-1)
        jac = sp.Matrix(noise).jacobian(sp.Matrix(order)).det()
        off_by_one += sign * (sp.Add(*(-(z**2) / 2 for z in noise)) + sp.log(jac))
    for wrong in (
        wrong_init - stated_log_ratio(p, q, states),
        joint - stated_log_ratio(p, q, states, with_log_scales=False),
        off_by_one - stated_log_ratio(p, q, states),
    ):
        value = sp.N(_concrete(wrong, [p, q], d).xreplace(point))
        assert abs(value) > 1e-3
