"""The ``cspd`` command line: exit status 0 equivalent, 1 not, 2 could not decide (one line on
stderr, no traceback unless ``--debug``), ``--timeout``, ``--json``, case files, spec forms."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cspd_ref import __version__
from cspd_ref.cli import main

SAMPLERS = "cspd_ref.report.example_samplers"

BAD_SAMPLERS = '''
import time

import numpy as np

from cspd_ref.samplers import token_sampler


def raises(case, n, seed):
    raise RuntimeError("the kernel launch failed")


def hangs(case, n, seed):
    while True:
        time.sleep(0.05)


def hangs_and_swallows(case, n, seed):
    while True:
        try:
            time.sleep(0.05)
        except Exception:
            pass


class _Output:
    def __init__(self, samples, accepted, trials):
        self.samples, self.accepted, self.trials = samples, accepted, trials


def float_trials(case, n, seed):
    out = token_sampler()(case, n, seed)
    return _Output(out.samples, out.accepted, out.trials.astype(float))


def negative_trials(case, n, seed):
    out = token_sampler()(case, n, seed)
    return _Output(out.samples, out.accepted, out.trials - 1)


def float_accept_mask(case, n, seed):
    out = token_sampler()(case, n, seed)
    return _Output(out.samples, out.accepted.astype(float), out.trials)


def short_accept_mask(case, n, seed):
    out = token_sampler()(case, n, seed)
    return _Output(out.samples, out.accepted[:-1], out.trials)


def exact(case, n, seed):
    return token_sampler()(case, n, seed)


not_callable = 3
'''


@pytest.fixture
def bad_samplers(tmp_path: Path) -> Path:
    path = tmp_path / "my_samplers.py"
    path.write_text(BAD_SAMPLERS)
    return path


def one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one line, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def run(*args: str) -> int:
    return main(list(args))


def test_version(capsys: pytest.CaptureFixture) -> None:
    assert run("--version") == 0
    assert capsys.readouterr().out.strip() == f"cspd {__version__}"


def test_demo_prints_acceptance_within_three_standard_errors(capsys: pytest.CaptureFixture) -> None:
    assert run("demo", "--n", "20000", "--seed", "3") == 0
    out = capsys.readouterr().out
    assert "within 3 SE" in out
    assert re.search(r"KS vs exact target\s+: statistic [0-9.]+, p-value [0-9.]+", out)


# --------------------------------------------------------------------------- exit status 2
@pytest.mark.parametrize(("function", "message"), [
    ("raises", "RuntimeError: the kernel launch failed"),
    ("float_trials", "trials must be an integer array, got dtype float64"),
    ("negative_trials", "trials must be >= 0, got a minimum of -1"),
    ("float_accept_mask", "accepted must be a bool array, got dtype float64"),
    ("short_accept_mask", "accepted must have shape"),
])
def test_a_sampler_that_cannot_be_judged_exits_2_with_one_line(
        function: str, message: str, bad_samplers: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    assert run("verify", f"{bad_samplers}:{function}", "--case", "demo", "--tier", "quick",
               "--out", str(out)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("cspd verify: case 'demo-2d-mixture'") and message in line
    doc = json.loads((out / "report.json").read_text())
    assert doc["equivalent"] is None
    assert [item["name"] for item in doc["unfinished"]] == ["demo-2d-mixture"]


@pytest.mark.parametrize("function", ["hangs", "hangs_and_swallows"])
def test_a_hanging_sampler_ends_at_the_timeout_with_a_partial_report(
        function: str, bad_samplers: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    """The first case passes, the second hangs: exit 2 after --timeout, one line, and a
    partial report holding the first verdict and naming the case that timed out. The
    interruption is a BaseException, so a sampler's ``except Exception`` does not swallow it."""
    out = tmp_path / "report"
    path = tmp_path / "mixed.py"
    path.write_text(BAD_SAMPLERS + textwrap.dedent(f'''
        def first_passes_then_hangs(case, n, seed):
            if case.name == "demo-2d-mixture":
                return exact(case, n, seed)
            return {function}(case, n, seed)
        '''))
    assert run("verify", f"{path}:first_passes_then_hangs", "--case", "demo", "--case",
               "mixture-1d", "--tier", "quick", "--timeout", "2", "--out", str(out),
               "--no-figures") == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "case 'mixture-1d'" in line and "did not finish within --timeout 2 s" in line
    doc = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in doc["cases"]] == ["demo-2d-mixture"]
    assert doc["unfinished"][0]["name"] == "mixture-1d" and doc["equivalent"] is None
    assert "NOT DECIDED" in (out / "report.md").read_text()


