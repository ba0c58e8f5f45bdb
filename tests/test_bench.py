"""The sampler benchmark runs (a tiny size, so it cannot rot); its figures are in BENCHMARKS.md,
never asserted here."""

from __future__ import annotations

import json

import pytest
import torch

from gpu_impl import bench


def test_benchmark_runs_every_configuration_at_a_tiny_size(
        capsys: pytest.CaptureFixture) -> None:
    assert bench.main(["--device", "cpu", "--sizes", "256", "--warmup", "0", "--repeats", "1",
                       "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["rows"]
    assert {(r["scales"], r["tv"]) for r in rows} == {
        (s, tv) for s in ("equal", "unequal") for tv in bench.TARGET_TVS}
    assert {r["sampler"] for r in rows} == {"draft only", "gpu_impl (reflection)",
                                            "gpu_impl (batched)", "naive",
                                            "fused step (eager), noise given"}
    assert all(r["median_ms"] > 0 and r["bound_ms"] > 0 for r in rows)


@pytest.mark.parametrize("tv", bench.TARGET_TVS)
def test_configurations_have_the_stated_total_variation(tv: float) -> None:
    """The equal-scale shift is exact (2 Phi(delta/2) - 1); the unequal-scale ratio is found by
    bisection on a Monte Carlo TV and must land within 5% of the target."""
    import numpy as np

    from cspd_ref import GaussianMixture
    from cspd_ref.theory import tv_distance

    d = 16
    shift = bench.equal_scale_shift(tv)
    mean = np.zeros((1, d))
    mean[0, 0] = shift
    equal = tv_distance(GaussianMixture([1.0], mean, np.ones((1, d))),
                        GaussianMixture([1.0], np.zeros((1, d)), np.ones((1, d))),
                        rng=np.random.default_rng(1)).value
    assert equal == pytest.approx(tv, rel=1e-6)
    ratio = bench.unequal_scale_ratio(tv, d)
    unequal = tv_distance(GaussianMixture([1.0], np.zeros((1, d)), np.full((1, d), ratio)),
                          GaussianMixture([1.0], np.zeros((1, d)), np.ones((1, d))),
                          rng=np.random.default_rng(2)).value
    assert unequal == pytest.approx(tv, rel=0.05)


def test_naive_baseline_returns_one_finite_token_per_row() -> None:
    generator = torch.Generator().manual_seed(0)
    draft, target = bench.token_pair(512, 4, 0.5, 1.0, torch.device("cpu"), generator=generator)
    out = bench.naive_speculative_sample(draft, target, generator=generator)
    assert out.shape == (512, 4) and bool(torch.isfinite(out).all())


def test_reference_mode_runs_at_a_tiny_size(capsys: pytest.CaptureFixture) -> None:
    assert bench.main(["--reference", "256", "--warmup", "0", "--repeats", "1"]) == 0
    table = capsys.readouterr().out
    assert "cspd_ref (reflection)" in table and "cspd_ref (batched)" in table
