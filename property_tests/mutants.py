"""The mutant catalog: known-bad samplers the battery must flag (SPEC §3, §5).

Each mutant is the reference algorithm with one deliberate, realistic mistake, written out in
full so a reader sees exactly what is wrong. ``MUTANTS`` pairs each with a case on which the
mistake changes the output law (some mistakes are harmless on special cases, e.g. unnormalised
weights with K = 1). ``test_mutants.py`` asserts that ``verify`` flags every one; the proofs of
why three of them are not exact are in ``proofs/test_nonexact_variants.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cspd_ref import GaussianMixture
from cspd_ref.ar import MixtureARModel, mar_schedule
from cspd_ref.cases import ARCase, Case, DiffusionCase, demo_case
from cspd_ref.diffusion import LinearGaussianChain, aligned_last_steps
from cspd_ref.distributions import DiagGaussian
from cspd_ref.speculative import (
    ResidualNoiseGenerator,
    SpeculativeResult,
    accept_from_uniforms,
    log_acceptance_ratio,
    reflection_map,
    residual_acceptance_probability,
    residual_sample_batched,
    verify_draft_from_noise,
)

FloatArray = np.ndarray


@dataclass(frozen=True)
class Mutant:
    """A known-bad sampler and a case on which its law differs from the target's."""

    name: str
    mistake: str
    sampler: Callable[[Any, int, int], Any]
    case: Callable[[], Any]
    n: int | None = None
    """Sample size when the default plan is not enough for near-certain detection."""


# --------------------------------------------------------------------------- shared pieces
def draw_draft(case: Case, n: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray,
                                                                       FloatArray, FloatArray]:
    """The reference's first draws: component uniforms, normals, drafts, accept uniforms."""
    u_c = rng.random(n)
    z = rng.standard_normal((n, case.dim))
    x = case.draft.sample_from_noise(u_c, z)
    return u_c, z, x, rng.random(n)


def draft_and_correct_test(case: Case, n: int, seed: int,
                           ) -> tuple[np.random.Generator, FloatArray, FloatArray, FloatArray,
                                      np.ndarray]:
    """The reference's draft and (correct) acceptance test: ``(rng, u_c, z, x, accepted)``,
    for the mutants whose mistake comes later."""
    rng = np.random.default_rng(seed)
    u_c, z, x, u = draw_draft(case, n, rng)
    accepted = accept_from_uniforms(log_acceptance_ratio(case.draft, case.target, x), u)
    return rng, u_c, z, x, accepted


def correct_residual(case: Case, rows: np.ndarray, rng: np.random.Generator,
                     ) -> tuple[FloatArray, np.ndarray]:
    """The correct batched residual for ``rows`` (used by mutants wrong elsewhere)."""
    return residual_sample_batched(case.draft, case.target, rows.size,
                                   ResidualNoiseGenerator(rng, case.dim))


def finish(x: FloatArray, accepted: np.ndarray, residual_values: FloatArray,
           trials: np.ndarray) -> SpeculativeResult:
    """Assemble a result: accepted drafts kept, rejected rows replaced."""
    samples = x.copy()
    full_trials = np.zeros(x.shape[0], dtype=np.int64)
    rejected = np.flatnonzero(~accepted)
    samples[rejected] = residual_values
    full_trials[rejected] = trials
    return SpeculativeResult(samples=samples, accepted=accepted, trials=full_trials)


