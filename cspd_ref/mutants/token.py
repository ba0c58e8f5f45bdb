"""Gross token mutants: the reference token sampler with one realistic mistake each
(``docs/algorithms.md``, non-exact variants). Each returns a ``SpeculativeResult``-like output."""

from __future__ import annotations

from typing import Any

import numpy as np

from cspd_ref import GaussianMixture
from cspd_ref.cases import Case
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


# --------------------------------------------------------------------------- shared pieces
def draw_draft(case: Case, n: int, *, rng: np.random.Generator
               ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
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
    u_c, z, x, u = draw_draft(case, n, rng=rng)
    accepted = accept_from_uniforms(log_acceptance_ratio(case.draft, case.target, x), u)
    return rng, u_c, z, x, accepted


def correct_residual(case: Case, rows: np.ndarray, *, rng: np.random.Generator,
                     ) -> tuple[FloatArray, np.ndarray]:
    """The correct batched residual for ``rows`` (used by mutants wrong elsewhere)."""
    return residual_sample_batched(case.draft, case.target, rows.size,
                                   ResidualNoiseGenerator(case.dim, rng=rng))


def finish(x: FloatArray, accepted: np.ndarray, residual_values: FloatArray,
           trials: np.ndarray) -> SpeculativeResult:
    """Assemble a result: accepted drafts kept, rejected rows replaced."""
    samples = x.copy()
    full_trials = np.zeros(x.shape[0], dtype=np.int64)
    rejected = np.flatnonzero(~accepted)
    samples[rejected] = residual_values
    full_trials[rejected] = trials
    return SpeculativeResult(samples=samples, accepted=accepted, trials=full_trials)


def capped_residual(case: Case, rows: np.ndarray, cap: int, fallback: FloatArray, *,
                    rng: np.random.Generator) -> tuple[FloatArray, np.ndarray]:
    """Residual loop that gives up after ``cap`` proposals and returns ``fallback`` rows."""
    values = fallback.copy()
    trials = np.full(rows.size, cap, dtype=np.int64)
    pending = np.ones(rows.size, dtype=bool)
    for j in range(cap):
        y = case.target.sample(rows.size, rng=rng)
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
    _, _, x, u = draw_draft(case, n, rng=rng)
    accepted = accept_from_uniforms(log_acceptance_ratio(case.draft, case.target, x) / temperature,
                                    u)
    values, trials = correct_residual(case, np.flatnonzero(~accepted), rng=rng)
    return finish(x, accepted, values, trials)


def ratio_direction_flipped(case: Case, n: int, seed: int) -> Any:
    """Accept iff ``log u < log q(x) - log p(x)`` (ratio upside down)."""
    rng = np.random.default_rng(seed)
    _, _, x, u = draw_draft(case, n, rng=rng)
    accepted = accept_from_uniforms(-log_acceptance_ratio(case.draft, case.target, x), u)
    values, trials = correct_residual(case, np.flatnonzero(~accepted), rng=rng)
    return finish(x, accepted, values, trials)


def capped_residual_with_fallback(case: Case, n: int, seed: int) -> Any:
    """Residual loop capped at 2 proposals; unfinished rows silently get 0.0."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    values, trials = capped_residual(case, rows, 2, np.zeros((rows.size, case.dim)), rng=rng)
    return finish(x, accepted, values, trials)


def capped_residual_keeps_draft(case: Case, n: int, seed: int) -> Any:
    """Residual loop capped at 2 proposals; unfinished rows keep the rejected draft."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    values, trials = capped_residual(case, rows, 2, x[rows], rng=rng)
    return finish(x, accepted, values, trials)


def residual_reuses_draft_noise(case: Case, n: int, seed: int) -> Any:
    """The first residual proposal reuses the rejected draft's own component uniform and
    normals (``y = p.sample_from_noise(u_c, z)``) — noise already conditioned by the rejection."""
    rng, u_c, z, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    y = case.target.sample_from_noise(u_c[rows], z[rows])
    ok = rng.random(rows.size) < residual_acceptance_probability(case.draft.log_prob(y),
                                                                 case.target.log_prob(y))
    values, trials = correct_residual(case, rows, rng=rng)
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
    replay_u_c, replay_z, replay_u = draw_draft_noise(case, n, rng=np.random.default_rng(seed))
    y = case.target.sample_from_noise(replay_u_c[rows], replay_z[rows])
    ok = replay_u[rows] < residual_acceptance_probability(case.draft.log_prob(y),
                                                          case.target.log_prob(y))
    values, trials = correct_residual(case, rows, rng=rng)
    values[ok] = y[ok]
    trials[ok] = 1
    trials[~ok] += 1
    return finish(x, accepted, values, trials)


def draw_draft_noise(case: Case, n: int, *, rng: np.random.Generator,
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
        y = case.target.sample(pending.size, rng=rng)
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
        y = case.draft.sample(pending.size, rng=rng)
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
    _, _, x, u = draw_draft(case, n, rng=rng)
    return verify_draft_from_noise(case.draft, wrong_target, x, u,
                                   ResidualNoiseGenerator(case.dim, rng=rng), method="batched")


def residual_skips_rejection_test(case: Case, n: int, seed: int) -> Any:
    """Rejected rows are replaced by a plain draw from p (no residual test)."""
    rng, _, _, x, accepted = draft_and_correct_test(case, n, seed)
    rows = np.flatnonzero(~accepted)
    return finish(x, accepted, case.target.sample(rows.size, rng=rng), np.ones(rows.size, np.int64))


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
    _, _, x, u = draw_draft(case, n, rng=rng)
    accepted = accept_from_uniforms(log_acceptance_ratio(q_wrong, p_wrong, x), u)
    rows = np.flatnonzero(~accepted)
    values, trials = residual_sample_batched(q_wrong, p, rows.size,
                                             ResidualNoiseGenerator(case.dim, rng=rng))
    return finish(x, accepted, values, trials)


def draft_without_verification(case: Case, n: int, seed: int) -> Any:
    """Every draft accepted: the draft's law, not the target's."""
    rng = np.random.default_rng(seed)
    _, _, x, _ = draw_draft(case, n, rng=rng)
    return SpeculativeResult(samples=x, accepted=np.ones(n, bool), trials=np.zeros(n, np.int64))
