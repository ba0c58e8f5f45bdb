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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cspd_ref.cases import ARCase, Case
from cspd_ref.distributions import GaussianMixture
from cspd_ref.mutants.ar_families import ar_rosenblatt_batched
from cspd_ref.mutants.edge import (
    DKW_LEVEL,
    EDGE_N_REF,
    EDGE_SEED,
    EDGE_SPECS,
    GridPoint,
    dkw_bound,
)
from cspd_ref.mutants.family_cases import RecordedEffect
from cspd_ref.mutants.token_families import TokenMistake, mixture_log_prob, round_log_density
from cspd_ref.speculative import (
    residual_acceptance_probability,
)
from cspd_ref.stats.directions import case_directions
from cspd_ref.theory import tv_distance

FloatArray = np.ndarray
Sampler = Callable[[Any, int, int], Any]

PIT_BINS = 1 << 16
"""Bins of the streamed probability-integral transform: KS distances are exact to 1/PIT_BINS."""


# =========================================================================== effect sizes

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
        tv, tv_stderr: ``cspd_ref.theory.tv_distance(draft, target)``.
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

    Token ``Case``: KS distance between the output projected on each ``case_directions(draft,
    target)`` vector and the exact projected target CDF; ``ARCase``: KS distance of each column
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
        directions = [(dr.label, dr.vector) for dr in case_directions(case.draft, case.target)]
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
        est = tv_distance(case.draft, case.target, rng=np.random.default_rng(seed))
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
    for dr in case_directions(case.draft, case.target):
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
        tv = tv_distance(case.draft, case.target, rng=np.random.default_rng(0)).value
        atom = capped_zero_atom_mass(tv, mistake.cap)
    return ks, atom

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


def _record_edge_members(indices: list[int]) -> None:
    for i in indices:
        effect = measure_edge_member(EDGE_SPECS[i])
        print(f"    {effect!r},  # {EDGE_SPECS[i].family} {EDGE_SPECS[i].parameter}", flush=True)


if __name__ == "__main__":
    import sys

    _record_edge_members([int(a) for a in sys.argv[1:]] or list(range(len(EDGE_SPECS))))