@pytest.mark.parametrize(("spec", "message"), [
    ("not_callable", "int object is not callable"),
    ("missing", "has no attribute 'missing'"),
])
def test_a_bad_sampler_spec_exits_2_before_any_report(spec: str, message: str,
                                                      bad_samplers: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    assert run("verify", f"{bad_samplers}:{spec}", "--out", str(tmp_path / "r")) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("spec", ["no_such_module_xyz:f", f"{SAMPLERS}.reference_sampler",
                                  f"{SAMPLERS}:SpeculativeResult.__doc__"])
def test_unresolvable_specs_exit_2(spec: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    assert run("verify", spec, "--out", str(tmp_path / "r")) == 2
    one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--n", "5"], "--n 5 is too small for any claim"),
    (["--n", "0"], "argument --n: must be >= 1"),
    (["--alpha", "1.5"], "must lie in (0, 1)"),
    (["--case", "nope"], "--case: case: expected one of"),
    (["--timeout", "-1"], "must be > 0"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_exit_2_with_one_line(options: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert run("verify", f"{SAMPLERS}:reference_sampler", "--out", str(tmp_path / "r"),
               *options) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_debug_prints_the_traceback(bad_samplers: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    assert run("verify", f"{bad_samplers}:raises", "--case", "demo", "--tier", "quick",
               "--out", str(tmp_path), "--debug") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "the kernel launch failed" in err


# --------------------------------------------------------------------------- exit status 0/1
def test_exit_0_for_the_reference_sampler(tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ref"
    assert run("verify", f"{SAMPLERS}:reference_sampler", "--n", "3000", "--out", str(out),
               "--no-timestamp", "--no-figures") == 0
    printed = capsys.readouterr().out
    assert "overall: EQUIVALENT" in printed and str(out / "report.md") in printed
    assert re.search(r"^mixture-1d\s+token\s+3000\s+\d+\s+[0-9.]+\s+\S+\s+EQUIVALENT$", printed,
                     re.M)
    doc = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in doc["cases"]] == ["demo-2d-mixture", "equal-scale-gaussians-d4",
                                                 "mixture-1d"]
    assert doc["alpha"] == pytest.approx(1e-4)
    assert all(c["alpha"] == pytest.approx(1e-4 / 3) for c in doc["cases"])
    assert doc["seeds"] == [0, 1, 2] and doc["unfinished"] == []
    assert "generated" not in doc
    assert doc["command"].startswith(f"cspd verify {SAMPLERS}:reference_sampler --case token")


def test_exit_1_for_the_draft_only_sampler(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert run("verify", f"{SAMPLERS}:draft_only_sampler", "--case", "demo", "--n", "3000",
               "--out", str(tmp_path), "--no-figures") == 1
    printed = capsys.readouterr().out
    assert "NOT EQUIVALENT" in printed and "failed: ks_" in printed
    assert (tmp_path / "report.html").is_file()


def test_json_goes_to_stdout_and_the_text_to_stderr(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    assert run("verify", f"{SAMPLERS}:make_reference_sampler()", "--case", "equal-scale",
               "--tier", "quick", "--out", str(tmp_path), "--no-figures", "--json") == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["equivalent"] is True and doc["cases"][0]["name"] == "equal-scale-gaussians-d4"
    assert "overall: EQUIVALENT" in captured.err
    assert not list(tmp_path.glob("figures/*.png"))


def test_a_json_case_file_and_a_file_spec(bad_samplers: Path, tmp_path: Path) -> None:
    case = {"name": "shifted-1d",
            "draft": {"weights": [1.0], "means": [[0.3]], "scales": [[1.2]]},
            "target": {"weights": [0.25, 0.75], "means": [[-1.0], [1.0]],
                       "scales": [[0.5], [0.8]]}}
    case_path = tmp_path / "case.json"
    case_path.write_text(json.dumps(case))
    out = tmp_path / "r"
    assert run("verify", f"{bad_samplers}:exact", "--case", str(case_path), "--tier", "quick",
               "--out", str(out), "--no-figures") == 0
    assert json.loads((out / "report.json").read_text())["cases"][0]["name"] == "shifted-1d"


def test_float32_weights_summing_to_one_within_their_rounding_are_accepted(
        tmp_path: Path) -> None:
    """Weights written with float32 precision (0.1 + 0.2 + 0.7 is 1 - 7e-9 in float32) are
    accepted from Python; weights off by 1e-3 are not."""
    import numpy as np

    from cspd_ref import GaussianMixture

    w = np.array([0.1, 0.2, 0.7], dtype=np.float32)
    mixture = GaussianMixture(w, [[0.0], [1.0], [2.0]], [[1.0], [1.0], [1.0]])
    assert mixture.weights.dtype == np.float64
    assert abs(mixture.weights.sum() - 1.0) < 1e-15
    with pytest.raises(ValueError, match=r"weights: must sum to 1 .* a row sums to 0\.999"):
        GaussianMixture(np.array([0.5, 0.499], dtype=np.float32), [[0.0], [1.0]],
                        [[1.0], [1.0]])


def test_module_specs_resolve_from_the_working_directory(tmp_path: Path) -> None:
    """``MODULE:FUNCTION`` imports like ``python -m``: a module in the working directory is
    found without installing it (run as the console script, in a subprocess)."""
    (tmp_path / "local_sampler.py").write_text(BAD_SAMPLERS)
    script = Path(sys.executable).parent / "cspd"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "cspd_ref.cli"]
    result = subprocess.run([*command, "verify",
                             "local_sampler:exact", "--case", "mixture-1d", "--tier", "quick",
                             "--out", "r", "--no-figures"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "overall: EQUIVALENT" in result.stdout


def test_builtin_diffusion_and_ar_cases_run(tmp_path: Path) -> None:
    assert run("verify", "cspd_ref.report.implementations:reference_sampler()", "--case",
               "linear-chain", "--case", "ar-mixture", "--tier", "quick", "--out",
               str(tmp_path), "--no-figures", "--quiet") == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [c["kind"] for c in doc["cases"]] == ["diffusion", "ar"]


def test_report_command_quick_tier(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``cspd report`` on gpu_impl (CPU): the five built-in cases, a verdict table, exit 0."""
    assert run("report", "--tier", "quick", "--out", str(tmp_path), "--no-figures") == 0
    printed = capsys.readouterr().out
    for name in ("demo-2d-mixture", "equal-scale-gaussians-d4", "mixture-1d",
                 "linear-chain-T4-d2", "ar-L6-d2"):
        assert re.search(rf"^{name}\s+\w+\s+\d+\s+\d+\s+[0-9.]+\s+\S+\s+EQUIVALENT$", printed,
                         re.M), printed
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["sampler"].startswith("gpu_impl") and doc["equivalent"] is True


def test_vectors_through_the_cspd_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    vectors = Path(__file__).resolve().parents[1] / "reports" / "vectors"
    assert run("vectors", "check", str(vectors), "--impl", "ref", "--kinds", "token_loop") == 0
    assert "0 mismatch, 0 undecided" in capsys.readouterr().out
    assert run("vectors", "check", str(tmp_path / "missing"), "--impl", "ref") == 2
    assert "is not a directory" in one_error_line(capsys.readouterr().err)
