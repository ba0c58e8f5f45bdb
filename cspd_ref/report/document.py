"""The document model of a distribution-equivalence report (``report.json``).

``build_document`` turns verdicts and cases into one JSON-ready dict: the report's whole content
(every check with its statistic, p-value, Holm-adjusted p-value, n, what was compared, the null
and its details; the verdicts, alpha, seeds, versions and the command line). ``report.json`` is
that dict; ``report.md`` and ``report.html`` are rendered from it by the templates of
``cspd_ref/report/templates`` (``cspd_ref.report.render``), with the prose of each case section
from ``case_paragraphs``. The layout is identified by ``SCHEMA``.
"""

from __future__ import annotations

import math
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.report.figures import ALPHA, MINUS, TIMES, FigureInfo, per_check_alpha
from cspd_ref.stats import CheckResult

SCHEMA = "cspd-report/1"
"""Identifier of the JSON layout (bumped when fields change meaning)."""

FAMILY_DESCRIPTIONS: dict[str, str] = {
    "ks_projection": "one-sample Kolmogorov-Smirnov (KS) test of the samples projected on a "
                     "random unit direction against the exact CDF of the projected target "
                     "mixture (by Cramér-Wold, equal laws have equal projections)",
    "ks_axis": "one-sample KS test of one coordinate against the target's exact marginal CDF "
               "(allowing the output's rounding)",
    "ks_mean_difference": "one-sample KS test along the difference of the target's and the "
                          "draft's means",
    "ks_components": "one-sample KS test along the difference of a target and a draft "
                     "component mean",
    "ks_random": "one-sample KS test along a random unit direction (drawn from the battery's "
                 "seed, not from the data)",
    "ks2_log_target": "two-sample KS test of log p(x) against an exact target sample rounded "
                      "to the output's dtype",
    "ks2_log_ratio": "two-sample KS test of log p(x) - log q(x) against an exact target "
                     "sample rounded to the output's dtype (mass leaking toward the draft)",
    "mmd_betting": "kernel MMD two-sample test by betting (witness from a training split, "
                   "Ville's inequality) against direct draws of the target chain",
    "ks_1d": "one-sample KS test of the 1-D samples against the exact target CDF",
    "pit_uniformity": "KS test that the pooled Rosenblatt / PIT values (each coordinate's "
                      "conditional target CDF given the earlier ones) are U(0, 1)",
    "pit_independence": "smooth test (Legendre products, Bernstein bound) of independence "
                        "between consecutive Rosenblatt columns",
    "ks_rosenblatt": "KS test of one Rosenblatt column (generation order) against U(0, 1)",
    "atoms": "atom check: no value repeated more often than the dtype's rounding of a "
             "continuous law explains",
    "acceptance_binomial": "exact binomial test of the acceptance count against "
                           f"Binomial(n, 1 {MINUS} TV), TV computed in float64",
    "geometric_trials": "KS test (randomized PIT) of the residual trial counts of rejected rows "
                        "against Geometric(TV)",
    "trials_consistent": "consistency of the reported residual trial counts",
    "ks2_projection": "two-sample KS test of a random projection against direct draws of the "
                      "target chain",
    "ks2_axis": "exact two-sample KS test of one coordinate against direct draws of the target "
                "chain",
    "ks2_random": "exact two-sample KS test of a random projection against direct draws of "
                  "the target chain",
    "mmd": "Gaussian-kernel MMD test (median-heuristic bandwidth, permutation null) against "
           "direct draws of the target chain",
    "finite": "finiteness of the samples (NaN/inf)",
}


# ----------------------------------------------------------------------------- helpers
def fmt_p(p: float) -> str:
    """A p-value for tables: 4 decimals, scientific below 1e-3."""
    if p == 0.0:
        return "0"
    if p < 1e-3:
        return f"{p:.2e}"
    return f"{p:.4f}"


