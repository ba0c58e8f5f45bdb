"""gpu_impl.ar: batched AR speculative decoding (docs/algorithms.md §5, §7) against cspd_ref.ar.

Deterministic checks (pass structure with p == q, pre-fill counts, the torch model's
conditionals against the float64 reference, padding of unequal groups, validation) and two
seeded statistical ones:

* distribution: ``cspd_ref.verify.verify`` (Rosenblatt transform under the target: pooled PIT
  uniformity, per-column KS, consecutive-column independence, atoms; Holm inside each call) on
  ``N_CASES`` AR cases;
* passes: the exact test of the total number of target passes on a constant-acceptance model
  (``property_tests.test_ar_decoding.exact_pass_test_pvalue``: the exact law of one sequence's
  passes, convolved n times).

Each of the four is one unit of the run's false-alarm budget at ``CALL_ALPHA``
(``property_tests/budget.py``), seeded from ``CSPD_SEED`` with ``statistical_seed``; runs on
``CSPD_TEST_DEVICE`` (cpu by default).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
from scipy import special

import gpu_impl
import gpu_impl.ar_steps as gpu_ar_steps
from cspd_ref import ar as ref_ar
from cspd_ref.cases import ARCase
from cspd_ref.verify import verify
from gpu_impl.ar import GroupTable, MixtureARModel, ar_speculative_decode
from gpu_impl.speculative import ResidualBudgetExceeded
from gpu_impl.testing import device_under_test
from property_tests.budget import CALL_ALPHA, record_exact_call, statistical_seed
from property_tests.test_ar_decoding import exact_pass_test_pvalue

DEVICE = device_under_test()
SEED = int(os.environ.get("CSPD_SEED", "0"))
"""Generator seed of the deterministic (structural) tests; any value works."""
N_CASES = 3


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def ref_pair(seed: int = 11, L: int = 6, d: int = 2, K: int = 2, steps: int = 4,
             size: float = 0.4, coupling: float = 1.5) -> tuple[Any, Any, Any]:
    """(draft, target, schedule) as ``cspd_ref.mutants.catalog.ar_case`` builds them."""
    rng = np.random.default_rng(seed)
    target = ref_ar.MixtureARModel.random(L, d, K, rng=rng, coupling=coupling)
    return target.perturbed(size, rng=rng), target, ref_ar.mar_schedule(L, steps, rng=rng)


def torch_model(ref: Any, dtype: torch.dtype = torch.float64) -> MixtureARModel:
    return MixtureARModel.from_reference(ref, DEVICE, dtype)


# --------------------------------------------------------------------- the model
def test_conditionals_match_reference_in_float64() -> None:
    rng = np.random.default_rng(5)
    L, d, K, B = 9, 3, 3, 16
    ref = ref_ar.MixtureARModel.random(L, d, K, rng=rng, coupling=1.2)
    model = torch_model(ref)
    tokens = rng.normal(0.0, 1.5, (B, L, d))
    known = rng.random((B, L)) < 0.5
    m = 4
    positions = np.stack([rng.choice(np.flatnonzero(~row) if (~row).sum() >= m else
                                     np.arange(L), m, replace=False) for row in known])
    known[np.arange(B)[:, None], positions] = False
    garbage = np.where(known[..., None], tokens, np.nan)  # unknown tokens must not be read
    law = model.conditionals(torch.as_tensor(garbage, device=DEVICE),
                             torch.as_tensor(known, device=DEVICE),
                             torch.as_tensor(positions, device=DEVICE))
    assert tuple(law.batch_shape) == (B, m) and law.dim == d
    for b in range(B):
        expected = ref.conditionals(tokens[b], known[b], positions[b])
        for name in ("weights", "means", "scales"):
            np.testing.assert_allclose(getattr(law, name)[b].cpu().numpy(),
                                       getattr(expected, name), rtol=1e-12, atol=1e-14)


def test_from_reference_round_trip_and_dtype() -> None:
    _, target, _ = ref_pair()
    model = MixtureARModel.from_reference(target, DEVICE, torch.float32)
    assert model.dtype == torch.float32 and model.device.type == DEVICE.type
    assert (model.seq_len, model.dim, model.n_components) == (6, 2, 2)
    back = torch_model(target).to_reference()
    np.testing.assert_array_equal(back.context_weights, target.context_weights)
    assert isinstance(model, gpu_impl.ARModel) and not isinstance(target, gpu_impl.ARModel)


def test_group_table_pads_with_masked_slots() -> None:
    schedule = ref_ar.GroupSchedule(((2,), (0, 4, 5, 1), (3,)))
    table = GroupTable.from_schedule(schedule, DEVICE)
    assert table.positions.tolist() == [[2, 2, 2, 2], [0, 4, 5, 1], [3, 3, 3, 3]]
    assert table.mask.tolist() == [[True, False, False, False], [True] * 4,
                                   [True, False, False, False]]
    assert table.sizes.tolist() == [1, 4, 1] and table.seq_len == 6


# --------------------------------------------------------------------- pass structure
@pytest.mark.parametrize(("L", "steps", "gamma", "prefill", "bonus"), [
    (6, 4, 2, 0.0, True), (6, 4, 1, 0.0, False), (12, 8, 3, 0.25, True),
    (12, 8, 2, 0.5, False), (12, 12, 4, 0.1, True), (5, 5, 8, 0.0, True)])
def test_identical_models_accept_all_and_match_reference_counts(
        L: int, steps: int, gamma: int, prefill: float, bonus: bool) -> None:
    _, target, schedule = ref_pair(seed=L + steps, L=L, steps=steps)
    ref = ref_ar.ar_speculative_decode(target, target, schedule, 2, rng=np.random.default_rng(0),
                                       gamma=gamma, prefill=prefill, bonus_group=bonus)
    model = torch_model(target, torch.float32)
    n = 64
    out = ar_speculative_decode(model, model, schedule, n, generator=gen(SEED), gamma=gamma,
                                prefill=prefill, bonus_group=bonus)
    assert tuple(out.sequences.shape) == (n, L, 2) and out.num_groups == steps
    for name in ("target_passes", "prefill_passes", "drafted_groups", "accepted_groups",
                 "bonus_groups"):
        got = getattr(out, name)
        assert got.dtype == torch.int64 and tuple(got.shape) == (n,)
        assert got.cpu().tolist() == [int(getattr(ref, name)[0])] * n, name
    assert torch.equal(out.accepted_groups, out.drafted_groups)
    assert torch.equal(out.prefill_passes + out.accepted_groups + out.bonus_groups,
                       torch.full_like(out.bonus_groups, steps))
    assert out.groups_per_speculative_pass == pytest.approx(ref.groups_per_speculative_pass)


@pytest.mark.parametrize(("prefill", "steps"), [(0.25, 4), (0.5, 4), (0.3, 10), (0.01, 8),
                                                (1.0, 6)])
def test_prefill_passes_are_ceil_of_prefill_times_groups(prefill: float, steps: int) -> None:
    draft, target, schedule = ref_pair(seed=3, L=12, steps=steps)
    out = ar_speculative_decode(torch_model(draft), torch_model(target), schedule, 50,
                                generator=gen(SEED), gamma=2, prefill=prefill)
    expected = math.ceil(round(prefill * steps, 9))
    assert out.prefill_passes.cpu().tolist() == [expected] * 50
    assert bool((out.target_passes >= out.prefill_passes).all())
    if expected == steps:
        assert int(out.drafted_groups.sum()) == 0
        assert out.target_passes.cpu().tolist() == [steps] * 50
    else:
        assert bool((out.target_passes > out.prefill_passes).all())


# --------------------------------------------------------------------- padding, pace, writes
class SpyModel:
    """Wraps an ARModel; records that no queried position (padding slots included) is known."""

    def __init__(self, inner: MixtureARModel) -> None:
        self.inner = inner
        self.seq_len, self.dim = inner.seq_len, inner.dim
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def conditionals(self, tokens: torch.Tensor, known: torch.Tensor,
                     positions: torch.Tensor) -> gpu_impl.GaussianMixture:
        self.calls += 1
        assert not bool(torch.gather(known, 1, positions).any()), "a known position was queried"
        return self.inner.conditionals(tokens, known, positions)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unequal_groups_every_position_written_exactly_once(
        dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    L = 14
    target = ref_ar.MixtureARModel.random(L, 2, 2, rng=rng, coupling=1.0)
    draft = target.perturbed(0.5, rng=rng)
    order = [int(p) for p in rng.permutation(L)]
    sizes = [1, 5, 1, 5, 1, 1]
    groups, start = [], 0
    for s in sizes:
        groups.append(tuple(order[start:start + s]))
        start += s
    schedule = ref_ar.GroupSchedule(tuple(groups))

    writes: Counter[tuple[int, int]] = Counter()
    real_commit = gpu_ar_steps._commit

    def spy_commit(sequences: torch.Tensor, known: torch.Tensor, rows: torch.Tensor,
                   positions: torch.Tensor, values: torch.Tensor) -> None:
        assert not bool(known[rows, positions].any()), "a known token was overwritten"
        assert bool(torch.isfinite(values).all())
        writes.update(zip(rows.tolist(), positions.tolist(), strict=True))
        real_commit(sequences, known, rows, positions, values)

    monkeypatch.setattr(gpu_ar_steps, "_commit", spy_commit)
    n = 300
    q = SpyModel(MixtureARModel.from_reference(draft, DEVICE, dtype))
    p = SpyModel(MixtureARModel.from_reference(target, DEVICE, dtype))
    out = ar_speculative_decode(q, p, schedule, n, generator=gen(SEED), gamma=3, prefill=0.2)
    assert out.sequences.dtype == dtype
    assert bool(torch.isfinite(out.sequences).all())
    assert len(writes) == n * L and set(writes.values()) == {1}
    G = len(sizes)
    rejected_rounds = G - out.prefill_passes - out.accepted_groups - out.bonus_groups
    rounds = out.target_passes - out.prefill_passes
    assert bool((rejected_rounds >= 0).all()) and bool((rejected_rounds <= rounds).all())
    assert bool((out.accepted_groups <= out.drafted_groups).all())
    assert out.prefill_passes.cpu().tolist() == [2] * n
    # The sequences went at different paces (some rejected, some not).
    assert len(set(out.target_passes.cpu().tolist())) > 1
    assert q.calls > 0 and p.calls > 0


def test_same_seed_same_output_and_global_rng_untouched() -> None:
    draft, target, schedule = ref_pair()
    q, p = torch_model(draft, torch.float32), torch_model(target, torch.float32)
    state = torch.random.get_rng_state()
    a = ar_speculative_decode(q, p, schedule, 100, generator=gen(7))
    b = ar_speculative_decode(q, p, schedule, 100, generator=gen(7))
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.target_passes, b.target_passes)
    assert torch.equal(state, torch.random.get_rng_state())
    empty = ar_speculative_decode(q, p, schedule, 0, generator=gen(7))
    assert tuple(empty.sequences.shape) == (0, 6, 2)


# --------------------------------------------------------------------- distribution
def equal_scale_case() -> ARCase:
    """K = 1, equal scales for draft and target (no scale coupling): reflection residual."""
    rng = np.random.default_rng(23)
    L, d = 6, 2
    target = ref_ar.MixtureARModel(np.zeros((L, 1)), rng.normal(0, 1.5, (L, 1, d)),
                                   rng.uniform(0.5, 1.2, (L, 1, d)),
                                   rng.normal(0, 1.0, (L, L)) / np.sqrt(L), [1.0])
    draft = ref_ar.MixtureARModel(target.logits, target.base_means + rng.normal(0, 0.5, (L, 1, d)),
                                  target.base_scales,
                                  target.context_weights + 0.2 * rng.normal(size=(L, L)), [0.8])
    return ARCase(draft, target, ref_ar.mar_schedule(L, 3, rng=rng), name="ar-equal-scales")


DISTRIBUTION_CASES = [
    (ARCase(*ref_pair(), name="ar-L6-d2"), dict(dtype=torch.float32)),
    (ARCase(*ref_pair(seed=4, steps=4), name="ar-L6-d2-b"),
     dict(dtype=torch.float64, gamma=1, bonus_group=False, prefill=0.25, residual="loop")),
    (equal_scale_case(), dict(dtype=torch.float32, gamma=3, residual="reflection")),
]
assert len(DISTRIBUTION_CASES) == N_CASES


@pytest.mark.parametrize(("index", "options"), [(i, o) for i, (_, o) in
                                                enumerate(DISTRIBUTION_CASES)])
def test_decoded_sequences_follow_the_target(index: int, options: dict[str, Any]) -> None:
    case = DISTRIBUTION_CASES[index][0]
    sampler = gpu_impl.as_ar_sampler(device=DEVICE, **options)
    record_exact_call()
    seed = statistical_seed("gpu-ar-distribution", case.name, index)
    verdict = verify(sampler, case, seed=seed, alpha=CALL_ALPHA, n=2000)
    worst = min(verdict.checks, key=lambda c: c.pvalue)
    assert verdict.equivalent, f"{case.name}: {worst.name} p = {worst.pvalue:.3g}"


# --------------------------------------------------------------------- passes on a known rate
def test_target_passes_follow_their_exact_law_at_constant_acceptance() -> None:
    L, gamma, n, shift = 24, 3, 400, 0.5

    def model(mean: float) -> MixtureARModel:
        return MixtureARModel(np.zeros((L, 1)), np.full((L, 1, 1), mean), np.ones((L, 1, 1)),
                              np.zeros((L, L)), [1.0], device=DEVICE, dtype=torch.float64)

    schedule = ref_ar.GroupSchedule(tuple((i,) for i in range(L)))
    record_exact_call()
    seed = statistical_seed("gpu-ar-passes")
    out = ar_speculative_decode(model(shift), model(0.0), schedule, n, generator=gen(seed % 2**62),
                                gamma=gamma)
    a = 1.0 - float(special.erf(shift / (2.0 * math.sqrt(2.0))))
    passes = out.target_passes.cpu().numpy()
    pvalue = exact_pass_test_pvalue(passes, L, a, gamma)
    assert pvalue > CALL_ALPHA, f"total passes {passes.sum()} (p = {pvalue:.3g}, seed {seed})"


# --------------------------------------------------------------------- validation
def test_decode_validation() -> None:
    draft, target, schedule = ref_pair()
    q, p = torch_model(draft), torch_model(target)

    def call(**kw: Any) -> None:
        args = dict(draft=q, target=p, schedule=schedule, n=4, generator=gen())
        args.update(kw)
        ar_speculative_decode(args.pop("draft"), args.pop("target"), args.pop("schedule"),
                              args.pop("n"), generator=args.pop("generator"), **args)

    cases: list[tuple[dict[str, Any], str]] = [
        (dict(gamma=0), "gamma"), (dict(gamma=1.5), "gamma"),
        (dict(prefill=-0.1), "prefill"), (dict(prefill=1.5), "prefill"),
        (dict(prefill=float("nan")), "prefill"), (dict(prefill=True), "prefill"),
        (dict(prefill="half"), "prefill"),
        (dict(bonus_group=1), "bonus_group"), (dict(residual="fast"), "residual"),
        (dict(max_trials=0), "max_trials"), (dict(n=-1), "n"),
        (dict(generator=None), "generator"), (dict(generator=np.random.default_rng(0)),
                                              "generator"),
        (dict(draft=draft), "draft"), (dict(target="model"), "target"),
        (dict(schedule=((0, 1),)), "schedule"),
        (dict(schedule=ref_ar.mar_schedule(5, 2, rng=np.random.default_rng(0))), "schedule"),
        (dict(target=torch_model(ref_ar.MixtureARModel.random(
            6, 3, 2, rng=np.random.default_rng(0)))), "target"),
        (dict(target=torch_model(target, torch.float32)), "target"),
        (dict(residual="reflection"), "residual"),   # K = 2: reflection does not apply
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=f"^{name}"):
            call(**kwargs)
    if DEVICE.type != "cpu":
        with pytest.raises(ValueError, match="^generator"):
            call(generator=torch.Generator().manual_seed(0))
    other = GroupTable.from_schedule(schedule, DEVICE)
    call(schedule=other)  # a prebuilt table on the models' device is accepted

    class WrongShape(SpyModel):
        def conditionals(self, tokens: torch.Tensor, known: torch.Tensor,
                         positions: torch.Tensor) -> gpu_impl.GaussianMixture:
            return self.inner.conditionals(tokens, known, positions[:, :1])

    with pytest.raises(ValueError, match="^draft: conditionals returned"):
        call(draft=WrongShape(q))


def test_residual_budget_raises_instead_of_substituting() -> None:
    def model(mean: float, scale: float) -> MixtureARModel:
        return MixtureARModel(np.zeros((4, 1)), np.full((4, 1, 1), mean),
                              np.full((4, 1, 1), scale), np.zeros((4, 4)), [1.0],
                              device=DEVICE, dtype=torch.float64)

    schedule = ref_ar.GroupSchedule(((0, 1), (2, 3)))
    with pytest.raises(ResidualBudgetExceeded):
        ar_speculative_decode(model(3.0, 1.0), model(0.0, 0.3), schedule, 500, generator=gen(),
                              max_trials=1)


def test_model_and_table_validation() -> None:
    _, target, _ = ref_pair()
    good = dict(logits=target.logits, base_means=target.base_means,
                base_scales=target.base_scales, context_weights=target.context_weights,
                mean_coupling=target.mean_coupling)
    bad: list[tuple[str, Any]] = [
        ("base_scales", -target.base_scales), ("base_means", target.base_means[:, :1]),
        ("context_weights", target.context_weights[:3]), ("mean_coupling", [1.0]),
        ("logits", np.full((6, 2), np.nan)),
    ]
    for name, value in bad:
        with pytest.raises(ValueError, match=f"^{name}"):
            MixtureARModel(**{**good, name: value}, device=DEVICE)
    with pytest.raises(ValueError, match="^scale_coupling"):
        MixtureARModel(**good, scale_coupling=float("inf"), device=DEVICE)
    with pytest.raises(ValueError, match="^model"):
        MixtureARModel.from_reference("model", DEVICE)
    with pytest.raises(ValueError, match="^schedule"):
        GroupTable.from_schedule(((0,), (1,)), DEVICE)

    model = torch_model(target)
    tokens = torch.zeros((2, 6, 2), dtype=torch.float64, device=DEVICE)
    known = torch.zeros((2, 6), dtype=torch.bool, device=DEVICE)
    pos = torch.tensor([[0, 1], [2, 3]], device=DEVICE)
    model.conditionals(tokens, known, pos)
    for name, args in [("tokens", (tokens[:, :5], known, pos)),
                       ("tokens", (tokens.float(), known, pos)),
                       ("known", (tokens, known.long(), pos)),
                       ("positions", (tokens, known, pos.float())),
                       ("positions", (tokens, known, pos + 5)),
                       ("tokens", (tokens + torch.nan, ~known, pos))]:
        with pytest.raises(ValueError, match=f"^{name}"):
            model.conditionals(*args)


def test_as_ar_sampler_validation_and_contract() -> None:
    for kwargs, name in [(dict(gamma=0), "gamma"), (dict(prefill=2.0), "prefill"),
                         (dict(residual="x"), "residual"), (dict(dtype=torch.int64), "dtype"),
                         (dict(device="nowhere"), "device"), (dict(bonus_group=None),
                                                              "bonus_group"),
                         (dict(max_trials=0), "max_trials")]:
        with pytest.raises(ValueError, match=f"^{name}"):
            gpu_impl.as_ar_sampler(**kwargs)
    sampler = gpu_impl.as_ar_sampler(device=DEVICE, dtype=torch.float64, gamma=3)
    case = DISTRIBUTION_CASES[0][0]
    out = sampler(case, 5, 1)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (5, 6, 2)
    assert out.dtype == torch.float64 and out.device.type == DEVICE.type
    assert torch.equal(out, sampler(case, 5, 1))
    with pytest.raises(ValueError, match="^case"):
        sampler(object(), 5, 1)
    with pytest.raises(ValueError, match="^seed"):
        sampler(case, 5, -1)