def capped_residual(case: Case, rows: np.ndarray, rng: np.random.Generator, cap: int,
                    fallback: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """Residual loop that gives up after ``cap`` proposals and returns ``fallback`` rows."""
    values = fallback.copy()
    trials = np.full(rows.size, cap, dtype=np.int64)
    pending = np.ones(rows.size, dtype=bool)
    for j in range(cap):
        y = case.target.sample(rows.size, rng)
        u = rng.random(rows.size)
        ok = pending & (u < residual_acceptance_probability(case.draft.log_prob(y),
                                                            case.target.log_prob(y)))
        values[ok] = y[ok]
        trials[ok] = j + 1
        pending &= ~ok
    return values, trials


# --------------------------------------------------------------------------- token mutants
def inner_temperature(case: Case, n: int, seed: int, temperature: float = 2.0) -> Any:
    """Accept iff ``log u < (log p - log q) / T_in`` with ``T_in = 2``."""
    rng = np.random.default_rng(seed)
    _, _, x, u = draw_draft(case, n, rng)
    accepted = accept_from_uniforms(log_acceptance_ratio(case.draft, case.target, x) / temperature,
                                    u)
    values, trials = correct_residual(case, np.flatnonzero(~accepted), rng)
    return finish(x, accepted, values, trials)


def ratio_direction_flipped(case: Case, n: int, seed: int) -> Any:
    """Accept iff ``log u < log q(x) - log p(x)`` (ratio upside down)."""
    rng = np.random.default_rng(seed)
    _, _, x, u = draw_draft(case, n, rng)
    accepted = accept_from_uniforms(-log_acceptance_ratio(case.draft, case.target, x), u)
    values, trials = correct_residual(case, np.flatnonzero(~accepted), rng)
    return finish(x, accepted, values, trials)


def capped_residual_with_fallback(case: Case, n: int, seed: int) -> Any:
    """Residual loop capped at 2 proposals; unfinished rows silently get 0.0."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    values, trials = capped_residual(case, rows, rng, 2, np.zeros((rows.size, case.dim)))
    return finish(x, accepted, values, trials)


def capped_residual_keeps_draft(case: Case, n: int, seed: int) -> Any:
    """Residual loop capped at 2 proposals; unfinished rows keep the rejected draft."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    values, trials = capped_residual(case, rows, rng, 2, x[rows])
    return finish(x, accepted, values, trials)


def residual_reuses_draft_noise(case: Case, n: int, seed: int) -> Any:
    """The first residual proposal reuses the rejected draft's own component uniform and
    normals (``y = p.sample_from_noise(u_c, z)``) — noise already conditioned by the rejection."""
    rng, u_c, z, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    y = case.target.sample_from_noise(u_c[rows], z[rows])
    ok = rng.random(rows.size) < residual_acceptance_probability(case.draft.log_prob(y),
                                                                 case.target.log_prob(y))
    values, trials = correct_residual(case, rows, rng)
    values[ok] = y[ok]
    trials[ok] = 1
    trials[~ok] += 1
    return finish(x, accepted, values, trials)


def shared_rng_stream(case: Case, n: int, seed: int) -> Any:
    """The residual stage re-seeds its generator with the draft's seed and draws its first
    round in the draft's order (component uniforms, normals, uniforms for all rows), so a
    rejected row's first proposal replays the row's own draft noise and acceptance uniform
    (``torch.manual_seed(seed)`` called twice)."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    replay_u_c, replay_z, replay_u = draw_draft_noise(case, n, np.random.default_rng(seed))
    y = case.target.sample_from_noise(replay_u_c[rows], replay_z[rows])
    ok = replay_u[rows] < residual_acceptance_probability(case.draft.log_prob(y),
                                                          case.target.log_prob(y))
    values, trials = correct_residual(case, rows, rng)
    values[ok] = y[ok]
    trials[ok] = 1
    trials[~ok] += 1
    return finish(x, accepted, values, trials)


def draw_draft_noise(case: Case, n: int, rng: np.random.Generator,
                     ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Component uniforms, normals and acceptance uniforms in the reference's order."""
    return rng.random(n), rng.standard_normal((n, case.dim)), rng.random(n)


def missing_clip_in_residual(case: Case, n: int, seed: int) -> Any:
    """Residual acceptance ``|1 - q/p|`` (clipped to 1) instead of ``max(0, 1 - q/p)``: the
    missing max admits proposals where q > p."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    values = np.zeros((rows.size, case.dim))
    trials = np.zeros(rows.size, dtype=np.int64)
    pending = np.arange(rows.size)
    while pending.size:
        y = case.target.sample(pending.size, rng)
        prob = np.minimum(1.0, np.abs(-np.expm1(case.draft.log_prob(y) - case.target.log_prob(y))))
        ok = rng.random(pending.size) < prob
        trials[pending] += 1
        values[pending[ok]] = y[ok]
        pending = pending[~ok]
    return finish(x, accepted, values, trials)


def draft_as_residual_proposal(case: Case, n: int, seed: int) -> Any:
    """Residual proposals drawn from q instead of p, accepted with ``max(0, 1 - q/p)``."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    values = np.zeros((rows.size, case.dim))
    trials = np.zeros(rows.size, dtype=np.int64)
    pending = np.arange(rows.size)
    while pending.size:
        y = case.draft.sample(pending.size, rng)
        ok = rng.random(pending.size) < residual_acceptance_probability(
            case.draft.log_prob(y), case.target.log_prob(y))
        trials[pending] += 1
        values[pending[ok]] = y[ok]
        pending = pending[~ok]
    return finish(x, accepted, values, trials)


def unnormalised_mixture_weights(case: Case, n: int, seed: int) -> Any:
    """The target's log-density uses squared (unnormalised) mixture weights, in the acceptance
    test and the residual."""
    t = case.target
    wrong_target = GaussianMixture(t.weights**2, t.means, t.scales, validate_args=False)
    rng = np.random.default_rng(seed)
    _, _, x, u = draw_draft(case, n, rng)
    return verify_draft_from_noise(case.draft, wrong_target, x, u,
                                   ResidualNoiseGenerator(rng, case.dim), method="batched")


def residual_skips_rejection_test(case: Case, n: int, seed: int) -> Any:
    """Rejected rows are replaced by a plain draw from p (no residual test)."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    return finish(x, accepted, case.target.sample(rows.size, rng), np.ones(rows.size, np.int64))


def reflection_with_unequal_scales(case: Case, n: int, seed: int) -> Any:
    """The reflection map applied although the scales differ (target's scale used)."""
    _, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    y = reflection_map(x[rows], case.draft.means[0], case.target.means[0], case.target.scales[0])
    return finish(x, accepted, y, np.zeros(rows.size, np.int64))


def variances_passed_as_scales(case: Case, n: int, seed: int) -> Any:
    """Both log-densities in the acceptance test and the residual built with variances where
    scales (standard deviations) are expected."""
    q, p = case.draft, case.target
    q_wrong = GaussianMixture(q.weights, q.means, q.scales**2, validate_args=False)
    p_wrong = GaussianMixture(p.weights, p.means, p.scales**2, validate_args=False)
    rng = np.random.default_rng(seed)
    _, _, x, u = draw_draft(case, n, rng)
    accepted = accept_from_uniforms(log_acceptance_ratio(q_wrong, p_wrong, x), u)
    rows = np.flatnonzero(~accepted)
    values, trials = residual_sample_batched(q_wrong, p, rows.size,
                                             ResidualNoiseGenerator(rng, case.dim))
    return finish(x, accepted, values, trials)


def draft_without_verification(case: Case, n: int, seed: int) -> Any:
    """Every draft accepted: the draft's law, not the target's."""
    rng = np.random.default_rng(seed)
    _, _, x, _ = draw_draft(case, n, rng)
    return SpeculativeResult(samples=x, accepted=np.ones(n, bool), trials=np.zeros(n, np.int64))


# --------------------------------------------------------------------------- diffusion mutants
def diffusion_noise(case: DiffusionCase, n: int, rng: np.random.Generator,
                    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    d, T = case.dim, case.target_chain.num_steps
    return (rng.standard_normal((n, d)), rng.standard_normal((T - 1, n, d)),
            rng.standard_normal((n, d)), rng.random(n))


def noiseless_last_step(case: DiffusionCase, n: int, seed: int) -> Any:
    """The draft's last step returns its mean ``m_q(x_1, 1)`` (no noise), but the acceptance test
    scores that point with the Gaussian last-step densities as if it had been sampled."""
    rng = np.random.default_rng(seed)
    x_T, shared, _, u = diffusion_noise(case, n, rng)
    q_last, p_last = aligned_last_steps(case.draft_chain, case.target_chain, x_T, shared)
    x = q_last.mean.copy()
    return verify_draft_from_noise(q_last, p_last, x, u, ResidualNoiseGenerator(rng, case.dim),
                                   method="batched").samples


def unaligned_target_last_step(case: DiffusionCase, n: int, seed: int) -> Any:
    """The target's last step is evaluated at the draft's ``x_1^q`` instead of running the
    target chain on the shared noise: the output follows ``p_1(. | x_1^q)``, not the target."""
    rng = np.random.default_rng(seed)
    x_T, shared, eps1, u = diffusion_noise(case, n, rng)
    x1_q = case.draft_chain.trajectory_from_noise(x_T, shared)[-1]
    q_last = case.draft_chain.transition(x1_q, 1)
    p_last = case.target_chain.transition(x1_q, 1)
    x = q_last.mean + q_last.scale * eps1
    return verify_draft_from_noise(q_last, p_last, x, u, ResidualNoiseGenerator(rng, case.dim),
                                   method="batched").samples


def variance_as_scale_in_last_step(case: DiffusionCase, n: int, seed: int) -> Any:
    """The last-step Gaussians are built with ``(tau s)^2`` where ``tau s`` is expected."""
    rng = np.random.default_rng(seed)
    x_T, shared, eps1, u = diffusion_noise(case, n, rng)
    q_last, p_last = aligned_last_steps(case.draft_chain, case.target_chain, x_T, shared)
    q_wrong = DiagGaussian(q_last.mean, q_last.scale**2, validate_args=False)
    p_wrong = DiagGaussian(p_last.mean, p_last.scale**2, validate_args=False)
    x = q_wrong.mean + q_wrong.scale * eps1
    return verify_draft_from_noise(q_wrong, p_wrong, x, u, ResidualNoiseGenerator(rng, case.dim),
                                   method="batched").samples


# --------------------------------------------------------------------------- AR mutants
def broken_ar_decode(case: ARCase, n: int, seed: int, *, gamma: int = 3,
                     keep_after_rejection: bool = False, bonus_from_draft: bool = False,
                     score_on_verified_prefix: bool = False) -> np.ndarray:
    """AR speculative decoding with one of three mistakes switched on (see the mutants)."""
    rng = np.random.default_rng(seed)
    sched, draft, target = case.schedule, case.draft, case.target
    L, d, G = sched.seq_len, target.dim, sched.num_groups
    noise = ResidualNoiseGenerator(rng, d)
    out = np.zeros((n, L, d))
    for i in range(n):
        tokens, known, g = out[i], np.zeros(L, dtype=bool), 0
        while g < G:
            k = min(gamma, G - g)
            dtok, dknown, laws = tokens.copy(), known.copy(), []
            for j in range(k):
                pos = sched.positions(g + j)
                law = draft.conditionals(dtok, dknown, pos)
                dtok[pos] = law.sample(1, rng)[0]
                dknown[pos] = True
                laws.append(law)
            scored = known.copy()
            targets = []
            for j in range(min(k + 1, G - g)):
                pos = sched.positions(g + j)
                targets.append(target.conditionals(dtok, known if score_on_verified_prefix
                                                   else scored, pos))
                scored[pos] = True
            all_ok = True
            for j in range(k):
                pos = sched.positions(g + j)
                res = verify_draft_from_noise(laws[j], targets[j], dtok[pos], rng.random(pos.size),
                                              noise, method="batched")
                tokens[pos] = res.samples
                known[pos] = True
                if not res.accepted.all():
                    all_ok = False
                    if not (keep_after_rejection or score_on_verified_prefix):
                        g += j + 1
                        break
            else:
                g += k
            if all_ok and g < G:
                pos = sched.positions(g)
                source = (draft.conditionals(tokens, known, pos) if bonus_from_draft
                          else targets[k])
                tokens[pos] = source.sample(1, rng)[0]
                known[pos] = True
                g += 1
    return out


def ar_groups_kept_after_rejection(case: ARCase, n: int, seed: int) -> Any:
    """Groups after the first rejected group are verified and kept, though they were
    conditioned on draft tokens that were replaced."""
    return broken_ar_decode(case, n, seed, keep_after_rejection=True)


def ar_bonus_group_from_draft(case: ARCase, n: int, seed: int) -> Any:
    """After a fully accepted round, the bonus group is sampled from the draft."""
    return broken_ar_decode(case, n, seed, gamma=1, bonus_from_draft=True)


def ar_scored_on_verified_prefix(case: ARCase, n: int, seed: int) -> Any:
    """Every drafted group is scored against the target conditioned on the verified prefix
    alone and kept token by token (the public CSpD runner's scheme, SPEC §4.2)."""
    return broken_ar_decode(case, n, seed, score_on_verified_prefix=True)


# --------------------------------------------------------------------------- the cases
def mixture_case() -> Case:
    """The demo case (K=3 target, K=2 draft, TV ~0.27)."""
    return demo_case()


def unequal_weight_case() -> Case:
    """A 1-D two-component target with weights (0.8, 0.2); draft a shifted copy."""
    target = GaussianMixture([0.8, 0.2], [[0.0], [3.0]], [[1.0], [0.6]])
    draft = GaussianMixture([0.8, 0.2], [[0.7], [3.5]], [[1.0], [0.6]])
    return Case(draft, target, name="unequal-weights-1d")


def unequal_scale_gaussian_case() -> Case:
    """Single Gaussians in 2-D, target scales 1.5x the draft's."""
    return Case(GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]]),
                GaussianMixture([1.0], [[1.0, 0.5]], [[1.5, 1.5]]), name="unequal-scales-2d")


