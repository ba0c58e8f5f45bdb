"""The cases the mutant families run on, the ``Member``/``RecordedEffect`` records, and the
single-axis shift (a sampler off by a fixed shift along one coordinate axis)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import erfinv

from cspd_ref.ar import MixtureARModel, mar_schedule
from cspd_ref.cases import ARCase, Case
from cspd_ref.distributions import GaussianMixture
from cspd_ref.mutants.token_families import mixture_sample_from_noise, mixtures_log_prob
from cspd_ref.speculative import (
    SpeculativeResult,
)
from cspd_ref.theory import tv_distance

FloatArray = np.ndarray
Sampler = Callable[[Any, int, int], Any]


# =========================================================================== single-axis shift
@dataclass(frozen=True)
class Member:
    """One family member on one case, with its measured effect size where recorded.

    Attributes:
        family, parameter: which family and which setting.
        sampler: the contract sampler.
        case: the case it runs on (a ``Case`` or an ``ARCase``).
        effect: the recorded measurement (``RecordedEffect``) or None.
    """

    family: str
    parameter: Any
    sampler: Sampler
    case: Any
    effect: RecordedEffect | None = None


@dataclass(frozen=True)
class RecordedEffect:
    """An effect size measured once by ``effect_size`` and recorded as a constant.

    Attributes:
        ks: largest KS distance over ``case_directions`` (Monte Carlo).
        ks_direction: the direction where it was found.
        ks_noise: the per-direction 99 % DKW bound ``sqrt(ln(200) / (2 n_ref))``.
        atom_mass: largest point mass (most repeated row count / n_ref).
        acceptance_deviation: acceptance rate minus ``1 - TV`` (None when not exposed).
        closed_form_ks: the exact KS distance where known (``closed_forms``), else None.
        closed_form_atom: the exact atom mass where known, else None.
        n_ref, seed: the measurement's sample size and seed (0, 0 for a pure closed form).
    """

    ks: float
    ks_direction: str
    ks_noise: float
    atom_mass: float
    acceptance_deviation: float | None
    closed_form_ks: float | None
    closed_form_atom: float | None
    n_ref: int
    seed: int


def standard_normal_case(d: int = 16) -> Case:
    """Target N(0, I_d) with draft = target (TV 0): the case of ``single_axis_shift``."""
    g = GaussianMixture([1.0], np.zeros((1, d)), np.ones((1, d)))
    return Case(draft=g, target=g, name=f"standard-normal-d{d}",
                tags=("equal_scales", "single_gaussian"))


def single_axis_shift_sampler(shift: float = 0.15, axis: int = 0) -> Sampler:
    """An exact N(0, I) sampler with coordinate ``axis`` shifted by ``shift`` (draft ignored).

    Against target N(0, I): along ``e_axis`` the KS distance is ``2 Phi(shift/2) - 1``
    (0.0598 for 0.15); along a random unit direction it is diluted to about
    ``2 Phi(shift / (2 sqrt d)) - 1`` (0.015 at d = 16). Every row is flagged accepted (p = q).
    """

    def sample(case: Case, n: int, seed: int) -> SpeculativeResult:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, case.dim))
        x[:, axis] += shift
        return SpeculativeResult(samples=x, accepted=np.ones(n, dtype=bool),
                                 trials=np.zeros(n, dtype=np.int64))

    sample.__name__ = sample.__qualname__ = f"single_axis_shift[shift={shift},axis={axis}]"
    sample.shift = shift  # type: ignore[attr-defined]
    return sample


def single_axis_shift(d: int = 16, shift: float = 0.15) -> Member:
    """The single-axis case: an exact N(0, I_d) sampler with one coordinate shifted by ``shift``,
    judged against target N(0, I_d). KS along the shifted axis ``2 Phi(shift/2) - 1``."""
    closed = math.erf(shift / (2.0 * math.sqrt(2.0)))
    return Member("single_axis_shift", shift, single_axis_shift_sampler(shift),
                  standard_normal_case(d),
                  RecordedEffect(ks=closed, ks_direction="axis[0]", ks_noise=0.0, atom_mass=0.0,
                                 acceptance_deviation=0.0, closed_form_ks=closed,
                                 closed_form_atom=None, n_ref=0, seed=0))


# =========================================================================== case builders
def gaussian_case(d: int, tv: float, seed: int = 0) -> Case:
    """Equal-scale unit Gaussians, draft N(0, I), target N(delta u, I) with u a unit direction
    drawn from ``default_rng(seed)`` and ``delta = 2 sqrt 2 erfinv(tv)``, so that
    ``TV = erf(delta / (2 sqrt 2)) = tv`` exactly. Along u the projected KS distance is TV."""
    if not 0.0 < tv < 1.0:
        raise ValueError(f"tv: expected 0 < tv < 1, got {tv!r}")
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    delta = 2.0 * math.sqrt(2.0) * float(erfinv(tv))
    ones = np.ones((1, d))
    draft = GaussianMixture([1.0], np.zeros((1, d)), ones)
    target = GaussianMixture([1.0], (delta * u)[None, :], ones)
    return Case(draft=draft, target=target, name=f"gaussian-d{d}-tv{tv:g}",
                tags=("equal_scales", "single_gaussian"))


def _perturbed_draft(target: GaussianMixture, size: float, directions: FloatArray,
                     log_scale: FloatArray, logits: FloatArray) -> GaussianMixture:
    w = np.log(target.weights) + size * logits
    w = np.exp(w - w.max())
    return GaussianMixture(w / w.sum(), target.means + size * directions,
                           target.scales * np.exp(size * log_scale), validate_args=False)


def _mc_tv(q: GaussianMixture, p: GaussianMixture, noise: tuple[FloatArray, ...]) -> float:
    """``TV = E_m |tanh((log p - log q)/2)|``, m = (p + q)/2, on fixed noise (common random
    numbers, so the estimate is a smooth-ish function of the draft's parameters)."""
    u1, z1, u2, z2 = noise
    xs = np.concatenate([mixture_sample_from_noise(p, u1, z1),
                         mixture_sample_from_noise(q, u2, z2)])
    log_p, log_q = mixtures_log_prob((p, q), xs)
    return float(np.mean(np.abs(np.tanh(0.5 * (log_p - log_q)))))


@functools.lru_cache(maxsize=64)
def mixture_case(d: int, K: int, tv_hint: float, seed: int = 0) -> Case:
    """A K-component diagonal mixture target and a draft perturbed to TV ≈ ``tv_hint``.

    Target (from ``default_rng(seed)``): weights Dirichlet(3), means N(0, 1.5²), scales
    U(0.6, 1.2). Draft: every component mean moved by ``s`` along its own random unit vector,
    log-scales by ``s η`` (``||η|| ≈ 1/2``), logits by ``s ξ/2``; ``s`` is found by bisection on
    a common-random-numbers Monte Carlo TV (40k points), so the TV is within ~2 % of the hint.
    The case's name records the TV measured by ``cspd_ref.theory.tv_distance``. Cached: the
    same arguments return the same (immutable) case.
    """
    if not 0.0 < tv_hint < 0.9:
        raise ValueError(f"tv_hint: expected 0 < tv_hint < 0.9, got {tv_hint!r}")
    rng = np.random.default_rng(seed)
    target = GaussianMixture(rng.dirichlet(np.full(K, 3.0)), rng.normal(0.0, 1.5, (K, d)),
                             rng.uniform(0.6, 1.2, (K, d)))
    directions = rng.standard_normal((K, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    log_scale = 0.5 * rng.standard_normal((K, d)) / math.sqrt(d)
    logits = 0.5 * rng.standard_normal(K)
    half = 20_000
    noise = (rng.random(half), rng.standard_normal((half, d)), rng.random(half),
             rng.standard_normal((half, d)))

    def tv_of(size: float) -> float:
        return _mc_tv(_perturbed_draft(target, size, directions, log_scale, logits), target, noise)

    lo, hi = 0.0, 0.05
    while tv_of(hi) < tv_hint:
        lo, hi = hi, 2.0 * hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tv_of(mid) < tv_hint else (lo, mid)
    draft = _perturbed_draft(target, 0.5 * (lo + hi), directions, log_scale, logits)
    draft = GaussianMixture(draft.weights, draft.means, draft.scales)  # validated
    tv = tv_distance(draft, target, rng=np.random.default_rng(seed + 1)).value
    return Case(draft=draft, target=target, name=f"mixture-d{d}-K{K}-tv{tv:.4f}",
                tags=("mixture",))


def ar_case(seq_len: int = 6, dim: int = 2, groups: int = 4, perturbation: float = 0.4,
            seed: int = 11) -> ARCase:
    """A ``MixtureARModel`` target (K = 2, coupling 1.5), a draft perturbed by ``perturbation``,
    a MAR schedule; the defaults reproduce ``mutants.ar_case``."""
    rng = np.random.default_rng(seed)
    target = MixtureARModel.random(seq_len, dim, 2, rng=rng, coupling=1.5)
    return ARCase(target.perturbed(perturbation, rng=rng), target,
                  mar_schedule(seq_len, groups, rng=rng),
                  name=f"ar-L{seq_len}-d{dim}-G{groups}-pert{perturbation:g}")