def fmt_stat(x: float) -> str:
    """A statistic for tables (4 significant digits)."""
    return f"{x:.4g}"


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays, tuples and paths made JSON-native.

    Non-finite floats become the strings ``"inf"``, ``"-inf"``, ``"nan"`` (strict JSON has no
    such numbers).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def cspd_version() -> str:
    """The installed ``cspd`` distribution's version (else ``cspd_ref.__version__``, else the
    ``version`` line of the source tree's ``pyproject.toml``, else ``"unknown"``)."""
    from importlib import metadata

    try:
        return metadata.version("cspd")
    except metadata.PackageNotFoundError:
        pass
    import cspd_ref

    version = getattr(cspd_ref, "__version__", None)
    if isinstance(version, str):
        return version
    pyproject = Path(cspd_ref.__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
        if match:
            return f"{match.group(1)} (source tree)"
    return "unknown"


def versions() -> dict[str, str]:
    """Versions of Python, NumPy, SciPy, Matplotlib and cspd."""
    import matplotlib
    import scipy

    return {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "matplotlib": matplotlib.__version__,
            "cspd": cspd_version()}


def describe_case(case: Any) -> tuple[str, str]:
    """``(kind, one-sentence description)`` of a case."""
    if isinstance(case, Case):
        t, q = case.target, case.draft
        single = " (single Gaussians, equal scales)" if "equal_scales" in case.tags else ""
        return "token", (f"one token, d = {case.dim}: target a diagonal Gaussian mixture with "
                         f"K = {t.n_components} component(s), draft K = {q.n_components}"
                         f"{single}; the target law is in closed form")
    if isinstance(case, DiffusionCase):
        closed = case.target is not None
        steps = getattr(case.target_chain, "num_steps", "?")
        how = ("the target chain's marginal is in closed form (linear Gaussian chain)" if closed
               else "the target chain has no closed form, so the samples are compared with "
                    "direct draws of the target chain")
        return "diffusion", (f"diffusion-head tokens, d = {case.dim}, T = {steps} denoising "
                             f"steps; {how}")
    if isinstance(case, ARCase):
        return "ar", (f"AR sequences of L = {case.seq_len} tokens of d = {case.dim} in "
                      f"{case.schedule.num_groups} groups; the target's conditionals are "
                      "closed-form mixtures, so its Rosenblatt transform is exact")
    return type(case).__name__, f"a case of type {type(case).__name__}"


def check_record(check: CheckResult, adjusted: float, alpha: float) -> dict[str, Any]:
    """The JSON record of one check."""
    return {"name": check.name, "family": check.family, "statistic": check.statistic,
            "pvalue": check.pvalue, "adjusted_pvalue": adjusted, "rejected": adjusted <= alpha,
            "n": check.n, "compared": check.compared, "null": check.null,
            "min_pvalue": check.min_pvalue, "details": check.details_dict()}


def case_notes(verdict: Any, case: Any) -> list[str]:
    """Remarks on what was *not* tested (so a pass is not over-read)."""
    names = {c.family for c in verdict.checks}
    notes = []
    if "finite" in names:
        notes.append("The samples contain NaN or inf values; the other checks were not run.")
    elif isinstance(case, Case) and "acceptance_binomial" not in names:
        notes.append("The sampler returned bare samples (no accept mask), so the acceptance "
                     "and residual-trial checks were not run; return an object with "
                     "`.samples`, `.accepted` and `.trials` to include them.")
    elif "acceptance_binomial" in names and "geometric_trials" not in names:
        notes.append("No residual trial counts were tested (none exposed, no rejected row, or "
                     "a one-pass residual such as reflection that reports 0 trials).")
    if verdict.output is None:
        notes.append("The sampler's output was not kept (verify(..., keep_output=True)), so "
                     "there are no figures.")
    return notes


# ----------------------------------------------------------------------------- document model
def build_document(verdicts: Sequence[Any], cases: Sequence[Any],
                   figures: Sequence[Sequence[FigureInfo]], out_dir: Path, *, title: str,
                   sampler_name: str, command: str | None, generated: str | None,
                   alpha: float | None,
                   unfinished: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The report's content as a JSON-ready dict (``report.json``; the Markdown and HTML are
    rendered from it). ``unfinished`` lists ``(case name, reason)`` for cases that did not
    finish (a timeout, a sampler that raised): the report is then partial and its verdict
    ``equivalent`` is None (not decided)."""
    case_records = []
    for verdict, case, figs in zip(verdicts, cases, figures, strict=True):
        kind, description = describe_case(case)
        checks = [check_record(c, p, verdict.alpha)
                  for c, p in zip(verdict.checks, verdict.adjusted_pvalues, strict=True)]
        notes = case_notes(verdict, case)
        case_records.append({
            "name": verdict.case_name, "kind": kind, "description": description,
            "equivalent": verdict.equivalent, "alpha": verdict.alpha,
            "per_check_alpha": per_check_alpha(verdict.alpha, len(verdict.checks)),
            "n": verdict.n, "seed": verdict.seed,
            "detectable_distance": verdict.detectable_distance,
            "detectable": {family: {"value": effect.value, "meaning": effect.meaning}
                           for family, effect in verdict.detectable.items()},
            "tier": verdict.tier, "resolution": verdict.resolution,
            "skipped": list(verdict.skipped),
            "min_adjusted_pvalue": verdict.min_adjusted_pvalue,
            "failed": [c.name for c in verdict.failed],
            "notes": notes,
            "checks": checks,
            "figures": [{"path": f.path.relative_to(out_dir).as_posix(), "caption": f.caption,
                         "kind": f.kind} for f in figs],
        })
    total_alpha = float(sum(v.alpha for v in verdicts)) if alpha is None else float(alpha)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "title": title,
        "sampler": sampler_name,
        "command": command,
    }
    if generated is not None:
        doc["generated"] = generated
    doc.update({
        "equivalent": (all(v.equivalent for v in verdicts) if not unfinished else None),
        "unfinished": [{"name": name, "reason": reason} for name, reason in unfinished],
        "alpha": total_alpha,
        "error_control": ("Holm's step-down procedure over the checks of each case at the "
                          "case's alpha; Bonferroni across cases (the case alphas sum to "
                          "alpha)"),
        "seeds": [v.seed for v in verdicts],
        "versions": versions(),
        "cases": case_records,
    })
    return jsonable(doc)


# ----------------------------------------------------------------------------- prose
def family_summary(checks: Sequence[dict[str, Any]]) -> list[tuple[str, int, str, str]]:
    """``(family, count, description, null)`` in order of first appearance."""
    order: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        order.setdefault(c["family"], []).append(c)
    return [(fam, len(items), FAMILY_DESCRIPTIONS.get(fam, items[0]["compared"]),
             items[0]["null"]) for fam, items in order.items()]


def verdict_word(equivalent: bool | None) -> str:
    """``EQUIVALENT`` / ``NOT EQUIVALENT`` / ``NOT DECIDED`` (None: a case did not finish)."""
    if equivalent is None:
        return "NOT DECIDED"
    return "EQUIVALENT" if equivalent else "NOT EQUIVALENT"


def case_paragraphs(rec: dict[str, Any]) -> dict[str, Any]:
    """The prose of one case section (shared by the Markdown and the HTML)."""
    m = len(rec["checks"])
    fams = family_summary(rec["checks"])
    has_counts = any(f[0] in ("acceptance_binomial", "geometric_trials") for f in fams)
    tested = (f"The sampler was called once as `sampler(case, n={rec['n']}, "
              f"seed={rec['seed']})` on this case: {rec['description']}. Its output was "
              f"judged by {m} check(s):")
    tests = [(f"{count} {TIMES} " if count > 1 else "") + desc for fam, count, desc, _ in fams]
    null = ("Null hypothesis of the case: the sampler's output follows the target law exactly"
            + (" and its acceptance and residual trial counts follow the laws of exact "
               "speculative sampling" if has_counts else "")
            + ". Null of each check:")
    nulls = [f"`{fam}`: {n}" for fam, _, _, n in fams]
    control = (f"Family-wise error: the {m} p-values are combined by Holm's step-down procedure "
               f"at {ALPHA} = {rec['alpha']:.3g}; the case fails iff some Holm-adjusted p-value "
               f"is ≤ {ALPHA}. An exact sampler fails it with probability at most {ALPHA}, "
               "whatever the dependence between the checks.")
    seen = "; ".join(f"`{family}`: {effect['value']:.4g} ({effect['meaning']})"
                     for family, effect in rec["detectable"].items())
    sensitivity = (f"Sensitivity: at n = {rec['n']} ({rec['tier']} tier, output "
                   f"{rec['resolution']}), each family of checks flags, with probability ≥ 0.99 "
                   f"by itself at the per-check level {ALPHA}/{m} = "
                   f"{rec['per_check_alpha']:.2g}, an effect at least: {seen}. Smaller "
                   "deviations can pass; the detectable distances shrink like 1/√n."
                   + "".join(f" Skipped: {reason}." for reason in rec["skipped"]))
    if rec["equivalent"]:
        verdict = (f"no Holm-adjusted p-value is ≤ {ALPHA} = {rec['alpha']:.3g} (smallest "
                   f"{fmt_p(rec['min_adjusted_pvalue'])}): the output is consistent with the "
                   "target law at this sample size.")
    else:
        failed = ", ".join(f"`{name}`" for name in rec["failed"])
        verdict = (f"{len(rec['failed'])} check(s) rejected at family-wise {ALPHA} = "
                   f"{rec['alpha']:.3g}: {failed}. The output does not follow the target law.")
    return {"tested": tested, "tests": tests, "null": null, "nulls": nulls,
            "control": control, "sensitivity": sensitivity, "verdict": verdict}