def non_unit_scale_case() -> Case:
    """2-D mixtures with scales far from 1, where scale and variance differ."""
    target = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [2.0, 1.0]], [[0.4, 2.5], [0.5, 2.0]])
    draft = GaussianMixture([0.5, 0.5], [[0.3, 0.5], [1.5, 1.0]], [[0.5, 2.0], [0.5, 2.5]])
    return Case(draft, target, name="non-unit-scales-2d")


def linear_diffusion_case() -> DiffusionCase:
    """Linear chains, T = 4, d = 2, contracting (a in [0.3, 0.5]), step scale 0.4; the draft's
    means shifted and its scales 1.3x."""
    rng = np.random.default_rng(7)
    T, d = 4, 2
    a, b = rng.uniform(0.3, 0.5, (T, d)), rng.normal(0, 0.5, (T, d))
    s = np.full((T, d), 0.4)  # the last step carries most of x_0's variance
    target = LinearGaussianChain(a, b, s)
    draft = LinearGaussianChain(a * 0.9, b + 0.3, s * 1.3)
    return DiffusionCase(draft, target, name="linear-chain-T4-d2")


def ar_case() -> ARCase:
    """L = 6, d = 2, K = 2 target, draft perturbed by 0.4, 4 groups."""
    rng = np.random.default_rng(11)
    target = MixtureARModel.random(6, 2, 2, rng, coupling=1.5)
    return ARCase(target.perturbed(0.4, rng), target, mar_schedule(6, 4, rng), name="ar-L6-d2")


