"""The MAR-style toy (gpu_impl.mar_toy): causality over groups, the decoders on shared noise,
the two-sample battery on the speculative output (one budget unit), and the end-to-end benchmark
at a tiny size so it cannot rot (its figures are in BENCHMARKS.md, never asserted here)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from cspd_ref.stats import holm
from gpu_impl.mar_toy import bench
from gpu_impl.mar_toy.decode import (
    speculative_generate,
    target_generate,
    to_image_space,
)
from gpu_impl.mar_toy.model import MARToy, MARToyConfig
from gpu_impl.mar_toy.schedule import GroupLayout, cosine_group_sizes
from property_tests.budget import CALL_ALPHA, record_exact_call, statistical_seed

TINY = bench.PRESETS["tiny"]


def seeded_model(config: MARToyConfig, seed: int, dtype: torch.dtype = torch.float64) -> MARToy:
    return MARToy.seeded(config, seed=seed).to(dtype).eval()


def perturbed_draft(target: MARToy, scale: float, seed: int) -> MARToy:
    """The target with its transformer weights perturbed: a draft of the same shape."""
    draft = copy.deepcopy(target)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in draft.transformer.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return draft


@pytest.mark.parametrize(("tokens", "groups"), [(16, 4), (64, 16), (64, 32), (256, 64), (7, 7)])
def test_cosine_schedule_reveals_every_token_once_at_least_one_per_step(tokens: int,
                                                                        groups: int) -> None:
    sizes = cosine_group_sizes(tokens, groups)
    assert len(sizes) == groups and sum(sizes) == tokens and min(sizes) >= 1


def test_cosine_schedule_rejects_more_groups_than_tokens() -> None:
    with pytest.raises(ValueError, match="num_groups"):
        cosine_group_sizes(4, 5)


def test_layout_positions_are_the_groups_ranges() -> None:
    layout = GroupLayout((1, 2, 3))
    items, positions = layout.positions(torch.tensor([2, 0, 1]))
    assert items.tolist() == [0, 0, 0, 1, 2, 2]
    assert positions.tolist() == [3, 4, 5, 0, 1, 2]


def test_seeded_and_derived_models_neither_read_nor_change_the_global_generator() -> None:
    with torch.random.fork_rng(devices=[]):
        state = torch.get_rng_state()
        first = MARToy.seeded(TINY, seed=5)
        assert torch.equal(torch.get_rng_state(), state)
        torch.rand(3)  # move the global generator on: the weights must not follow it
        second = MARToy.seeded(TINY, seed=5)
        state = torch.get_rng_state()
        second.derived_draft(1)
        assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values(), strict=True))


def test_queries_see_only_earlier_groups() -> None:
    """Changing the tokens of group g or later leaves the conditioning of group g unchanged
    (exactly); changing an earlier group's token changes it."""
    model = seeded_model(TINY, 0)
    layout = TINY.layout()
    order, _ = bench.seeded_batch(model, 3, 1)
    tokens = torch.randn((3, TINY.num_tokens, TINY.token_dim), dtype=torch.float64)
    g = 2
    start = layout.starts[g]
    queries = torch.arange(start, start + layout.sizes[g]).expand(3, -1)
    with torch.no_grad():
        z = model.transformer(tokens, order, queries)
        later = tokens.clone()
        later[:, start:] = torch.randn_like(later[:, start:])
        assert torch.equal(model.transformer(later, order, queries), z)
        earlier = tokens.clone()
        earlier[:, 0] += 1.0
        assert not torch.allclose(model.transformer(earlier, order, queries), z)


@pytest.mark.parametrize(("gamma", "prefill"), [(1, 0.0), (2, 0.0), (3, 0.5), (8, 0.0)])
def test_a_draft_equal_to_the_target_reproduces_target_only_generation(gamma: int,
                                                                       prefill: float) -> None:
    """On shared noise, every draft is accepted and the speculative tokens are the target-only
    tokens (float64; the passes differ only in their padding of the queries)."""
    model = seeded_model(TINY, 0)
    order, noise = bench.seeded_batch(model, 5, 2)
    expected, _ = target_generate(model, order, noise)
    tokens, stats = speculative_generate(model, model, order, noise, gamma=gamma,
                                         prefill=prefill)
    assert stats.groups_accepted == stats.groups_examined
    assert torch.allclose(tokens, expected, rtol=0, atol=1e-12)


def test_speculative_counts_are_consistent() -> None:
    target = seeded_model(TINY, 0)
    draft = perturbed_draft(target, 0.001, 1)
    order, noise = bench.seeded_batch(target, 32, 3)
    tokens, stats = speculative_generate(draft, target, order, noise, gamma=2)
    assert bool(torch.isfinite(tokens).all())
    assert 0 < stats.groups_accepted < stats.groups_examined
    assert stats.target_passes == stats.rounds <= TINY.num_groups
    assert 0 < stats.tokens_rejected < stats.tokens_drafted


