"""The p-value calibration tool: a tiny run on a 2-worker Dask LocalCluster, resuming, and the
summary's maths on synthetic p-values."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from property_tests import calibrate, calibrate_pvalues
from property_tests.calibrate_pvalues import (
    VERDICT_FAMILY,
    family,
    group_stats,
    summarise,
)

TINY = ["--workloads", "token-1d,diffusion-linear-aligned", "--tier", "quick", "--runs", "3",
        "--n", "300", "--seed0", "7", "--workers", "2", "--no-progress"]


def tiny_args(tmp_path: Path) -> list[str]:
    return [*TINY, "--results", str(tmp_path / "cal" / "pvalues.jsonl"),
            "--out", str(tmp_path / "calibration.md")]


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tiny_run_on_local_cluster_then_resume(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    results = tmp_path / "cal" / "pvalues.jsonl"
    assert calibrate_pvalues.main(tiny_args(tmp_path)) == 0

    records = read_lines(results)
    assert len(records) == 6
    keys = {(r["workload"], r["tier"], r["seed"]) for r in records}
    assert keys == {(w, "quick", s) for w in ("token-1d", "diffusion-linear-aligned")
                    for s in (7, 8, 9)}
    for r in records:
        assert r["n"] == 300
        assert r["seconds"] >= 0
        assert 0.0 <= r["min_adjusted_pvalue"] <= 1.0
        assert r["pvalues"] and all(0.0 <= p <= 1.0 for p in r["pvalues"].values())

    report = (tmp_path / "calibration.md").read_text()
    families = {family(name) for r in records for name in r["pvalues"]}
    for fam in [*families, VERDICT_FAMILY]:
        assert f"| {fam} | " in report
    assert "LocalCluster, 2 worker processes" in report
    pngs = sorted(p.name for p in results.parent.glob("ecdf_*.png"))
    assert len(pngs) == len(families) + 1

    # A second invocation (through `calibrate pvalues`) finds every task done: no Dask at all.
    before = results.read_text()

    def no_work(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise AssertionError("the resumed run submitted work")

    monkeypatch.setattr(calibrate_pvalues, "execute", no_work)
    assert calibrate.main(["pvalues", *tiny_args(tmp_path)]) == 0
    assert results.read_text() == before
    assert "python -m property_tests.calibrate pvalues" in (tmp_path / "calibration.md").read_text()


def test_resume_redoes_only_missing_and_torn_lines(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "cal" / "pvalues.jsonl"
    results.parent.mkdir(parents=True)
    done = [{"workload": "token-1d", "tier": "quick", "seed": s, "n": 300, "seconds": 0.1,
             "min_adjusted_pvalue": 0.5, "pvalues": {"ks_1d": 0.5, "atoms": 1.0}}
            for s in (7, 8)]
    torn = json.dumps({**done[0], "seed": 9})[:40]  # a run killed mid-write
    results.write_text("".join(json.dumps(r) + "\n" for r in done) + torn)
    seen: list[Any] = []

    def fake_execute(tasks: Any, path: Path, **kwargs: Any) -> tuple[int, int]:
        seen.extend(tasks)
        return 0, 2

    monkeypatch.setattr(calibrate_pvalues, "execute", fake_execute)
    argv = tiny_args(tmp_path)
    argv[argv.index("token-1d,diffusion-linear-aligned")] = "token-1d"
    assert calibrate_pvalues.main(argv) == 0
    assert seen == [("token-1d", "quick", 9)]


def test_missing_distributed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"\[distributed\]"):
        calibrate_pvalues._import_distributed()


def test_family_strips_the_index() -> None:
    assert family("ks_projection[3]") == "ks_projection"
    assert family("atoms") == "atoms"
    assert family("atoms[#2]") == "atoms"


def test_uniform_pvalues_are_not_flagged() -> None:
    p = np.random.default_rng(1).uniform(size=2000)
    s = group_stats(p)
    assert s.ks_p > 0.01
    k, lo, hi = s.flags[0.05]
    ci = stats.binomtest(k, 2000).proportion_ci(0.95, method="exact")
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert lo <= 0.05 <= hi
    assert s.min_p == pytest.approx(p.min())


def test_superuniform_pvalues_are_not_flagged() -> None:
    # Conservative p-values (CDF below the diagonal, and atoms at 1) satisfy the null.
    p = np.concatenate([np.random.default_rng(2).uniform(size=500) ** 0.5, np.ones(500)])
    assert group_stats(p).ks_p > 0.5


def test_pvalues_concentrated_near_zero_are_flagged() -> None:
    p = np.random.default_rng(3).uniform(size=500) ** 3
    s = group_stats(p)
    assert s.ks_p < 1e-6
    assert s.flags[0.05][1] > 0.05  # the interval's lower end lies above the level


def synthetic_records(power: float, runs: int = 400) -> list[dict[str, Any]]:
    rng = np.random.default_rng(4)
    out = []
    for seed in range(runs):
        u = rng.uniform(size=3) ** power
        out.append({"workload": "synthetic", "tier": "quick", "seed": seed, "n": 100,
                    "seconds": 0.01, "min_adjusted_pvalue": float(min(1.0, 2 * u[:2].min())),
                    "pvalues": {"proj[0]": float(u[0]), "proj[1]": float(u[1]),
                                "single": float(u[2])}})
    return out


def test_summary_of_calibrated_pvalues_has_no_alert(tmp_path: Path) -> None:
    text = summarise(synthetic_records(1.0), figures_dir=tmp_path, context=["command: `x`"])
    assert "- command: `x`" in text
    for fam in ("proj", "single", VERDICT_FAMILY):
        assert f"| {fam} | synthetic | quick | 400 |" in text
    assert "| proj | synthetic | quick | 400 | 800 |" in text
    assert "ALERT**" not in text
    assert (tmp_path / "ecdf_proj.png").exists()


def test_summary_flags_pvalues_concentrated_near_zero() -> None:
    text = summarise(synthetic_records(3.0))
    rows = [ln for ln in text.splitlines() if ln.startswith("| proj | synthetic")]
    assert len(rows) == 1 and rows[0].endswith("| **ALERT** |")