MUTANTS: tuple[Mutant, ...] = (
    Mutant("inner_temperature", "log-ratio divided by an inner temperature 2", inner_temperature,
           mixture_case),
    Mutant("ratio_direction_flipped", "log q - log p instead of log p - log q",
           ratio_direction_flipped, mixture_case),
    Mutant("capped_residual_with_fallback", "residual capped at 2 tries, fallback 0.0",
           capped_residual_with_fallback, mixture_case),
    Mutant("capped_residual_keeps_draft", "residual capped at 2 tries, keeps the draft",
           capped_residual_keeps_draft, mixture_case),
    Mutant("residual_reuses_draft_noise", "first residual proposal reuses the draft's noise",
           residual_reuses_draft_noise, mixture_case, n=40_000),
    Mutant("shared_rng_stream", "residual generator re-seeded with the draft's seed",
           shared_rng_stream, mixture_case),
    Mutant("missing_clip_in_residual", "|1 - q/p| instead of max(0, 1 - q/p)",
           missing_clip_in_residual, mixture_case),
    Mutant("draft_as_residual_proposal", "residual proposals from q instead of p",
           draft_as_residual_proposal, mixture_case),
    Mutant("unnormalised_mixture_weights", "target log-density with unnormalised weights",
           unnormalised_mixture_weights, unequal_weight_case),
    Mutant("residual_skips_rejection_test", "rejected rows replaced by a plain draw from p",
           residual_skips_rejection_test, mixture_case),
    Mutant("reflection_with_unequal_scales", "reflection coupling used with unequal scales",
           reflection_with_unequal_scales, unequal_scale_gaussian_case),
    Mutant("variances_passed_as_scales", "variances where standard deviations are expected",
           variances_passed_as_scales, non_unit_scale_case),
    Mutant("draft_without_verification", "every draft accepted", draft_without_verification,
           mixture_case),
    Mutant("noiseless_last_step", "draft's last step noiseless but scored as Gaussian",
           noiseless_last_step, linear_diffusion_case),
    Mutant("unaligned_target_last_step", "target last step evaluated at the draft's x_1",
           unaligned_target_last_step, linear_diffusion_case),
    Mutant("variance_as_scale_in_last_step", "(tau s)^2 used as the last-step scale",
           variance_as_scale_in_last_step, linear_diffusion_case),
    Mutant("ar_groups_kept_after_rejection", "later groups kept after a rejected group",
           ar_groups_kept_after_rejection, ar_case, n=2000),
    Mutant("ar_bonus_group_from_draft", "bonus group sampled from the draft",
           ar_bonus_group_from_draft, ar_case, n=2000),
    Mutant("ar_scored_on_verified_prefix", "drafted groups scored on the verified prefix only",
           ar_scored_on_verified_prefix, ar_case, n=2000),
)
