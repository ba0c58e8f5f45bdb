"""Conformance vectors (``cspd_ref.vectors``, docs/vectors.md): export, check, exit codes.

The committed set ``reports/vectors/`` must (1) pass for the reference and for ``gpu_impl`` in
float64 and float32 on ``CSPD_TEST_DEVICE``, (2) be exactly what ``export_vectors`` writes today
(so it cannot go stale), (3) honour the rules its manifest states (float32-exact noise and
parameters, every decision at least ``decision_margin`` from its boundary). A tampered array
must give exit 1; an unreadable set or an implementation that cannot be judged, exit 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cspd_ref.loading import load_callable
from cspd_ref.vectors import (
    KINDS,
    VectorSetError,
    check_vectors,
    export_vectors,
    read_manifest,
    reference_replay,
    torch_replay,
)
from cspd_ref.vectors import kind as kind_module
from cspd_ref.vectors.check import compare_array
from cspd_ref.vectors.cli import main
from cspd_ref.vectors.kind import DECISION_MARGIN, settle_noise
from cspd_ref.vectors.layout import load_role
from gpu_impl.testing import device_under_test

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "reports" / "vectors"
DEVICE = str(device_under_test())
TOKEN_KINDS = ["token_loop", "token_batched", "token_reflection"]


@pytest.fixture
def vector_copy(tmp_path: Path) -> Path:
    """A private copy of the committed set, free to tamper with."""
    target = tmp_path / "vectors"
    shutil.copytree(COMMITTED, target)
    return target


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --------------------------------------------------------------------- the committed set
def test_committed_set_is_what_export_writes_today(tmp_path: Path) -> None:
    export_vectors(tmp_path / "fresh")
    fresh = sorted(p.relative_to(tmp_path / "fresh") for p in (tmp_path / "fresh").rglob("*")
                   if p.is_file())
    committed = sorted(p.relative_to(COMMITTED) for p in COMMITTED.rglob("*") if p.is_file())
    assert fresh == committed
    for rel in fresh:
        assert (tmp_path / "fresh" / rel).read_bytes() == (COMMITTED / rel).read_bytes(), rel


def test_committed_set_is_small_and_covers_every_kind() -> None:
    manifest = read_manifest(COMMITTED)
    assert {v.kind for v in manifest.vectors} == set(KINDS)
    total = sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file())
    assert total < 500_000, total
    batched = [v for v in manifest.vectors if v.kind == "token_batched"]
    shapes = [{a.name: a.shape for a in v.arrays} for v in batched]
    assert any(s["target_means"][0] > 1 and s["target_means"][1] > 1 for s in shapes)


@pytest.mark.parametrize(("impl", "dtype"), [("ref", "float64"), ("gpu", "float64"),
                                             ("gpu", "float32")])
def test_committed_set_passes(impl: str, dtype: str) -> None:
    replay = reference_replay if impl == "ref" else torch_replay(dtype, DEVICE)
    report = check_vectors(COMMITTED, replay, dtype=dtype)
    assert report.exit_code == 0, "\n".join(report.lines())
    assert len(report.outcomes) == len(read_manifest(COMMITTED).vectors)
    assert all(len(o.arrays) == len(KINDS[o.kind].outputs) for o in report.outcomes)


def test_every_file_loads_without_pickle() -> None:
    manifest = read_manifest(COMMITTED)
    files = sorted(COMMITTED.rglob("*.npy"))
    assert len(files) == len(manifest.files())
    for path in files:
        array = np.load(path, allow_pickle=False)
        assert array.dtype.kind in "fbi" and not array.dtype.hasobject
    json.loads((COMMITTED / "manifest.json").read_text(encoding="utf-8"))


def test_committed_vectors_honour_the_stated_rules() -> None:
    manifest = read_manifest(COMMITTED)
    assert manifest.decision_margin == DECISION_MARGIN
    for vector in manifest.vectors:
        kind = KINDS[vector.kind]
        params = load_role(COMMITTED, vector, "param")
        noise = load_role(COMMITTED, vector, "noise")
        outputs = load_role(COMMITTED, vector, "output")
        for name, array in {**params, **noise}.items():
            assert np.array_equal(array.astype(np.float32).astype(np.float64), array), name
        for name, array in noise.items():
            if "uniforms" in name:
                assert ((array >= 0) & (array < 1)).all(), name
        margins = kind.row_margins(params, noise, outputs)
        assert margins.min() > manifest.decision_margin, vector.name
        assert 0 < outputs["accepted"].sum() < outputs["accepted"].size, vector.name


# --------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kinds", [TOKEN_KINDS, ["diffusion_aligned", "diffusion_joint", "ar"]])
def test_export_then_check_round_trip(tmp_path: Path, kinds: list[str]) -> None:
    manifest = export_vectors(tmp_path, kinds=kinds)
    assert {v.kind for v in manifest.vectors} == set(kinds)
    for replay, dtype in ((reference_replay, "float64"),
                          (torch_replay("float64", DEVICE), "float64"),
                          (torch_replay("float32", DEVICE), "float32")):
        report = check_vectors(tmp_path, replay, dtype=dtype)
        assert report.exit_code == 0, "\n".join(report.lines())


def test_settle_noise_redraws_rows_near_a_decision_boundary(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kind = KINDS["token_batched"]
    case = kind.cases()[0]
    monkeypatch.setattr(kind_module, "DECISION_MARGIN", 0.02)
    noise, outputs = settle_noise(kind, case)
    assert kind.row_margins(case.params, noise, outputs).min() > 0.02
    first = kind.draw_noise(case, case.sizes["n"], rng=np.random.default_rng(case.seed))
    assert not np.array_equal(first["accept_uniforms"], noise["accept_uniforms"])


def test_export_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="^directory: "):
        export_vectors(tmp_path, kinds=["token_reflection"])
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="^kinds: "):
        export_vectors(tmp_path / "x", kinds=["no_such_kind"])
    with pytest.raises(ValueError, match="^directory: expected a path"):
        export_vectors(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^directory: expected a path"):
        check_vectors(3, reference_replay)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^replay: "):
        check_vectors(COMMITTED, "ref")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^dtype: "):
        check_vectors(COMMITTED, reference_replay, dtype="float16")


def test_export_replaces_an_earlier_set(vector_copy: Path) -> None:
    manifest = export_vectors(vector_copy, kinds=["token_reflection"])
    left = sorted(p.relative_to(vector_copy).as_posix() for p in vector_copy.rglob("*.npy"))
    assert left == sorted(manifest.files())


# --------------------------------------------------------------------- exit 1
def test_perturbed_sample_is_a_mismatch(vector_copy: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = vector_copy / "token_batched_d3_mixtures" / "samples.npy"
    samples = np.load(path, allow_pickle=False)
    samples[17, 1] += 1e-3
    np.save(path, samples, allow_pickle=False)
    code, out, err = run_cli(["check", str(vector_copy), "--impl", "ref"], capsys)
    assert code == 1
    assert "MISMATCH  vector token_batched_d3_mixtures (token_batched)" in out
    assert "array samples: 1 of 384 elements beyond tolerance; worst at [17, 1]" in out
    assert "np.float64" not in out and "array(" not in out
    total = len(read_manifest(vector_copy).vectors)
    assert_one_line_error(err, f"1 of {total} vectors mismatch")


def test_flipped_accept_bit_is_a_mismatch(vector_copy: Path) -> None:
    path = vector_copy / "diffusion_joint_d2" / "accepted.npy"
    accepted = np.load(path, allow_pickle=False)
    accepted[5] = ~accepted[5]
    np.save(path, accepted, allow_pickle=False)
    report = check_vectors(vector_copy, torch_replay("float32", DEVICE), dtype="float32",
                           kinds=["diffusion_joint"])
    assert report.exit_code == 1
    [bad] = [o for o in report.outcomes if o.status == "mismatch"]
    [comparison] = [a for a in bad.arrays if not a.ok]
    assert (bad.name, comparison.name, comparison.mismatched) == ("diffusion_joint_d2",
                                                                  "accepted", 1)
    assert comparison.worst_index == (5,) and comparison.actual == (not comparison.expected)
    assert "first at [5]: expected" in comparison.describe()


def test_nan_marks_a_test_never_made(vector_copy: Path) -> None:
    path = vector_copy / "ar_d2_gamma2_bonus" / "accept_log_ratios.npy"
    ratios = np.load(path, allow_pickle=False)
    never = np.argwhere(np.isnan(ratios))[0]
    made = np.argwhere(~np.isnan(ratios))[0]
    ratios[tuple(never)] = 0.0
    ratios[tuple(made)] = np.nan
    np.save(path, ratios, allow_pickle=False)
    report = check_vectors(vector_copy, reference_replay, kinds=["ar"])
    assert report.exit_code == 1
    [bad] = [a for o in report.outcomes for a in o.arrays if not a.ok]
    assert bad.name == "accept_log_ratios" and bad.mismatched == 2


def test_tolerance_follows_the_coarser_dtype() -> None:
    expected = np.array([1.0, -2.0])
    close32 = (expected * (1 + 4 * np.finfo(np.float32).eps)).astype(np.float32)
    assert compare_array("x", expected, close32, compute_eps=np.finfo(np.float64).eps,
                         factor=512.0).ok
    assert not compare_array("x", expected, close32.astype(np.float64),
                             compute_eps=np.finfo(np.float64).eps, factor=512.0).ok
    nan = compare_array("x", expected, [1.0, np.nan], compute_eps=1e-16, factor=512.0)
    assert nan.mismatched == 1 and nan.worst_index == (1,)
    shape = compare_array("x", expected, [1.0], compute_eps=1e-16, factor=512.0)
    assert shape.mismatched == 2 and "returned shape [1], expected [2]" in shape.describe()


# --------------------------------------------------------------------- exit 2
def test_missing_array_is_undecided(vector_copy: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    (vector_copy / "token_loop_d1_bimodal" / "residual_normals.npy").unlink()
    code, _, err = run_cli(["check", str(vector_copy), "--impl", "ref"], capsys)
    assert code == 2
    assert_one_line_error(err, "could not decide", "token_loop_d1_bimodal",
                          "missing file 'token_loop_d1_bimodal/residual_normals.npy'")


@pytest.mark.parametrize("content", ["{not json", '{"format": "cspd-conformance-vectors", '
                                                  '"format_version": 99}', "[]"])
def test_corrupt_manifest_is_undecided(vector_copy: Path, content: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (vector_copy / "manifest.json").write_text(content)
    code, out, err = run_cli(["check", str(vector_copy), "--impl", "ref"], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err, "could not decide", "manifest")


def test_missing_directory_is_undecided(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["check", str(tmp_path / "absent"), "--impl", "ref"], capsys)
    assert code == 2
    assert_one_line_error(err, "is not a directory")
    with pytest.raises(VectorSetError, match="no manifest.json"):
        check_vectors(tmp_path, reference_replay)


def raising_replay(kind: str, params: dict[str, np.ndarray],
                   noise: dict[str, np.ndarray]) -> Any:
    raise ZeroDivisionError("port bug\nsecond line")


def token_only_replay(kind: str, params: dict[str, np.ndarray],
                      noise: dict[str, np.ndarray]) -> Any:
    if not kind.startswith("token_"):
        return NotImplemented
    return reference_replay(kind, params, noise)


def test_raising_implementation_is_undecided(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["check", str(COMMITTED), "--impl",
                            f"{Path(__file__)}:raising_replay", "--kinds", "token_loop"], capsys)
    assert code == 2
    assert_one_line_error(err, "the implementation raised ZeroDivisionError: port bug",
                          "(+1 more undecided)")
    code, _, err = run_cli(["check", str(COMMITTED), "--impl",
                            f"{Path(__file__)}:raising_replay", "--debug"], capsys)
    assert code == 2
    assert "Traceback" in err and 'raise ZeroDivisionError("port bug' in err
    assert err.strip().splitlines()[-1] == ("cspd vectors check: could not decide: "
                                            "ZeroDivisionError: port bug")


def test_unimplemented_kind_is_undecided_only_when_selected(
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{Path(__file__)}:token_only_replay"
    code, _, err = run_cli(["check", str(COMMITTED), "--impl", spec], capsys)
    assert code == 2
    assert_one_line_error(err, "does not implement kind 'diffusion_aligned'")
    code, out, _ = run_cli(["check", str(COMMITTED), "--impl", spec, "--kinds",
                            ",".join(TOKEN_KINDS)], capsys)
    assert code == 0
    assert "7 vectors: 7 match, 0 mismatch, 0 undecided" in out


def test_unknown_or_absent_kinds_are_undecided(vector_copy: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["check", str(vector_copy), "--impl", "ref", "--kinds", "nope"],
                           capsys)
    assert code == 2
    assert_one_line_error(err, "kinds: kind: unknown kind 'nope'")
    manifest = json.loads((vector_copy / "manifest.json").read_text())
    manifest["vectors"][0]["kind"] = "token_from_the_future"
    (vector_copy / "manifest.json").write_text(json.dumps(manifest))
    report = check_vectors(vector_copy, reference_replay)
    assert report.exit_code == 2
    assert "unknown kind 'token_from_the_future'" in report.undecided_reason()
    export_vectors(vector_copy, kinds=["token_loop"])
    with pytest.raises(ValueError, match="has no vectors of kind 'token_batched'"):
        check_vectors(vector_copy, reference_replay, kinds=["token_batched"])


def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["check", str(COMMITTED), "--impl", "ref", "--dtype", "float32"],
                           capsys)
    assert code == 2
    assert_one_line_error(err, "dtype: the reference computes in float64 only")
    code, _, err = run_cli(["check", str(COMMITTED), "--impl", "no_such_module:replay"],
                           capsys)
    assert code == 2
    assert_one_line_error(err, "cannot import 'no_such_module'")


def test_module_entry_point_checks_the_committed_set() -> None:
    done = subprocess.run([sys.executable, "-m", "cspd_ref.vectors.cli", "check", str(COMMITTED),
                           "--impl", "gpu", "--dtype", "float32", "--kinds", "token_batched"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 vectors: 3 match, 0 mismatch, 0 undecided" in done.stdout
    assert done.stderr == ""


def test_the_minimal_port_of_the_docs_passes(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "vectors.md").read_text(encoding="utf-8")
    after = text.split("Minimal example", 1)[1]
    code = after.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_port.py").write_text(code, encoding="utf-8")
    replay = load_callable(f"{tmp_path / 'my_port.py'}:replay")
    report = check_vectors(COMMITTED, replay, kinds=["token_reflection"])
    assert report.exit_code == 0, "\n".join(report.lines())
    assert check_vectors(COMMITTED, replay, kinds=["token_loop"]).exit_code == 2