def test_decoders_refuse_mismatched_inputs() -> None:
    model = seeded_model(TINY, 0)
    order, noise = bench.seeded_batch(model, 2, 0)
    with pytest.raises(ValueError, match="gamma"):
        speculative_generate(model, model, order, noise, gamma=0)
    with pytest.raises(ValueError, match="prefill"):
        speculative_generate(model, model, order, noise, gamma=1, prefill=1.5)
    with pytest.raises(ValueError, match="order"):
        target_generate(model, order[:, :3], noise)
    other = seeded_model(MARToyConfig(**{**TINY.__dict__, "num_groups": 3}), 0)
    with pytest.raises(ValueError, match="draft"):
        speculative_generate(other, model, order, noise, gamma=1)
    with pytest.raises(ValueError, match="draft"):
        speculative_generate(model.float(), seeded_model(TINY, 0), order, noise, gamma=1)


def test_decoders_refuse_bad_orders_and_noise() -> None:
    model = seeded_model(TINY, 0)
    order, noise = bench.seeded_batch(model, 2, 0)
    repeated = order.clone()
    repeated[0, 1] = repeated[0, 0]
    with pytest.raises(ValueError, match="permutation"):
        target_generate(model, repeated, noise)
    with pytest.raises(ValueError, match="int64"):
        target_generate(model, order.int(), noise)
    with pytest.raises(ValueError, match="starts"):
        target_generate(model, order, replace(noise, starts=noise.starts.float()))
    with pytest.raises(ValueError, match="eps"):
        target_generate(model, order, replace(noise, eps=noise.eps[1:]))
    with pytest.raises(ValueError, match=r"noise\.accept_uniforms"):
        target_generate(model, order, replace(noise, accept_uniforms=noise.accept_uniforms + 1))


def test_to_image_space_inverts_the_order() -> None:
    order = torch.tensor([[2, 0, 1]])
    tokens = torch.tensor([[[20.0], [0.0], [10.0]]])
    assert to_image_space(tokens, order).flatten().tolist() == [0.0, 10.0, 20.0]


def images(kind: str, draft: MARToy, target: MARToy, n: int, seed: int) -> np.ndarray:
    """``n`` images from ``kind`` as one seeded batch (``bench.generate_images``), gamma 2."""
    return bench.generate_images(kind, draft, target, n, n, seed, 2, progress=lambda _: None)


def test_speculative_output_passes_the_two_sample_battery_and_the_draft_does_not() -> None:
    """Exactness end to end: speculative images against target-only images (independent noise,
    seeded from ``CSPD_SEED``) pass the two-sample battery at ``CALL_ALPHA`` (one budget unit);
    the draft's own images (a sampler that accepts every draft) are flagged at the same n. The
    draft's perturbation (0.03) is chosen for that: with CSPD_SEED 20241118 and 1-4 the draft's
    smallest Holm-adjusted p-value was 3e-11 to 6e-9 (the speculative images' 0.33 to 1); at 0.02
    it was 8.6e-6, above the level. Speculative tokens are mostly rejected and reflected here;
    a draft equal to the target covers the all-accepted regime above."""
    target = seeded_model(TINY, 0)
    draft = perturbed_draft(target, 0.03, 1)
    n = 3000
    seed = statistical_seed("mar_toy", "two-sample battery")
    reference = images("target", draft, target, n, seed)
    record_exact_call()
    checks = bench.two_sample_battery(images("speculative", draft, target, n, seed + 1),
                                      reference, generator=np.random.default_rng(seed + 2))
    assert max(c.min_pvalue for c in checks) < CALL_ALPHA / len(checks)
    adjusted = holm([c.pvalue for c in checks])
    assert adjusted.min() > CALL_ALPHA, [c.name for c in checks]
    bad = bench.two_sample_battery(images("draft", draft, target, n, seed + 3), reference,
                                   generator=np.random.default_rng(seed + 4))
    assert holm([c.pvalue for c in bad]).min() <= CALL_ALPHA


def test_theoretical_speedup_matches_the_formula_and_its_limits() -> None:
    assert bench.theoretical_speedup(0.8, 3, 0.1) == pytest.approx(
        (1 - 0.8 ** 4) / (0.2 * 1.3))
    assert bench.theoretical_speedup(1.0, 3, 0.0) == 4.0
    assert bench.theoretical_speedup(0.0, 3, 0.0) == 1.0
    s = bench.theoretical_speedup(0.8, 3, 0.1)
    assert bench.theoretical_speedup(0.8, 3, 0.1, 4, 16) == pytest.approx(16 / (4 + 12 / s))


def test_end_to_end_benchmark_runs_at_a_tiny_size(capsys: pytest.CaptureFixture,
                                                  tmp_path: object) -> None:
    args = ["--preset", "tiny", "--train-steps", "3", "--distil-steps", "3", "--train-batch",
            "4", "--draft-layers", "1", "--batch", "4", "--gammas", "1", "2", "--prefills", "0",
            "0.5", "--modes", "eager", "compiled", "--warmup", "1", "--repeats", "1",
            "--battery", "64", "--json", "--save", str(tmp_path)]
    assert bench.main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    speculative = [r for r in doc["rows"] if r["decoder"] == "speculative"]
    assert len(speculative) == 2 * 2 * 2
    assert all(r["median_ms"] > 0 and r["theoretical"] > 0 for r in speculative)
    assert set(doc["battery"]) >= {"speculative", "draft"}
    assert bench.main(["--load", str(tmp_path), "--batch", "2", "--gammas", "1", "--prefills",
                       "0", "--modes", "eager", "--warmup", "0", "--repeats", "1"]) == 0
