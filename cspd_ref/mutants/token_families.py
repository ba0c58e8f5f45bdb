"""Token-sampler mistakes whose size can be dialled down to the edge of detectability.

Each factory returns a sampler ``sampler(case, n, seed) -> SpeculativeResult`` seeded only from
``np.random.default_rng(seed)`` and vectorised over rows. Every one is the exact batched
speculative sampler (same noise order as ``cspd_ref.speculative``: draft component uniforms
``(n,)``, draft normals ``(n, d)``, acceptance uniforms ``(n,)``, then residual rounds as
``ResidualNoiseGenerator`` draws them) with one switch turned (``TokenMistake``); at its identity
setting it returns the same output as ``speculative_sample(..., residual="batched")`` on the
same seed.

* ``capped_residual(cap, fallback)``: the residual loop stops after ``cap`` proposals and the
  unfinished rows get ``"zero"`` (0.0), ``"draft"`` (the rejected draft) or ``"fresh_draft"``.
* ``draft_temperature(tau)``: draft sampled with scales x ``tau``, scored with its tau = 1
  density.
* ``mass_toward_draft(w)``: a fraction ``w`` of rows output a plain draft sample.
* ``low_precision_log_density(dtype)``: log p and log q rounded to bfloat16/float16 before the
  ratio.
* ``residual_from_draft()``: residual proposals drawn from q instead of p.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cspd_ref.cases import Case
from cspd_ref.distributions import GaussianMixture
from cspd_ref.speculative import (
    DEFAULT_MAX_TRIALS,
    FIRST_ROUND_SIZE,
    ROUND_ELEMENT_BUDGET,
    ResidualBudgetExceeded,
    SpeculativeResult,
    accept_from_uniforms,
    residual_acceptance_probability,
)

FloatArray = np.ndarray
Sampler = Callable[[Any, int, int], Any]


FALLBACKS: tuple[str, ...] = ("zero", "draft", "fresh_draft")
ROUNDINGS: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")

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
