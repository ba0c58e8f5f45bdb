"""Families of known-bad samplers whose effect size can be dialled down (issue 8).

``mutants.py`` holds gross mutants (TV ~0.27, residual caps of 2 tries): any battery flags them.
This module holds *parametrised* families of the same realistic mistakes, so that the power of
the battery can be measured as a curve and the gate can assert detection of mutants at the edge
of detectability (KS distance 0.006–0.02 along a tested direction, or an atom of 0.1–1 %).

Families (each factory returns a sampler ``sampler(case, n, seed) -> SpeculativeResult``, seeded
only from ``np.random.default_rng(seed)``, vectorised over rows; the AR family returns
``(n, L, d)``):

* ``capped_residual(cap, fallback)`` — residual loop capped at ``cap`` proposals, unfinished rows
  get ``"zero"`` (0.0), ``"draft"`` (the rejected draft) or ``"fresh_draft"`` (a new draft).
* ``draft_temperature(tau)`` — draft sampled with scales × tau, scored with its tau = 1 density.
* ``mass_toward_draft(w)`` — a fraction ``w`` of rows output a plain draft sample.
* ``low_precision_log_density(dtype)`` — log p, log q rounded to bfloat16/float16 before the ratio.
* ``residual_from_draft()`` — residual proposals drawn from q instead of p.
* ``ar_keeps_extra_groups(k)`` — AR decoding keeps ``k`` drafted groups after the first rejected
  group before discarding the rest.

Every token family is the exact batched speculative sampler (``cspd_ref.speculative``, same noise
order: draft component uniforms ``(n,)``, draft normals ``(n, d)``, acceptance uniforms ``(n,)``,
then residual rounds drawn as ``ResidualNoiseGenerator`` draws them) with one switch turned; at
its identity setting (``cap=None``/huge, ``tau=1``, ``w=0``, ``"float64"``) it returns the same
output as ``speculative_sample(..., residual="batched")`` on the same seed. Densities and draws
are the reference's own (``GaussianMixture.log_prob``, ``sample_from_noise``).

``effect_size`` measures how far a mutant's law is from the target *where the battery looks*:
the KS distance along every ``case_directions`` vector, the largest point mass, the acceptance
deviation; closed forms (``closed_forms``: ``mass_toward_draft_ks``, ``capped_zero_atom_mass``,
the 1-D quadrature ``token_law_1d``) check those Monte Carlo estimates. ``FAMILY_GRID`` spans
effect sizes for power curves and ``edge_members()`` lists members at the edge with their
measured effect sizes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy.special import erfinv

from cspd_ref.ar import MixtureARModel, mar_schedule
from cspd_ref.cases import ARCase, Case
from cspd_ref.distributions import GaussianMixture
from cspd_ref.speculative import (
    DEFAULT_MAX_TRIALS,
    FIRST_ROUND_SIZE,
    ROUND_ELEMENT_BUDGET,
    ResidualBudgetExceeded,
    ResidualNoiseGenerator,
    SpeculativeResult,
    accept_from_uniforms,
    residual_acceptance_probability,
    verify_draft_from_noise,
)
from cspd_ref.stats.directions import case_directions
from cspd_ref.theory import tv_distance

FloatArray = np.ndarray
Sampler = Callable[[Any, int, int], Any]

FALLBACKS: tuple[str, ...] = ("zero", "draft", "fresh_draft")
ROUNDINGS: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
DKW_LEVEL = 0.01
"""The noise bounds of ``effect_size`` hold with probability 1 - DKW_LEVEL (99 %)."""
PIT_BINS = 1 << 16
"""Bins of the streamed probability-integral transform: KS distances are exact to 1/PIT_BINS."""


# =========================================================================== densities
def mixtures_log_prob(mixtures: tuple[GaussianMixture, ...], x: FloatArray,
                      ) -> list[FloatArray]:
    """``[m.log_prob(x) for m in mixtures]`` (the reference's own densities)."""
    return [m.log_prob(x) for m in mixtures]


def mixture_log_prob(mixture: GaussianMixture, x: FloatArray) -> FloatArray:
    """``log p(x)`` of one single mixture (``GaussianMixture.log_prob``)."""
    return mixture.log_prob(x)


def mixture_sample_from_noise(mixture: GaussianMixture, component_uniforms: FloatArray,
                              normals: FloatArray, scale_factor: float = 1.0) -> FloatArray:
    """``GaussianMixture.sample_from_noise`` of the mixture with its scales times
    ``scale_factor`` (the mixture itself when it is 1)."""
    if scale_factor != 1.0:
        mixture = GaussianMixture(mixture.weights, mixture.means, mixture.scales * scale_factor,
                                  validate_args=False)
    return mixture.sample_from_noise(component_uniforms, normals)


def round_log_density(values: FloatArray, dtype: str) -> FloatArray:
    """Round log-densities to ``dtype`` and back to float64 (the low-precision mistake).

    ``"float16"``/``"float32"`` by ``astype`` (round to nearest even; below -65504 float16 gives
    -inf); ``"bfloat16"`` by round-to-nearest-even of the float32 bit pattern to its top 16 bits
    (float64 -> float32 -> bfloat16, as a framework does it); ``"float64"`` is the identity.
    """
    v = np.asarray(values, dtype=np.float64)
    if dtype == "float64":
        return v
    if dtype == "float32":
        return v.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return v.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        b = v.astype(np.float32).view(np.uint32)
        b = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
        return b.view(np.float32).astype(np.float64)
    raise ValueError(f"dtype: expected one of {ROUNDINGS}, got {dtype!r}")


# =========================================================================== token mistakes
@dataclass(frozen=True)
class TokenMistake:
    """The switches of the token sampler; the defaults are the exact batched sampler.

    Attributes:
        cap: residual proposals per row before giving up (None: until success, with the
            reference's raising safety cap ``DEFAULT_MAX_TRIALS``).
        fallback: what an unfinished row outputs: ``"zero" | "draft" | "fresh_draft"``.
        tau: the draft is sampled with scales × tau (scored at tau = 1).
        draft_mass: probability w that a row outputs its plain draft sample (flagged accepted).
        rounding: dtype the log-densities are rounded to before every ratio.
        residual_source: ``"target"`` (exact) or ``"draft"`` (proposals from q).
    """

    cap: int | None = None
    fallback: str = "zero"
    tau: float = 1.0
    draft_mass: float = 0.0
    rounding: str = "float64"
    residual_source: str = "target"

    def __post_init__(self) -> None:
        if self.cap is not None and (isinstance(self.cap, bool) or int(self.cap) != self.cap
                                     or self.cap < 1):
            raise ValueError(f"cap: expected a positive integer or None, got {self.cap!r}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback: expected one of {FALLBACKS}, got {self.fallback!r}")
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau: expected a positive finite number, got {self.tau!r}")
        if not 0.0 <= self.draft_mass <= 1.0:
            raise ValueError(f"w: expected a probability in [0, 1], got {self.draft_mass!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"dtype: expected one of {ROUNDINGS}, got {self.rounding!r}")
        if self.residual_source not in ("target", "draft"):
            raise ValueError("residual_source: expected 'target' or 'draft', got "
                             f"{self.residual_source!r}")


def run_token_mistake(case: Case, n: int, seed: int, mistake: TokenMistake) -> SpeculativeResult:
    """Speculative sampling of ``n`` tokens with ``mistake`` switched on (vectorised).

    Noise order as ``speculative_sample``: draft component uniforms, draft normals, acceptance
    uniforms, then residual rounds (first round 4 proposals per pending row, doubling, bounded
    by ``ROUND_ELEMENT_BUDGET``; first success in index order), then the fresh drafts of
    unfinished rows, then the ``draft_mass`` coin flips.
    """
    rng = np.random.default_rng(seed)
    q, p, d = case.draft, case.target, case.dim

    def score(values: FloatArray) -> tuple[FloatArray, FloatArray]:
        log_q, log_p = mixtures_log_prob((q, p), values)
        return (round_log_density(log_q, mistake.rounding),
                round_log_density(log_p, mistake.rounding))

    u_c, z, u_acc = rng.random(n), rng.standard_normal((n, d)), rng.random(n)
    x = mixture_sample_from_noise(q, u_c, z, mistake.tau)
    log_q, log_p = score(x)
    accepted = accept_from_uniforms(log_p - log_q, u_acc)
    rows = np.flatnonzero(~accepted)
    source = p if mistake.residual_source == "target" else q
    cap = mistake.cap if mistake.cap is not None else DEFAULT_MAX_TRIALS
    values = np.zeros((rows.size, d))
    trials = np.zeros(rows.size, dtype=np.int64)
    pending = np.arange(rows.size)
    used, k = 0, FIRST_ROUND_SIZE
    while pending.size and used < cap:
        k_round = int(min(k, cap - used, max(1, ROUND_ELEMENT_BUDGET // (pending.size * d))))
        m = pending.size
        comp_u, normals, accept_u = (rng.random((m, k_round)),
                                     rng.standard_normal((m, k_round, d)),
                                     rng.random((m, k_round)))
        y = mixture_sample_from_noise(source, comp_u, normals)
        lq, lp = score(y)
        success = accept_u < residual_acceptance_probability(lq, lp)
        done = success.any(axis=1)
        first = np.argmax(success, axis=1)
        values[pending[done]] = y[done, first[done]]
        trials[pending[done]] = used + first[done] + 1
        pending = pending[~done]
        used += k_round
        k *= 2
    if pending.size:
        if mistake.cap is None:
            raise ResidualBudgetExceeded(rows[pending], used)
        trials[pending] = used
        if mistake.fallback == "draft":
            values[pending] = x[rows[pending]]
        elif mistake.fallback == "fresh_draft":
            values[pending] = mixture_sample_from_noise(
                q, rng.random(pending.size), rng.standard_normal((pending.size, d)), mistake.tau)
    samples = x.copy()
    samples[rows] = values
    all_trials = np.zeros(n, dtype=np.int64)
    all_trials[rows] = trials
    if mistake.draft_mass > 0:
        leak = rng.random(n) < mistake.draft_mass
        samples[leak] = x[leak]
        accepted = accepted | leak
        all_trials[leak] = 0
    return SpeculativeResult(samples=samples, accepted=accepted, trials=all_trials)


def token_sampler(mistake: TokenMistake, name: str) -> Sampler:
    """Wrap ``run_token_mistake`` as a contract sampler with ``__name__`` and ``.mistake``."""

    def sample(case: Case, n: int, seed: int) -> SpeculativeResult:
        return run_token_mistake(case, n, seed, mistake)

    sample.__name__ = sample.__qualname__ = name
    sample.mistake = mistake  # type: ignore[attr-defined]
    return sample


def exact_token_sampler() -> Sampler:
    """The exact batched speculative sampler (every switch off): the family's zero point.

    Law: exactly the target; on the same seed, output identical to
    ``speculative_sample(case.draft, case.target, n, default_rng(seed), residual="batched")``.
    """
    return token_sampler(TokenMistake(), "exact_token_sampler")


def capped_residual(cap: int | None, fallback: str = "zero") -> Sampler:
    """Residual loop silently stopped after ``cap`` proposals; unfinished rows get a fallback.

    A rejected row (probability TV) stays unfinished with probability ``(1 - TV)^cap``, so a mass
    ``m = TV (1 - TV)^cap`` of the output is moved from the residual ``r = (p - q)^+ / TV`` to the
    fallback law: ``law = p + m (fallback - r)``. ``"zero"``: an atom of mass m at 0.0;
    ``"draft"``: the rejected drafts' law ``(q - p)^+ / TV``; ``"fresh_draft"``: q. The KS
    distance along ``a`` is ``m sup_t |F_fallback,a(t) - F_r,a(t)|`` (<= m). ``cap=None`` is exact.
    """
    mistake = TokenMistake(cap=cap, fallback=fallback)
    return token_sampler(mistake, f"capped_residual[cap={cap},fallback={fallback}]")


def draft_temperature(tau: float) -> Sampler:
    """The draft is sampled at temperature tau (scales × tau) but scored with its tau = 1 density.

    Output law ``q_tau min(1, p/q) + (1 - A_tau) r`` with ``A_tau = ∫ q_tau min(1, p/q)`` and the
    exact residual r: the accepted part is wider than ``min(p, q)`` by ``q_tau/q - 1 ≈
    (tau - 1)(|z|² - d)``, so the effect grows like ``(tau - 1)`` times the accepted mass and is
    larger in high dimension. ``tau = 1`` is exact.
    """
    return token_sampler(TokenMistake(tau=float(tau)), f"draft_temperature[tau={tau}]")


def mass_toward_draft(w: float) -> Sampler:
    """With probability w a row outputs its plain draft sample (flagged accepted).

    Law ``(1 - w) p + w q``: the KS distance along ``a`` is exactly
    ``w sup_t |F_q,a(t) - F_p,a(t)|`` (``mass_toward_draft_ks``) and the acceptance rate is
    ``(1 - w)(1 - TV) + w``, a deviation ``w TV``. ``w = 0`` is exact.
    """
    return token_sampler(TokenMistake(draft_mass=float(w)), f"mass_toward_draft[w={w}]")


def low_precision_log_density(dtype: str) -> Sampler:
    """log p and log q are rounded to ``dtype`` before the log-ratio, in the acceptance test and
    in the residual.

    Each log-density carries an error up to half a unit in the last place, ``2^-9 |log p|``
    (bfloat16) or ``2^-12 |log p|`` (float16), so the accept probability becomes
    ``min(1, p/q e^eps(x))`` and the residual ``∝ p (1 - q/p e^-eps'(y))^+``; eps is a sawtooth
    in x whose amplitude grows with ``|log p| ~ d``, so the effect is negligible at d = 1 in
    float16 and large at d = 64 in bfloat16. ``"float64"`` is exact.
    """
    return token_sampler(TokenMistake(rounding=dtype), f"low_precision_log_density[{dtype}]")


def residual_from_draft() -> Sampler:
    """Residual proposals drawn from q instead of p, accepted with ``max(0, 1 - q/p)``.

    The residual becomes ``∝ q (1 - q/p)^+ = q (p - q)^+ / p`` instead of ``(p - q)^+``: mass
    moves toward the region where q is large, inside ``{p > q}``. Law
    ``min(p, q) + TV r'``; the KS distance is at most TV (the residual's total mass).
    """
    return token_sampler(TokenMistake(residual_source="draft"), "residual_from_draft")


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


def _mc_tv(p: GaussianMixture, q: GaussianMixture, noise: tuple[FloatArray, ...]) -> float:
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
        return _mc_tv(target, _perturbed_draft(target, size, directions, log_scale, logits), noise)

    lo, hi = 0.0, 0.05
    while tv_of(hi) < tv_hint:
        lo, hi = hi, 2.0 * hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tv_of(mid) < tv_hint else (lo, mid)
    draft = _perturbed_draft(target, 0.5 * (lo + hi), directions, log_scale, logits)
    draft = GaussianMixture(draft.weights, draft.means, draft.scales)  # validated
    tv = tv_distance(target, draft, rng=np.random.default_rng(seed + 1)).value
    return Case(draft=draft, target=target, name=f"mixture-d{d}-K{K}-tv{tv:.4f}",
                tags=("mixture",))


def ar_case(seq_len: int = 6, dim: int = 2, groups: int = 4, perturbation: float = 0.4,
            seed: int = 11) -> ARCase:
    """A ``MixtureARModel`` target (K = 2, coupling 1.5), a draft perturbed by ``perturbation``,
    a MAR schedule; the defaults reproduce ``mutants.ar_case``."""
    rng = np.random.default_rng(seed)
    target = MixtureARModel.random(seq_len, dim, 2, rng, coupling=1.5)
    return ARCase(target.perturbed(perturbation, rng), target, mar_schedule(seq_len, groups, rng),
                  name=f"ar-L{seq_len}-d{dim}-G{groups}-pert{perturbation:g}")


# =========================================================================== AR family
def batched_conditionals(model: Any, tokens: FloatArray, known: np.ndarray,
                         positions: FloatArray) -> GaussianMixture:
    """``model.conditionals`` for m sequences at once: batch ``(m, len(positions))``.

    Vectorised for ``MixtureARModel`` (the same formulas as its ``conditionals``); any other
    ``ARModel`` is called row by row and stacked.
    """
    if isinstance(model, MixtureARModel):
        features = np.tanh(np.where(known[..., None], tokens, 0.0))              # (m, L, d)
        context = np.einsum("pl,mld->mpd", model.context_weights[positions], features)
        level = context.mean(axis=2)                                               # (m, P)
        k = np.arange(model.n_components)
        logits = model.logits[positions] + model.weight_coupling * level[..., None] * k
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        means = (model.base_means[positions]
                 + model.mean_coupling[None, None, :, None] * context[:, :, None, :])
        scales = model.base_scales[positions] * np.exp(
            model.scale_coupling * np.tanh(level))[..., None, None]
        return GaussianMixture(weights, means, scales, validate_args=False)
    laws = [model.conditionals(tokens[i], known[i], positions) for i in range(tokens.shape[0])]
    return GaussianMixture(np.stack([law.weights for law in laws]),
                           np.stack([law.means for law in laws]),
                           np.stack([law.scales for law in laws]), validate_args=False)


def _flat(law: GaussianMixture) -> GaussianMixture:
    m, p, k = law.weights.shape
    d = law.dim
    return GaussianMixture(law.weights.reshape(m * p, k), law.means.reshape(m * p, k, d),
                           law.scales.reshape(m * p, k, d), validate_args=False)


def run_ar_extra_groups(case: ARCase, n: int, seed: int, extra: int, gamma: int = 3,
                        ) -> FloatArray:
    """AR speculative decoding (bonus group on, no pre-fill) of ``n`` sequences, vectorised over
    the sequences that share the same progress; ``extra`` groups after the first rejected one
    are kept (``extra = 0`` is the exact algorithm of ``ar_speculative_decode``, in law).

    Each round every drafted group is verified (accept or exact batched residual against the
    target conditioned on the draft's earlier groups); a sequence whose first rejection is in
    drafted group j keeps groups ``0 .. min(j + extra, gamma - 1)`` and discards the rest.
    """
    rng = np.random.default_rng(seed)
    sched, draft, target = case.schedule, case.draft, case.target
    L, d, G = sched.seq_len, target.dim, sched.num_groups
    out = np.zeros((n, L, d))
    known = np.zeros((n, L), dtype=bool)
    progress = np.zeros(n, dtype=np.int64)
    while np.any(progress < G):
        for g0 in np.unique(progress[progress < G]):
            rows = np.flatnonzero(progress == g0)
            m, k = rows.size, int(min(gamma, G - g0))
            tokens, kn = out[rows], known[rows]
            dtok, dkn = tokens.copy(), kn.copy()
            draft_laws = []
            for j in range(k):
                pos = sched.positions(g0 + j)
                law = batched_conditionals(draft, dtok, dkn, pos)
                dtok[:, pos] = law.sample_from_noise(rng.random((m, pos.size)),
                                                     rng.standard_normal((m, pos.size, d)))
                dkn[:, pos] = True
                draft_laws.append(law)
            target_laws, scored = [], kn.copy()
            for j in range(min(k + 1, G - g0)):
                pos = sched.positions(g0 + j)
                target_laws.append(batched_conditionals(target, dtok, scored, pos))
                scored[:, pos] = True
            verified, rejected = [], np.zeros((m, k), dtype=bool)
            for j in range(k):
                pos = sched.positions(g0 + j)
                res = verify_draft_from_noise(
                    _flat(draft_laws[j]), _flat(target_laws[j]), dtok[:, pos].reshape(-1, d),
                    rng.random(m * pos.size), ResidualNoiseGenerator(rng, d), method="batched")
                verified.append(res.samples.reshape(m, pos.size, d))
                rejected[:, j] = ~res.accepted.reshape(m, pos.size).all(axis=1)
            any_rejected = rejected.any(axis=1)
            keep = np.where(any_rejected, np.minimum(np.argmax(rejected, axis=1) + 1 + extra, k), k)
            for j in range(k):
                pos = sched.positions(g0 + j)
                sel = keep > j
                out[np.ix_(rows[sel], pos)] = verified[j][sel]
                known[np.ix_(rows[sel], pos)] = True
            new_progress = g0 + keep
            bonus = ~any_rejected & (g0 + k < G)
            if bonus.any():
                pos = sched.positions(g0 + k)
                law = target_laws[k]
                sub = GaussianMixture(law.weights[bonus], law.means[bonus], law.scales[bonus],
                                      validate_args=False)
                b = int(bonus.sum())
                out[np.ix_(rows[bonus], pos)] = sub.sample_from_noise(
                    rng.random((b, pos.size)), rng.standard_normal((b, pos.size, d)))
                known[np.ix_(rows[bonus], pos)] = True
                new_progress = new_progress + bonus
            progress[rows] = new_progress
    return out


def ar_keeps_extra_groups(k: int, gamma: int = 3) -> Sampler:
    """After the first drafted group with a rejection, ``k`` more drafted groups are verified
    and kept (instead of discarding every later group); returns ``(n, L, d)``.

    The kept groups were drafted, and scored by the target, conditioned on draft tokens that the
    residual has just replaced: their accept/residual step corrects them toward
    ``p(. | draft prefix)``, not ``p(. | kept prefix)``, so the joint law is wrong wherever the
    conditionals depend on the replaced tokens (the Rosenblatt columns of those groups are not
    uniform). The effect grows with the rejection rate and the coupling; ``k = 0`` is exact.
    """
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")

    def sample(case: ARCase, n: int, seed: int) -> FloatArray:
        return run_ar_extra_groups(case, n, seed, int(k), gamma)

    sample.__name__ = sample.__qualname__ = f"ar_keeps_extra_groups[k={k},gamma={gamma}]"
    return sample


def ar_rosenblatt_batched(model: Any, schedule: Any, sequences: FloatArray) -> FloatArray:
    """``cspd_ref.ar.ar_rosenblatt`` vectorised over sequences: ``(n, L d)`` conditional CDFs in
    the same column order (groups in order, positions as listed, coordinates)."""
    x = np.asarray(sequences, dtype=np.float64)
    n = x.shape[0]
    known = np.zeros((n, schedule.seq_len), dtype=bool)
    cols = []
    for g in range(schedule.num_groups):
        pos = schedule.positions(g)
        law = batched_conditionals(model, x, known, pos)
        cols.append(law.rosenblatt(x[:, pos]).reshape(n, -1))
        known[:, pos] = True
    return np.concatenate(cols, axis=1)


# =========================================================================== effect sizes
def dkw_bound(n: int, level: float = DKW_LEVEL) -> float:
    """``sqrt(ln(2/level) / (2n))``: the empirical CDF of n iid draws is within this sup
    distance of the true CDF with probability >= 1 - level (DKW, Massart's constant)."""
    return math.sqrt(math.log(2.0 / level) / (2.0 * n))


@dataclass(frozen=True)
class EffectSize:
    """How far a sampler's law is from the target where the battery looks.

    Attributes:
        ks: the largest KS distance between the sample's projection on a case direction (token
            cases) or a Rosenblatt column (AR cases) and the exact target CDF.
        ks_direction: the label of that direction.
        ks_by_direction: every direction's KS distance.
        ks_noise: per-direction 99 % DKW bound ``sqrt(ln(200) / (2 n_ref))``: each entry of
            ``ks_by_direction`` is within it of its true value with probability >= 0.99
            (plus the 1/PIT_BINS binning resolution).
        ks_noise_simultaneous: the same bound for all directions at once (Bonferroni), hence
            for ``ks`` as an estimate of the largest true distance.
        atom_mass: most repeated row count / n_ref (0 when no row repeats).
        atom_value: that row (None when no row repeats).
        acceptance_rate: mean of ``.accepted`` (None if the sampler does not expose it).
        acceptance_deviation: ``acceptance_rate - (1 - TV)``.
        acceptance_noise: a 99 % bound for the deviation: Hoeffding on the rate plus 2.58 TV
            standard errors (TV is Monte Carlo for mixtures in d > 1).
        tv, tv_stderr: ``cspd_ref.theory.tv_distance(target, draft)``.
        n_ref, seed: the sample size and seed.
    """

    ks: float
    ks_direction: str
    ks_by_direction: dict[str, float]
    ks_noise: float
    ks_noise_simultaneous: float
    atom_mass: float
    atom_value: FloatArray | None
    acceptance_rate: float | None
    acceptance_deviation: float | None
    acceptance_noise: float | None
    tv: float | None
    tv_stderr: float | None
    n_ref: int
    seed: int = field(default=0)


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index`` of an ``effect_size`` sample: ``SeedSequence([seed, index])``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class _AtomCounter:
    """Counts repeated rows across chunks (candidates: repeated values of one fixed projection)."""

    def __init__(self, dim: int) -> None:
        self.probe = np.random.default_rng(0xA70).standard_normal(dim)
        self.counts: dict[bytes, int] = {}
        self.rows: dict[bytes, FloatArray] = {}

    def add(self, samples: FloatArray) -> None:
        flat = samples.reshape(samples.shape[0], -1)
        values, counts = np.unique(flat @ self.probe, return_counts=True)
        top = np.argsort(-counts, kind="stable")[:5]
        for v in values[top[counts[top] > 1]]:
            rows, row_counts = np.unique(flat[flat @ self.probe == v], axis=0, return_counts=True)
            for row, c in zip(rows, row_counts, strict=True):
                key = row.tobytes()
                self.counts[key] = self.counts.get(key, 0) + int(c)
                self.rows[key] = row

    def largest(self) -> tuple[int, FloatArray | None]:
        if not self.counts:
            return 0, None
        key = max(self.counts, key=self.counts.__getitem__)
        return self.counts[key], self.rows[key]


def _ks_from_counts(counts: FloatArray, n: int) -> float:
    """sup_t |F_n - F| from the histogram of PIT values on PIT_BINS equal bins (edge values)."""
    cum = np.concatenate([[0.0], np.cumsum(counts)]) / n
    return float(np.max(np.abs(cum - np.linspace(0.0, 1.0, counts.size + 1))))


def _as_samples(output: Any) -> tuple[FloatArray, np.ndarray | None]:
    samples = getattr(output, "samples", output)
    accepted = getattr(output, "accepted", None)
    return np.asarray(samples, dtype=np.float64), (None if accepted is None
                                                   else np.asarray(accepted, dtype=bool))


def effect_size(sampler: Sampler, case: Any, *, n_ref: int = 4_000_000, seed: int = 8,
                chunk: int | None = None) -> EffectSize:
    """Measure a sampler's distance from the target where the battery looks, from ``n_ref`` rows.

    Token ``Case``: KS distance between the output projected on each ``case_directions(target,
    draft)`` vector and the exact projected target CDF; ``ARCase``: KS distance of each column
    of the target's Rosenblatt transform from U(0, 1). Both from a histogram of the
    probability-integral transform (``PIT_BINS`` bins, exact to 1/PIT_BINS). Also the largest
    point mass and, when the output has ``.accepted``, the acceptance deviation from
    ``1 - TV``.

    The sample is drawn in chunks (``chunk`` rows, default from the dimension) with seeds
    ``chunk_seed(seed, i)``: iid chunks of one sampler make one iid sample of size ``n_ref``.
    The precision: ``ks_noise = sqrt(ln(2/0.01) / (2 n_ref))`` per direction (DKW, 99 %).
    """
    is_ar = isinstance(case, ARCase)
    if is_ar:
        directions: list[tuple[str, FloatArray | None]] = [
            (f"column[{j}]", None) for j in range(case.seq_len * case.dim)]
        dim = case.seq_len * case.dim
    else:
        directions = [(dr.label, dr.vector) for dr in case_directions(case.target, case.draft)]
        dim = case.dim
    if chunk is None:
        chunk = int(max(20_000, min(500_000, 2_000_000 // max(len(directions), dim))))
        if is_ar:
            chunk = min(chunk, 50_000)
    counts = np.zeros((len(directions), PIT_BINS))
    projected = ([case.target.project(v) for _, v in directions] if not is_ar else [])
    atoms = _AtomCounter(dim)
    accepted_total, accepted_seen, drawn, index = 0, False, 0, 0
    while drawn < n_ref:
        size = min(chunk, n_ref - drawn)
        samples, accepted = _as_samples(sampler(case, size, chunk_seed(seed, index)))
        if accepted is not None:
            accepted_total += int(accepted.sum())
            accepted_seen = True
        if is_ar:
            pit = ar_rosenblatt_batched(case.target, case.schedule, samples).T
        else:
            proj = samples @ np.stack([v for _, v in directions if v is not None]).T
            pit = np.stack([law.cdf(proj[:, j]) for j, law in enumerate(projected)])
        bins = np.minimum((pit * PIT_BINS).astype(np.int64), PIT_BINS - 1)
        for j in range(len(directions)):
            counts[j] += np.bincount(bins[j], minlength=PIT_BINS)
        atoms.add(samples)
        drawn += size
        index += 1
    ks = {label: _ks_from_counts(counts[j], n_ref) for j, (label, _) in enumerate(directions)}
    top = max(ks, key=ks.__getitem__)
    atom_count, atom_value = atoms.largest()
    rate = deviation = acc_noise = tv = tv_se = None
    if accepted_seen and not is_ar:
        est = tv_distance(case.target, case.draft, rng=np.random.default_rng(seed))
        tv, tv_se = est.value, est.stderr
        rate = accepted_total / n_ref
        deviation = rate - (1.0 - tv)
        acc_noise = dkw_bound(n_ref) + 2.576 * tv_se
    return EffectSize(ks=ks[top], ks_direction=top, ks_by_direction=ks, ks_noise=dkw_bound(n_ref),
                      ks_noise_simultaneous=dkw_bound(n_ref, DKW_LEVEL / len(directions)),
                      atom_mass=atom_count / n_ref, atom_value=atom_value,
                      acceptance_rate=rate, acceptance_deviation=deviation,
                      acceptance_noise=acc_noise, tv=tv, tv_stderr=tv_se, n_ref=n_ref, seed=seed)


# =========================================================================== closed forms
def capped_zero_atom_mass(tv: float, cap: int) -> float:
    """Atom at 0.0 of ``capped_residual(cap, "zero")``: P(reject) P(cap failures) =
    ``TV (1 - TV)^cap``."""
    return tv * (1.0 - tv) ** cap


def _sup_cdf_difference(f: GaussianMixture, g: GaussianMixture, points: int = 200_001) -> float:
    """``sup_t |F_f(t) - F_g(t)|`` for 1-D mixtures, on a grid then refined around the peak."""
    centres = np.concatenate([f.means[:, 0], g.means[:, 0]])
    widths = np.concatenate([f.scales[:, 0], g.scales[:, 0]])
    t = np.linspace(np.min(centres - 10 * widths), np.max(centres + 10 * widths), points)
    diff = np.abs(f.cdf(t) - g.cdf(t))
    i = int(np.argmax(diff))
    fine = np.linspace(t[max(i - 1, 0)], t[min(i + 1, points - 1)], 2001)
    return float(max(diff[i], np.max(np.abs(f.cdf(fine) - g.cdf(fine)))))


def mass_toward_draft_ks(case: Case, w: float) -> tuple[float, str]:
    """Exact KS effect of ``mass_toward_draft(w)``: ``w max_a sup_t |F_q,a - F_p,a|`` over the
    ``case_directions``; returns ``(distance, direction label)``."""
    best, label = 0.0, ""
    for dr in case_directions(case.target, case.draft):
        value = w * _sup_cdf_difference(case.draft.project(dr.vector),
                                        case.target.project(dr.vector))
        if value > best:
            best, label = value, dr.label
    return best, label


@dataclass(frozen=True)
class Law1D:
    """The exact output law of a token mistake on a 1-D case, by quadrature.

    Attributes:
        grid: ``(m,)`` increasing points (0.0 included).
        cdf: the output CDF at ``grid`` (the atom at 0, if any, included at and after 0).
        target_cdf: the target's CDF at ``grid``.
        atom: mass of the atom at 0.0 (zero fallback).
        acceptance: probability that a row is flagged accepted.
    """

    grid: FloatArray
    cdf: FloatArray
    target_cdf: FloatArray
    atom: float
    acceptance: float

    @property
    def ks(self) -> float:
        """``sup_t |F_out(t) - F_p(t)|``, including the left limit at the atom."""
        gap = float(np.max(np.abs(self.cdf - self.target_cdf)))
        if self.atom:
            i = int(np.searchsorted(self.grid, 0.0))
            gap = max(gap, abs(self.cdf[i] - self.atom - self.target_cdf[i]))
        return gap


def _cumtrapz(values: FloatArray, grid: FloatArray) -> FloatArray:
    return np.concatenate([[0.0], np.cumsum(0.5 * (values[1:] + values[:-1]) * np.diff(grid))])


def token_law_1d(mistake: TokenMistake, case: Case, points: int = 400_001) -> Law1D:
    """The exact law of ``run_token_mistake(case, ., ., mistake)`` for a 1-D case.

    With the draft's sampling law ``q_s`` (scales × tau), accept probability
    ``alpha = min(1, exp(R(log p) - R(log q)))`` (R the rounding), residual proposals from
    ``pi`` (p or q) accepted with ``beta = (1 - exp(R(log q) - R(log p)))^+``,
    ``A = ∫ q_s alpha``, ``B = ∫ pi beta`` and ``c`` the cap:

    ``f = q_s alpha + (1 - A)(1 - (1 - B)^c) pi beta / B + fallback``, the fallback mass
    ``(1 - A)(1 - B)^c`` spread as an atom at 0, as ``q_s (1 - alpha) (1 - B)^c`` (the rejected
    drafts kept) or as ``q_s``; then ``(1 - w) f + w q_s`` for ``draft_mass = w``. Densities are
    integrated by the trapezoid rule on ``points`` points over all components ± 14 scales.
    """
    if case.dim != 1:
        raise ValueError(f"case: token_law_1d needs d = 1, got d = {case.dim}")
    q, p, tau = case.draft, case.target, mistake.tau
    q_s = GaussianMixture(q.weights, q.means, q.scales * tau, validate_args=False)
    centres = np.concatenate([p.means[:, 0], q.means[:, 0]])
    widths = np.concatenate([p.scales[:, 0], q_s.scales[:, 0]])
    grid = np.union1d(np.linspace(min(np.min(centres - 14 * widths), -1.0),
                                  max(np.max(centres + 14 * widths), 1.0), points), [0.0])
    x = grid[:, None]
    lq_raw, lp_raw = mixture_log_prob(q, x), mixture_log_prob(p, x)
    lq = round_log_density(lq_raw, mistake.rounding)
    lp = round_log_density(lp_raw, mistake.rounding)
    dens_qs = np.exp(mixture_log_prob(q_s, x))
    alpha = np.exp(np.minimum(0.0, lp - lq))
    beta = residual_acceptance_probability(lq, lp)
    proposal = np.exp(lp_raw if mistake.residual_source == "target" else lq_raw)
    accept_density = dens_qs * alpha
    A = float(_cumtrapz(accept_density, grid)[-1])
    residual_density = proposal * beta
    B = float(_cumtrapz(residual_density, grid)[-1])
    miss = 0.0 if mistake.cap is None else (1.0 - B) ** mistake.cap
    density = accept_density + (1.0 - A) * (1.0 - miss) * residual_density / B
    atom = 0.0
    if mistake.fallback == "zero":
        atom = (1.0 - A) * miss
    elif mistake.fallback == "draft":
        density = density + dens_qs * (1.0 - alpha) * miss
    else:
        density = density + (1.0 - A) * miss * dens_qs
    w = mistake.draft_mass
    cdf = (1.0 - w) * (_cumtrapz(density, grid) + atom * (grid >= 0.0)) + w * q_s.cdf(grid)
    return Law1D(grid=grid, cdf=cdf, target_cdf=p.cdf(grid), atom=(1.0 - w) * atom,
                 acceptance=(1.0 - w) * A + w)


def closed_form_ks_1d(sampler: Sampler, case: Case) -> float:
    """Exact KS distance of a token family member on a 1-D case (``token_law_1d(...).ks``)."""
    return token_law_1d(sampler.mistake, case).ks  # type: ignore[attr-defined]


def closed_forms(sampler: Sampler, case: Any) -> tuple[float | None, float | None]:
    """``(KS distance, atom mass)`` where known exactly, else None in that slot.

    KS: any token family in d = 1 (``token_law_1d``), ``mass_toward_draft`` in any d
    (``mass_toward_draft_ks``), ``single_axis_shift`` (``2 Phi(shift/2) - 1``). Atom: a
    zero-fallback cap in any d, ``TV (1 - TV)^cap`` (TV from ``tv_distance``: exact for
    equal-scale Gaussians and in d = 1, Monte Carlo with ~1e-3 relative error otherwise).
    """
    if hasattr(sampler, "shift"):
        return math.erf(sampler.shift / (2.0 * math.sqrt(2.0))), None
    mistake = getattr(sampler, "mistake", None)
    if mistake is None or isinstance(case, ARCase):
        return None, None
    ks: float | None = None
    atom: float | None = None
    if case.dim == 1:
        law = token_law_1d(mistake, case)
        ks, atom = law.ks, law.atom
    elif mistake == TokenMistake(draft_mass=mistake.draft_mass):
        ks = mass_toward_draft_ks(case, mistake.draft_mass)[0]
    if mistake.cap is not None and mistake == TokenMistake(cap=mistake.cap, fallback="zero"):
        tv = tv_distance(case.target, case.draft, rng=np.random.default_rng(0)).value
        atom = capped_zero_atom_mass(tv, mistake.cap)
    return ks, atom


# =========================================================================== grid and edge
CaseArgs = tuple[str, dict[str, Any]]


def build_case(args: CaseArgs) -> Any:
    """Build a case from ``(builder, kwargs)``: ``"gaussian"``, ``"mixture"``, ``"ar"`` or
    ``"standard_normal"`` (``gaussian_case``, ``mixture_case``, ``ar_case``,
    ``standard_normal_case``)."""
    builders: dict[str, Callable[..., Any]] = {
        "gaussian": gaussian_case, "mixture": mixture_case, "ar": ar_case,
        "standard_normal": standard_normal_case}
    name, kwargs = args
    return builders[name](**kwargs)


FAMILIES: dict[str, Callable[..., Sampler]] = {
    "capped_residual": lambda param: capped_residual(*param),
    "draft_temperature": draft_temperature,
    "mass_toward_draft": mass_toward_draft,
    "low_precision_log_density": low_precision_log_density,
    "residual_from_draft": lambda _param: residual_from_draft(),
    "ar_keeps_extra_groups": ar_keeps_extra_groups,
    "single_axis_shift": single_axis_shift_sampler,
}
"""Family name -> factory of one parameter (``capped_residual`` takes ``(cap, fallback)``)."""


def build_sampler(family: str, parameter: Any) -> Sampler:
    """The sampler of ``family`` at ``parameter`` (see ``FAMILIES``)."""
    return FAMILIES[family](parameter)


class GridPoint(NamedTuple):
    """``(family name, parameter, case builder args)``: one point of a power curve."""

    family: str
    parameter: Any
    case_args: CaseArgs

    def sampler(self) -> Sampler:
        """The family member."""
        return build_sampler(self.family, self.parameter)

    def case(self) -> Any:
        """The case."""
        return build_case(self.case_args)


def _g(d: int, tv: float) -> CaseArgs:
    return ("gaussian", {"d": d, "tv": tv})


def _m(d: int, K: int, tv: float) -> CaseArgs:
    return ("mixture", {"d": d, "K": K, "tv_hint": tv})


FAMILY_GRID: list[GridPoint] = [
    # atom TV (1 - TV)^cap at TV = 0.3: 5.0e-2, 8.5e-3, 2.4e-4, 1.9e-7, 1e-16
    *[GridPoint("capped_residual", (cap, "zero"), _g(1, 0.3)) for cap in (5, 10, 20, 40, 100)],
    *[GridPoint("capped_residual", (cap, "zero"), _m(16, 5, 0.1)) for cap in (5, 20, 40, 100)],
    *[GridPoint("capped_residual", (cap, "draft"), _m(16, 5, 0.1)) for cap in (5, 10, 20, 40, 100)],
    *[GridPoint("capped_residual", (cap, "fresh_draft"), _g(64, 0.05))
      for cap in (5, 20, 50, 100)],
    *[GridPoint("draft_temperature", tau, _g(1, 0.05)) for tau in (1.2, 1.1, 1.05, 1.02)],
    *[GridPoint("draft_temperature", tau, _m(16, 5, 0.1)) for tau in (1.2, 1.1, 1.05, 1.02, 1.01)],
    *[GridPoint("mass_toward_draft", w, _g(64, 0.3)) for w in (0.2, 0.1, 0.05, 0.02, 0.01, 0.005)],
    *[GridPoint("mass_toward_draft", w, _m(16, 5, 0.1)) for w in (0.2, 0.1, 0.05, 0.02, 0.01)],
    *[GridPoint("low_precision_log_density", dt, case)
      for dt in ("bfloat16", "float16")
      for case in (_g(1, 0.05), _m(16, 5, 0.1), _g(64, 0.005), _g(64, 0.3))],
    *[GridPoint("residual_from_draft", None, _g(1, tv)) for tv in (0.3, 0.1, 0.05, 0.02, 0.005)],
    *[GridPoint("residual_from_draft", None, _m(d, 5, 0.1)) for d in (1, 16)],
    *[GridPoint("ar_keeps_extra_groups", k, ("ar", {"perturbation": pert}))
      for k in (1, 2) for pert in (0.4, 0.2, 0.1, 0.05, 0.02, 0.01)],
    *[GridPoint("single_axis_shift", shift, ("standard_normal", {"d": 16}))
      for shift in (0.15, 0.05, 0.02, 0.005)],
]
"""Points from clearly detectable to undetectable at n = 1e6, for power curves."""


EDGE_N_REF = 4_000_000
EDGE_SEED = 8

EDGE_SPECS: tuple[GridPoint, ...] = (
    GridPoint("capped_residual", (10, "zero"), _g(1, 0.3)),
    GridPoint("capped_residual", (30, "zero"), _m(16, 5, 0.1)),
    GridPoint("capped_residual", (15, "draft"), _m(16, 5, 0.1)),
    GridPoint("capped_residual", (25, "fresh_draft"), _g(64, 0.05)),
    GridPoint("draft_temperature", 1.04, _g(1, 0.3)),
    GridPoint("draft_temperature", 1.05, _m(16, 5, 0.1)),
    GridPoint("draft_temperature", 1.04, _g(64, 0.005)),
    GridPoint("mass_toward_draft", 0.04, _g(64, 0.3)),
    GridPoint("mass_toward_draft", 0.2, _g(16, 0.05)),
    GridPoint("low_precision_log_density", "bfloat16", _g(64, 0.3)),
    GridPoint("residual_from_draft", None, _m(1, 3, 0.1)),
)
"""The edge members' (family, parameter, case); ``single_axis_shift(16, 0.15)`` comes last."""


def _recorded(ks: float, direction: str, *, atom: float, acceptance: float | None,
              closed_ks: float | None, closed_atom: float | None) -> RecordedEffect:
    return RecordedEffect(ks=ks, ks_direction=direction, ks_noise=dkw_bound(EDGE_N_REF),
                          atom_mass=atom, acceptance_deviation=acceptance,
                          closed_form_ks=closed_ks, closed_form_atom=closed_atom,
                          n_ref=EDGE_N_REF, seed=EDGE_SEED)


EDGE_RECORDED: tuple[RecordedEffect, ...] = (
    # capped_residual(10, zero), gaussian d1 tv0.3
    _recorded(0.00878481, "axis[0]", atom=0.0085085, acceptance=0.00026125,
              closed_ks=0.00847426, closed_atom=0.00847426),
    # capped_residual(30, zero), mixture d16 K5 tv0.1
    _recorded(0.00349103, "components[1,1]", atom=0.00414875, acceptance=-0.000143922,
              closed_ks=None, closed_atom=0.00416622),
    # capped_residual(15, draft), mixture d16 K5 tv0.1
    _recorded(0.00817635, "components[1,1]", atom=0.0, acceptance=-0.000143922,
              closed_ks=None, closed_atom=None),
    # capped_residual(25, fresh_draft), gaussian d64 tv0.05
    _recorded(0.00836857, "mean_difference", atom=0.0, acceptance=-0.00022525,
              closed_ks=None, closed_atom=None),
    # draft_temperature 1.04, gaussian d1 tv0.3
    _recorded(0.0117923, "axis[0]", atom=0.0, acceptance=-0.002804,
              closed_ks=0.0120865, closed_atom=0.0),
    # draft_temperature 1.05, mixture d16 K5 tv0.1
    _recorded(0.00942143, "axis[6]", atom=0.0, acceptance=-0.00294642,
              closed_ks=None, closed_atom=None),
    # draft_temperature 1.04, gaussian d64 tv0.005
    _recorded(0.0100231, "axis[47]", atom=0.0, acceptance=-0.0002515,
              closed_ks=None, closed_atom=None),
    # mass_toward_draft 0.04, gaussian d64 tv0.3
    _recorded(0.011658, "mean_difference", atom=0.0, acceptance=0.011483,
              closed_ks=0.012, closed_atom=None),
    # mass_toward_draft 0.2, gaussian d16 tv0.05
    _recorded(0.0101136, "mean_difference", atom=0.0, acceptance=0.009998,
              closed_ks=0.01, closed_atom=None),
    # low_precision_log_density bfloat16, gaussian d64 tv0.3
    _recorded(0.00693079, "mean_difference", atom=0.0, acceptance=0.0067985,
              closed_ks=None, closed_atom=None),
    # residual_from_draft, mixture d1 K3 tv0.1
    _recorded(0.0117669, "axis[0]", atom=0.0, acceptance=0.000178533,
              closed_ks=0.0114781, closed_atom=0.0),
)
"""``measure_edge_member(spec)`` for each of ``EDGE_SPECS`` (n_ref = EDGE_N_REF,
seed = EDGE_SEED), recorded by ``python -m property_tests.mutant_families``."""


def measure_edge_member(spec: GridPoint, *, n_ref: int = EDGE_N_REF,
                        seed: int = EDGE_SEED) -> RecordedEffect:
    """Measure one member with ``effect_size`` and its ``closed_forms``."""
    sampler, case = spec.sampler(), spec.case()
    e = effect_size(sampler, case, n_ref=n_ref, seed=seed)
    ks_exact, atom_exact = closed_forms(sampler, case)
    return RecordedEffect(ks=e.ks, ks_direction=e.ks_direction, ks_noise=e.ks_noise,
                          atom_mass=e.atom_mass, acceptance_deviation=e.acceptance_deviation,
                          closed_form_ks=ks_exact, closed_form_atom=atom_exact,
                          n_ref=n_ref, seed=seed)


def edge_members() -> list[Member]:
    """Members at the edge of detectability at n ≈ 1e6: KS distance 0.006–0.02 along a case
    direction, or an atom of 0.1–1 %, on d = 1, 16, 64 and TV 0.005–0.3, each with its effect
    measured by ``effect_size`` (``n_ref = EDGE_N_REF``, ``seed = EDGE_SEED``, noise bound
    ``dkw_bound(EDGE_N_REF)`` = 8.1e-4) recorded next to it; plus the single-axis shift 0.15 in
    d = 16 (KS 0.0598 along its axis, ~0.015 along a random direction)."""
    members = [Member(spec.family, spec.parameter, spec.sampler(), spec.case(), effect)
               for spec, effect in zip(EDGE_SPECS, EDGE_RECORDED, strict=True)]
    return [*members, single_axis_shift(16, 0.15)]


def _record_edge_members(indices: list[int]) -> None:
    for i in indices:
        effect = measure_edge_member(EDGE_SPECS[i])
        print(f"    {effect!r},  # {EDGE_SPECS[i].family} {EDGE_SPECS[i].parameter}", flush=True)


if __name__ == "__main__":
    import sys

    _record_edge_members([int(a) for a in sys.argv[1:]] or list(range(len(EDGE_SPECS))))
