"""Distribution-equivalence reports (``cspd_ref.report``); the commands are in test_cli.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cspd_ref.ar import MixtureARModel, ar_sample, mar_schedule
from cspd_ref.cases import ARCase, DiffusionCase, demo_case, mixture_1d_case
from cspd_ref.diffusion import GaussianChain, LinearGaussianChain
from cspd_ref.diffusion_sampling import aligned_speculative_sample
from cspd_ref.report import ReportPaths, write_report
from cspd_ref.report.example_samplers import draft_only_sampler, reference_sampler
from cspd_ref.verify import Verdict, verify

SAMPLERS = "cspd_ref.report.example_samplers"
MAX_PNG_BYTES = 150_000


def write(verdicts: list[Verdict], cases: list[Any], out: Path, **kwargs: Any) -> ReportPaths:
    return write_report(verdicts, cases, out, title="test report", sampler_name="test:sampler",
                        **kwargs)


@pytest.fixture(scope="module")
def demo_verdict() -> Verdict:
    return verify(reference_sampler, demo_case(), seed=1, n=2000, keep_output=True)


@pytest.fixture(scope="module")
def demo_report(demo_verdict: Verdict, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return write([demo_verdict], [demo_case()], tmp_path_factory.mktemp("demo"),
                 generated=False, command="cspd verify x:y")


def test_render_writes_markdown_html_json_and_small_pngs(demo_verdict: Verdict,
                                                         demo_report: ReportPaths) -> None:
    paths = demo_report
    for path in (paths.markdown, paths.html, paths.json):
        assert path.is_file() and path.stat().st_size > 0
    kinds = {p.name.rsplit("_", 1)[-1] for p in paths.figures}
    assert kinds == {"cdf.png", "pit.png", "acceptance.png"}
    for png in paths.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < MAX_PNG_BYTES
    md = paths.markdown.read_text(encoding="utf-8")
    assert "EQUIVALENT" in md and "Holm" in md and "Null hypothesis" in md
    assert f"{demo_verdict.detectable_distance:.4f}" in md
    for png in paths.figures:
        assert f"(figures/{png.name})" in md  # referenced relatively
    html = paths.html.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(paths.figures)  # self-contained
    assert "figures/" not in html


def test_json_round_trips_and_lists_every_check(demo_verdict: Verdict, demo_report: ReportPaths,
                                                tmp_path: Path) -> None:
    doc = json.loads(demo_report.json.read_text(encoding="utf-8"))
    assert "generated" not in doc
    assert doc["command"] == "cspd verify x:y"
    assert doc["equivalent"] is demo_verdict.equivalent
    assert doc["alpha"] == pytest.approx(demo_verdict.alpha)
    assert doc["seeds"] == [1]
    assert {"numpy", "scipy", "cspd"} <= set(doc["versions"])
    (case,) = doc["cases"]
    assert [c["name"] for c in case["checks"]] == [c.name for c in demo_verdict.checks]
    for rec, check, adj in zip(case["checks"], demo_verdict.checks,
                               demo_verdict.adjusted_pvalues, strict=True):
        assert rec["statistic"] == pytest.approx(check.statistic)
        assert rec["pvalue"] == pytest.approx(check.pvalue)
        assert rec["adjusted_pvalue"] == pytest.approx(adj)
        assert rec["n"] == check.n
        assert rec["compared"] == check.compared and rec["null"] == check.null
    assert case["detectable_distance"] == pytest.approx(demo_verdict.detectable_distance)
    # The "generated" stamp is present unless turned off.
    stamped = json.loads(write([demo_verdict], [demo_case()], tmp_path,
                               figures=False).json.read_text())
    assert "generated" in stamped


def test_output_is_reproducible_without_timestamp(demo_verdict: Verdict, demo_report: ReportPaths,
                                                  tmp_path: Path) -> None:
    a = demo_report
    b = write([demo_verdict], [demo_case()], tmp_path, generated=False, command="cspd verify x:y")
    for pa, pb in zip((a.markdown, a.html, a.json, *a.figures),
                      (b.markdown, b.html, b.json, *b.figures), strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_render_rejects_mismatched_inputs(demo_verdict: Verdict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cases"):
        write([demo_verdict], [], tmp_path)
    with pytest.raises(ValueError, match="verdicts"):
        write([], [], tmp_path)


def test_failing_verdict_marks_rejected_checks(tmp_path: Path) -> None:
    case = mixture_1d_case()
    verdict = verify(draft_only_sampler, case, seed=0, n=2000, keep_output=True)
    assert not verdict.equivalent
    paths = write([verdict], [case], tmp_path, generated=False, figures=False)
    doc = json.loads(paths.json.read_text())
    rejected = [c["name"] for c in doc["cases"][0]["checks"] if c["rejected"]]
    assert rejected == [c.name for c in verdict.failed] and "ks_1d" in rejected
    assert "NOT EQUIVALENT" in paths.markdown.read_text(encoding="utf-8")
    assert doc["cases"][0]["notes"]  # says the acceptance checks were not run


def test_ar_and_diffusion_cases_get_their_figures(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    target = MixtureARModel.random(4, 2, 2, rng=rng)
    ar_case = ARCase(draft=target.perturbed(0.3, rng=rng), target=target,
                     schedule=mar_schedule(4, 3, rng=rng), name="ar-small")
    ar_verdict = verify(lambda c, n, s: ar_sample(c.target, c.schedule, n,
                                                  rng=np.random.default_rng(s)),
                        ar_case, n=150, keep_output=True)

    def chain(seed: int) -> LinearGaussianChain:
        r = np.random.default_rng(seed)
        return LinearGaussianChain(r.uniform(0.5, 1.0, (3, 2)), r.normal(0, 1, (3, 2)),
                                   r.uniform(0.3, 1.0, (3, 2)))

    linear = DiffusionCase(chain(1), chain(2), name="linear-chain")
    nonlinear_target = GaussianChain(lambda x, t: np.tanh(x) + 0.5, lambda x, t: 0.5, 3, 2)
    nonlinear = DiffusionCase(chain(1), nonlinear_target, name="nonlinear-chain")

    def aligned(c: DiffusionCase, n: int, s: int) -> np.ndarray:
        return aligned_speculative_sample(c.draft_chain, c.target_chain, n,
                                          rng=np.random.default_rng(s)).samples

    lin_verdict = verify(aligned, linear, n=600, keep_output=True)
    non_verdict = verify(aligned, nonlinear, n=300, keep_output=True)
    paths = write([ar_verdict, lin_verdict, non_verdict], [ar_case, linear, nonlinear], tmp_path,
                  generated=False)
    names = sorted(p.name for p in paths.figures)
    assert names == ["case1_ar-small_pit.png", "case2_linear-chain_cdf.png",
                     "case2_linear-chain_pit.png", "case3_nonlinear-chain_two_sample.png"]
    kinds = [c["kind"] for c in json.loads(paths.json.read_text())["cases"]]
    assert kinds == ["ar", "diffusion", "diffusion"]


def test_stale_figures_are_removed(demo_verdict: Verdict, tmp_path: Path) -> None:
    stale = tmp_path / "figures" / "case9_old_cdf.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    write([demo_verdict], [demo_case()], tmp_path, generated=False, figures=False)
    assert not stale.exists()




EXAMPLES = Path(__file__).resolve().parent.parent / "reports" / "example"


@pytest.mark.parametrize("name", ["reference", "draft_only", "gpu_impl_cpu"])
def test_templates_render_the_committed_examples_byte_for_byte(name: str) -> None:
    """report.md and report.html are the two templates applied to report.json (one document)."""
    from cspd_ref.report.render import render_html, render_markdown

    folder = EXAMPLES / name
    doc = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert render_markdown(doc) == (folder / "report.md").read_text(encoding="utf-8")
    assert render_html(doc, folder) == (folder / "report.html").read_text(encoding="utf-8")


def test_html_escapes_every_field_and_markdown_keeps_it() -> None:
    from cspd_ref.report.render import render_html, render_markdown

    doc = json.loads((EXAMPLES / "draft_only" / "report.json").read_text(encoding="utf-8"))
    doc["title"] = "<script>alert('x')</script> & co"
    doc["unfinished"] = [{"name": "a|b", "reason": "<timeout>"}]
    for case in doc["cases"]:
        case["figures"] = []
    page = render_html(doc, EXAMPLES / "draft_only")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert "<li><b>Not decided:</b> a|b — &lt;timeout&gt;</li>" in page
    text = render_markdown(doc)
    assert text.startswith("# <script>alert('x')</script> & co\n")
    assert "- **Not decided:** a\\|b — <timeout>\n" in text
    assert "*No figures (output not kept, or not finite).*" in text
