"""AR speculative decoding driven by explicit noise: ``cspd_ref.ar`` and ``gpu_impl.ar`` on the
same ``ARNoise`` (layout: ``cspd_ref.ar_noise``; maths: docs/algorithms.md §5).

* Same noise, float64 in both packages: identical decisions (every acceptance test, residual
  trial counts, passes, accepted and bonus groups) and equal sequences and log-ratios within the
  float64 tolerance below; over small ``MixtureARModel`` cases, gamma 1..3, pre-fill 0 and 0.5,
  bonus on/off, residual batched / loop / reflection.
* float32 ``gpu_impl`` against the float64 reference: the same comparison, made only on the
  sequences none of whose decisions lies within the float32 tolerance of its boundary (as
  ``tests/test_gpu_differential.py`` does per token; here a decision that flips changes all the
  rest of its sequence, so the whole sequence is set aside).
* The layout: entries the documented rules say are not used can be replaced without changing
  anything; a residual row that runs out raises in both (never a substitute); bad noise raises
  ``ValueError`` naming the argument.
* Exactness: the reference from-noise decoder, with noise drawn from a generator, passes
  ``verify`` on one AR case (ONE unit of the false-alarm budget, ``property_tests/budget.py``).

Tolerances (first-order operation counts, not worst-case bounds). With ``u = u_dtype + u_64``
(unit roundoffs: 2**-53 for float64, 2**-24 for float32; the ``u_64`` part is the reference's own
rounding) and ``C = 64 (L + d + K)`` — ``L`` terms in a context dot product ``W tanh(x)``, ``d``
in a log-density's coordinate sum, ``K`` in its logsumexp and in the softmax, and a factor 64
for the few operations per term and their propagation from group to group through the context —
a token may differ by ``C u (1 + |x|)`` and a log-ratio (acceptance or residual) by
``C u (1 + |log-ratio|)``. For L = 7, d = 2, K = 2 that is ``C u = 1.6e-13`` in float64 and
``4.2e-5`` in float32; the largest observed differences are 2% (float64) and 4% (float32) of
them, and no float32 sequence of these seeds has a decision within tolerance of its boundary.
Every comparison asserts the observed differences against these tolerances, so a tolerance
that is too tight fails loudly rather than hiding a bug. A decision is "near its
boundary" when ``|log u - lr| <= tol(lr)`` (acceptance) or ``u'`` lies in the range of
``-expm1(min(0, -lr))`` over ``lr +- tol`` widened by ``4u`` (residual proposals). Component
choices are not screened (the trace does not hold the mixture weights): a uniform falls within
``4 K u`` of a cumulative weight with probability about ``1e-6`` per draw in float32; the seeds
are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

import numpy as np
import pytest
import torch

import gpu_impl.ar as gpu_ar
from cspd_ref import ar as ref_ar
from cspd_ref.ar_noise import ARNoise as RefNoise
from cspd_ref.cases import ARCase
from cspd_ref.speculative import ResidualBudgetExceeded
from gpu_impl.ar_noise import ARNoise as GpuNoise
from gpu_impl.testing import device_under_test
from property_tests.gate import assert_equivalent

DEVICE = device_under_test()
U64 = 2.0**-53
ONE_BELOW_F32 = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
COUNTERS = ("target_passes", "prefill_passes", "drafted_groups", "accepted_groups",
            "bonus_groups")
MAX_AMBIGUOUS_FRACTION = 0.02


# --------------------------------------------------------------------- cases and noise
def make_case(kind: str, seed: int) -> tuple[Any, Any, Any]:
    """``(draft, target, schedule)`` of a small reference case.

    ``mix``: K = 2 mixtures, d = 2, L = 7 in 4 groups; ``gauss``: single Gaussians of unequal
    scales, d = 1, L = 6, one token per group; ``reflection``: single Gaussians with equal
    scales in draft and target (``scale_coupling = 0``), d = 3, L = 6 in 3 groups.
    """
    rng = np.random.default_rng([seed, len(kind)])
    if kind == "reflection":
        L, d = 6, 3
        scales = rng.uniform(0.5, 1.2, (L, 1, d))
        target = ref_ar.MixtureARModel(np.zeros((L, 1)), rng.normal(0, 1.5, (L, 1, d)), scales,
                                       0.8 * rng.normal(size=(L, L)) / np.sqrt(L), np.ones(1))
        draft = ref_ar.MixtureARModel(
            np.zeros((L, 1)), target.base_means + 0.5 * rng.normal(size=(L, 1, d)), scales,
            target.context_weights + 0.1 * rng.normal(size=(L, L)), np.ones(1))
        return draft, target, ref_ar.mar_schedule(L, 3, rng=rng)
    L, d, K, steps = (7, 2, 2, 4) if kind == "mix" else (6, 1, 1, 6)
    target = ref_ar.MixtureARModel.random(L, d, K, rng=rng)
    return target.perturbed(0.5, rng=rng), target, ref_ar.mar_schedule(L, steps, rng=rng)


def f32_representable(noise: RefNoise) -> RefNoise:
    """The noise rounded to float32-representable values (uniforms kept below 1), so float32
    and float64 decoders read exactly the same numbers."""
    arrays = {}
    for f in fields(noise):
        a = getattr(noise, f.name).astype(np.float32).astype(np.float64)
        arrays[f.name] = np.minimum(a, ONE_BELOW_F32) if "uniforms" in f.name else a
    return RefNoise(**arrays)


def draw(case: tuple[Any, Any, Any], n: int, gamma: int, seed: int,
         residual_trials: int = 256) -> RefNoise:
    _, target, schedule = case
    return f32_representable(ref_ar.draw_ar_noise(
        n, schedule, target.dim, rng=np.random.default_rng(seed), gamma=gamma,
        residual_trials=residual_trials))


def gpu_decode(case: tuple[Any, Any, Any], noise: RefNoise, dtype: torch.dtype,
               **options: Any) -> Any:
    draft, target, schedule = case
    return gpu_ar.ar_speculative_decode_from_noise(
        gpu_ar.MixtureARModel.from_reference(draft, DEVICE, dtype),
        gpu_ar.MixtureARModel.from_reference(target, DEVICE, dtype), schedule,
        GpuNoise.from_reference(noise, DEVICE, dtype), **options)


def host(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64 if t.dtype.is_floating_point else t.dtype).numpy()


# --------------------------------------------------------------------- comparison
def compare(case: tuple[Any, Any, Any], noise: RefNoise, ref: Any, got: Any,
            dtype: torch.dtype) -> tuple[int, float]:
    """Assert ``got`` (gpu_impl) equals ``ref`` (cspd_ref) on every sequence with no decision
    near its boundary (module docstring); returns (sequences set aside, worst error / tol)."""
    draft, target, _ = case
    u = torch.finfo(dtype).eps / 2 + U64
    k = max(draft.n_components, target.n_components)
    c_u = 64 * (target.seq_len + target.dim + k) * u
    tr = ref.trace
    lr = tr.accept_log_ratios
    tol = c_u * (1 + np.abs(lr))
    with np.errstate(divide="ignore", invalid="ignore"):
        near = np.abs(np.log(noise.accept_uniforms) - lr) <= tol          # NaN -> False
        rl = tr.residual_log_ratios
        rtol = c_u * (1 + np.abs(rl))
        a_lo = -np.expm1(np.minimum(0.0, -(rl - rtol)))
        a_hi = -np.expm1(np.minimum(0.0, -(rl + rtol)))
        ua = noise.residual_accept_uniforms
        near_res = (ua >= a_lo - 4 * u) & (ua <= a_hi + 4 * u)
    ambiguous = near.any(axis=(1, 2, 3)) | near_res.any(axis=(1, 2))
    assert ambiguous.mean() <= MAX_AMBIGUOUS_FRACTION, (
        f"{ambiguous.sum()} of {ambiguous.size} sequences near a boundary: the test lost its "
        "teeth")
    keep = ~ambiguous
    for name in COUNTERS:
        np.testing.assert_array_equal(host(getattr(got, name))[keep],
                                      getattr(ref, name)[keep], err_msg=name)
    gt = got.trace
    np.testing.assert_array_equal(host(gt.accepted)[keep], tr.accepted[keep])
    np.testing.assert_array_equal(host(gt.residual_trials)[keep], tr.residual_trials[keep])
    worst = 0.0
    for mine, theirs in ((host(gt.accept_log_ratios), lr),
                         (host(gt.residual_log_ratios), tr.residual_log_ratios)):
        np.testing.assert_array_equal(np.isnan(mine[keep]), np.isnan(theirs[keep]))
        err = np.abs(mine - theirs)[keep]
        bound = (c_u * (1 + np.abs(theirs)))[keep]
        ratio = np.nan_to_num(err / bound, nan=0.0)
        worst = max(worst, float(ratio.max(initial=0.0)))
    x_ref, x_got = ref.sequences[keep], host(got.sequences)[keep]
    assert np.isfinite(x_got).all()
    ratio = np.abs(x_got - x_ref) / (c_u * (1 + np.abs(x_ref)))
    worst = max(worst, float(ratio.max(initial=0.0)))
    assert worst <= 1.0, f"differences up to {worst:.3g} x the stated tolerance"
    return int(ambiguous.sum()), worst


# --------------------------------------------------------------------- same noise, float64
CONFIGS = [(g, p, b) for g in (1, 2, 3) for p in (0.0, 0.5) for b in (True, False)]
SMALL = [(1, 0.0, True), (2, 0.5, False), (3, 0.0, True), (2, 0.0, False)]
PARAMS = ([("mix", "batched", *c) for c in CONFIGS]
          + [("mix", "loop", *c) for c in SMALL]
          + [("gauss", "auto", *c) for c in SMALL]
          + [("reflection", "reflection", *c) for c in SMALL[:2]]
          + [("reflection", "auto", *c) for c in SMALL[2:]])


@pytest.mark.parametrize(("kind", "residual", "gamma", "prefill", "bonus"), PARAMS)
def test_reference_and_gpu_agree_on_the_same_noise(kind: str, residual: str, gamma: int,
                                                    prefill: float, bonus: bool) -> None:
    case = make_case(kind, seed=gamma)
    noise = draw(case, 24, gamma, seed=100 * gamma + int(10 * prefill) + bonus)
    options = {"gamma": gamma, "prefill": prefill, "bonus_group": bonus, "residual": residual}
    ref = ref_ar.ar_speculative_decode_from_noise(*case, noise, **options)
    got = gpu_decode(case, noise, torch.float64, **options)
    assert got.sequences.dtype == torch.float64 and got.sequences.device.type == DEVICE.type
    skipped, _ = compare(case, noise, ref, got, torch.float64)
    assert skipped == 0, "a float64 decision within 1e-13 of its boundary (change the seed)"
    # the cases exercise what they are meant to: rejections, and residual proposals or not
    assert ref.trace.accepted.sum() < (~np.isnan(ref.trace.accept_log_ratios)).sum()
    if kind == "reflection":
        assert ref.trace.residual_trials.max() == 0
    elif prefill == 0.0:
        assert ref.trace.residual_trials.max() > 0


@pytest.mark.parametrize(("kind", "residual"), [("mix", "batched"), ("reflection", "auto")])
def test_float32_gpu_matches_float64_reference_away_from_boundaries(kind: str,
                                                                      residual: str) -> None:
    case = make_case(kind, seed=7)
    noise = draw(case, 150, 2, seed=8)
    ref = ref_ar.ar_speculative_decode_from_noise(*case, noise, gamma=2, residual=residual)
    got = gpu_decode(case, noise, torch.float32, gamma=2, residual=residual)
    assert got.sequences.dtype == torch.float32
    assert got.trace.accept_log_ratios.dtype == torch.float32
    compare(case, noise, ref, got, torch.float32)


# --------------------------------------------------------------------- the layout
def used_entries(schedule: Any, noise: RefNoise, trace: Any, gamma: int, prefill: float,
                 bonus: bool) -> dict[str, np.ndarray]:
    """Masks of the entries the output depends on, by the documented rules of
    ``cspd_ref.ar_noise`` replayed from the trace's accept decisions: target noise at pre-fill
    and bonus positions, draft and acceptance noise at the slots of verified groups, residual
    noise at examined proposals (drafts of discarded groups are drawn but affect nothing)."""
    n, L, G = noise.n, noise.seq_len, schedule.num_groups
    target = np.zeros((n, L), dtype=bool)
    slots = np.zeros(noise.accept_uniforms.shape, dtype=bool)
    n_prefill = math.ceil(prefill * G - 1e-12)
    for i in range(n):
        for g in range(n_prefill):
            target[i, list(schedule.groups[g])] = True
        g, r = n_prefill, 0
        while g < G:
            k = min(gamma, G - g)
            for j in range(k):
                m = len(schedule.groups[g + j])
                slots[i, r, j, :m] = True
                if not trace.accepted[i, r, j, :m].all():
                    g += j + 1
                    break
            else:
                g += k
                if bonus and g < G:
                    target[i, list(schedule.groups[g])] = True
                    g += 1
            r += 1
    R = noise.residual_trials
    residual = np.arange(R)[None, None, :] < trace.residual_trials[:, :, None]
    np.testing.assert_array_equal(slots, ~np.isnan(trace.accept_log_ratios))
    return {"target": target, "draft": slots, "accept": slots, "residual": residual}


def scramble_unused(noise: RefNoise, used: dict[str, np.ndarray], schedule: Any,
                    seed: int) -> RefNoise:
    """Every entry outside ``used`` replaced by a fresh draw."""
    other = ref_ar.draw_ar_noise(noise.n, schedule, noise.dim, rng=np.random.default_rng(seed),
                                 gamma=noise.gamma, residual_trials=noise.residual_trials)
    arrays = {}
    for f in fields(noise):
        mask = used[f.name.split("_")[0]]
        old, new = getattr(noise, f.name), getattr(other, f.name)
        mask = mask.reshape(mask.shape + (1,) * (old.ndim - mask.ndim))
        arrays[f.name] = np.where(mask, old, new)
    return RefNoise(**arrays)


@pytest.mark.parametrize(("gamma", "prefill", "bonus"), [(2, 0.0, True), (3, 0.5, False)])
def test_entries_outside_the_documented_use_do_not_matter(gamma: int, prefill: float,
                                                          bonus: bool) -> None:
    case = make_case("mix", seed=3)
    noise = draw(case, 30, gamma, seed=4)
    options = {"gamma": gamma, "prefill": prefill, "bonus_group": bonus}
    ref = ref_ar.ar_speculative_decode_from_noise(*case, noise, **options)
    used = used_entries(case[2], noise, ref.trace, gamma, prefill, bonus)
    assert not used["draft"].all() and not used["target"].all()
    scrambled = scramble_unused(noise, used, case[2], seed=5)
    again = ref_ar.ar_speculative_decode_from_noise(*case, scrambled, **options)
    got = gpu_decode(case, noise, torch.float64, **options)
    got_again = gpu_decode(case, scrambled, torch.float64, **options)
    np.testing.assert_array_equal(again.sequences, ref.sequences)
    torch.testing.assert_close(got_again.sequences, got.sequences, rtol=0, atol=0)
    for name in COUNTERS:
        np.testing.assert_array_equal(getattr(again, name), getattr(ref, name))
        assert torch.equal(getattr(got_again, name), getattr(got, name))
    np.testing.assert_array_equal(again.trace.accepted, ref.trace.accepted)
    np.testing.assert_array_equal(again.trace.residual_trials, ref.trace.residual_trials)


def test_reflection_reads_no_residual_noise() -> None:
    case = make_case("reflection", seed=2)
    noise = draw(case, 20, 2, seed=3, residual_trials=0)
    ref = ref_ar.ar_speculative_decode_from_noise(*case, noise, residual="reflection")
    got = gpu_decode(case, noise, torch.float64, residual="reflection")
    assert not ref.trace.accepted[~np.isnan(ref.trace.accept_log_ratios)].all()
    compare(case, noise, ref, got, torch.float64)


def test_too_short_residual_noise_raises_in_both() -> None:
    """A rejected token whose ``R`` proposals all fail raises ``ResidualBudgetExceeded`` naming
    the flat rows ``i * L + l``; one sequence at a time both packages stop at the same group."""
    case = make_case("mix", seed=1)
    L = case[2].seq_len
    raised = 0
    for seed in range(8):
        noise = draw(case, 1, 2, seed=seed, residual_trials=1)
        try:
            ref_ar.ar_speculative_decode_from_noise(*case, noise, residual="batched")
        except ResidualBudgetExceeded as ref_exc:
            raised += 1
            with pytest.raises(ResidualBudgetExceeded) as exc:
                gpu_decode(case, noise, torch.float64, residual="batched")
            assert sorted(exc.value.unfinished_rows.tolist()) == sorted(
                ref_exc.unfinished_rows.tolist())
            assert all(0 <= row < L for row in ref_exc.unfinished_rows.tolist())
        else:
            gpu_decode(case, noise, torch.float64, residual="batched")
    assert 2 <= raised < 8
    noise = draw(case, 40, 2, seed=9, residual_trials=0)
    for method in ("batched", "loop"):
        with pytest.raises(ResidualBudgetExceeded):
            ref_ar.ar_speculative_decode_from_noise(*case, noise, residual=method)
        with pytest.raises(ResidualBudgetExceeded) as exc:
            gpu_decode(case, noise, torch.float64, residual=method)
        assert all(0 <= row < 40 * L for row in exc.value.unfinished_rows.tolist())


# --------------------------------------------------------------------- validation
def test_noise_validation_names_the_argument() -> None:
    case = make_case("mix", seed=1)
    draft, target, schedule = case
    noise = draw(case, 3, 2, seed=1, residual_trials=4)
    gq = gpu_ar.MixtureARModel.from_reference(draft, DEVICE, torch.float64)
    gp = gpu_ar.MixtureARModel.from_reference(target, DEVICE, torch.float64)
    gnoise = GpuNoise.from_reference(noise, DEVICE)
    arrays = {f.name: getattr(noise, f.name) for f in fields(noise)}
    for cls in (RefNoise, GpuNoise):
        bad_range = dict(arrays, accept_uniforms=arrays["accept_uniforms"] + 1.0)
        with pytest.raises(ValueError, match=r"^accept_uniforms: uniforms must lie"):
            cls(**bad_range)
        nan = dict(arrays, residual_normals=np.full_like(arrays["residual_normals"], np.nan))
        with pytest.raises(ValueError, match=r"^residual_normals: contains NaN"):
            cls(**nan)
        short = dict(arrays, draft_normals=arrays["draft_normals"][:, :, :, :1])
        with pytest.raises(ValueError, match=r"^draft_normals: expected shape"):
            cls(**short)
        flat = dict(arrays, target_normals=arrays["target_normals"][..., 0])
        with pytest.raises(ValueError, match=r"^target_normals: expected 3 dimension"):
            cls(**flat)
    with pytest.raises(ValueError, match=r"^target_normals: dtype"):
        GpuNoise(**{f.name: torch.as_tensor(a, dtype=torch.float32 if f.name.endswith(
            "normals") else torch.float64) for f, a in zip(fields(noise), arrays.values(),
                                                           strict=True)})
    # shapes that do not fit the decode: gamma, d, L, the schedule's groups
    for decode, models, nz in ((ref_ar.ar_speculative_decode_from_noise, (draft, target), noise),
                               (gpu_ar.ar_speculative_decode_from_noise, (gq, gp), gnoise)):
        with pytest.raises(ValueError, match=r"^noise\.draft_component_uniforms: expected"):
            decode(*models, schedule, nz, gamma=3)
        with pytest.raises(ValueError, match=r"^noise\.draft_component_uniforms: expected"):
            decode(*models, ref_ar.GroupSchedule(tuple((p,) for p in range(7))), nz)
        with pytest.raises(ValueError, match=r"^noise: expected"):
            decode(*models, schedule, arrays)
        with pytest.raises(ValueError, match=r"^prefill: "):
            decode(*models, schedule, nz, prefill=1.5)
    other = ref_ar.MixtureARModel.random(7, 3, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^noise\.target_normals: expected"):
        ref_ar.ar_speculative_decode_from_noise(other.perturbed(0.1, rng=np.random.default_rng(1)),
                                                other, schedule, noise)
    with pytest.raises(ValueError, match=r"^noise: expected a gpu_impl"):
        gpu_ar.ar_speculative_decode_from_noise(gq, gp, schedule, noise)
    with pytest.raises(ValueError, match=r"^noise: expected a cspd_ref"):
        ref_ar.ar_speculative_decode_from_noise(draft, target, schedule, gnoise)
    with pytest.raises(ValueError, match=r"^schedule: "):
        ref_ar.draw_ar_noise(2, "groups", 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^residual_trials: "):
        gpu_ar.draw_ar_noise(2, schedule, 2, generator=torch.Generator(), residual_trials=-1)


def test_draw_shapes_and_round_trip() -> None:
    case = make_case("mix", seed=1)
    _, target, schedule = case
    noise = ref_ar.draw_ar_noise(5, schedule, 2, rng=np.random.default_rng(0), gamma=3,
                                 residual_trials=7)
    S = max(len(group) for group in schedule.groups)
    assert noise.draft_normals.shape == (5, schedule.num_groups, 3, S, 2)
    assert noise.residual_accept_uniforms.shape == (5, 7, 7)
    back = GpuNoise.from_reference(noise).to_reference()
    for f in fields(noise):
        np.testing.assert_array_equal(getattr(back, f.name), getattr(noise, f.name))
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    table = gpu_ar.GroupTable.from_schedule(schedule, DEVICE)
    gnoise = gpu_ar.draw_ar_noise(5, table, 2, generator=gen, gamma=3, residual_trials=64,
                                  dtype=torch.float64)
    assert gnoise.device.type == DEVICE.type and gnoise.dtype == torch.float64
    assert tuple(gnoise.draft_normals.shape) == noise.draft_normals.shape
    q = gpu_ar.MixtureARModel.from_reference(case[0], DEVICE, torch.float64)
    p = gpu_ar.MixtureARModel.from_reference(target, DEVICE, torch.float64)
    out = gpu_ar.ar_speculative_decode_from_noise(q, p, table, gnoise, gamma=3)
    ref = ref_ar.ar_speculative_decode_from_noise(*case, gnoise.to_reference(), gamma=3)
    np.testing.assert_array_equal(host(out.target_passes), ref.target_passes)
    empty = replace(out, trace=None)
    assert empty.trace is None and out.trace is not None


# --------------------------------------------------------------------- exactness (1 unit)
def from_noise_sampler(gamma: int, first_trials: int = 32) -> Any:
    """``sampler(case, n, seed)``: draw an ``ARNoise`` from ``default_rng(seed)`` and decode it
    with the reference from-noise decoder.

    When a rejected token exhausts its ``R`` residual proposals, fresh independent columns are
    appended to the residual arrays (``R`` doubles) and the same noise is decoded again. This
    is exactly the decoder on an unbounded iid residual stream: a decode that finishes reads
    only columns it had, so it returns what it would return with any extension of them, and
    the appended columns are independent of everything drawn before (the decision to append
    depends only on earlier values).
    """

    def sample(case: ARCase, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        noise = ref_ar.draw_ar_noise(n, case.schedule, case.dim, rng=rng, gamma=gamma,
                                     residual_trials=first_trials)
        while True:
            try:
                return ref_ar.ar_speculative_decode_from_noise(
                    case.draft, case.target, case.schedule, noise, gamma=gamma).sequences
            except ResidualBudgetExceeded:
                R, shape = noise.residual_trials, noise.residual_normals.shape
                more = {"residual_component_uniforms": rng.random((n, shape[1], R)),
                        "residual_normals": rng.standard_normal(shape),
                        "residual_accept_uniforms": rng.random((n, shape[1], R))}
                noise = replace(noise, **{k: np.concatenate([getattr(noise, k), v], axis=2)
                                          for k, v in more.items()})

    sample.__name__ = f"reference_ar_from_noise_sampler[gamma={gamma}]"
    return sample


def test_from_noise_decoding_with_drawn_noise_is_exact() -> None:
    """One unit of the false-alarm budget (``assert_equivalent``, quick tier, n = 2000)."""
    rng = np.random.default_rng(20)
    target = ref_ar.MixtureARModel.random(6, 2, 2, rng=rng)
    case = ARCase(target.perturbed(0.5, rng=rng), target, ref_ar.mar_schedule(6, 4, rng=rng),
                  name="ar-from-noise-L6-d2-K2-G4")
    assert_equivalent(from_noise_sampler(gamma=2), case, "from-noise", n=2000)
