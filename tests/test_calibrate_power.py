"""The power-curve tool's bookkeeping (``property_tests.calibrate_power``), on synthetic records
and one tiny real task."""

from __future__ import annotations

from pathlib import Path

from property_tests.calibrate_power import (
    POWER_POINTS,
    describe,
    detection_table,
    parse_points,
    run_point,
    summarise,
)


def test_points_span_every_family() -> None:
    families = {p.family for p in POWER_POINTS}
    assert {"capped_residual", "draft_temperature", "mass_toward_draft", "residual_from_draft",
            "low_precision_log_density", "single_axis_shift"} <= families
    assert parse_points("0,2") == [0, 2] and len(parse_points("all")) == len(POWER_POINTS)


def test_summary_counts_detections_and_reports_the_smallest_effect_always_detected(
        tmp_path: Path) -> None:
    effect = {"tier": "effect", "seed": 0, "ks_noise": 0.001, "atom_mass": 0.0,
              "acceptance_deviation": None, "ks_direction": "axis[0]"}
    records = [{**effect, "workload": "p8", "ks": 0.05}, {**effect, "workload": "p10", "ks": 0.01},
               *[{"workload": "p8", "tier": "full", "seed": s, "detected": True,
                  "families": ["ks_1d"]} for s in range(5)],
               *[{"workload": "p10", "tier": "full", "seed": s, "detected": s < 3,
                  "families": ["ks_1d"] if s < 3 else []} for s in range(5)]]
    table = detection_table(records)
    assert table[8]["detected"] == 5 and table[10]["detected"] == 3
    text = summarise(records, tmp_path / "curve.png", ["command: x"], "curve.png")
    assert "| p8 |" in text and "5/5" in text and "3/5" in text
    assert f"| {POWER_POINTS[8].family} | 0.0500 | p8 |" in text
    assert (tmp_path / "curve.png").exists()


def test_one_real_task_of_each_kind_runs() -> None:
    index = next(i for i, p in enumerate(POWER_POINTS) if p.family == "draft_temperature")
    effect = run_point(f"p{index}", "effect", 0, n=20_000)
    assert effect["ks"] > 0.0 and "ks_noise" in effect
    run = run_point(f"p{index}", "full", 1, n=20_000)
    assert run["n"] == 20_000 and isinstance(run["detected"], bool)
    assert describe(POWER_POINTS[index]).startswith("draft_temperature(")
