"""Matplotlib figures of a distribution-equivalence report (docs/battery.md, ``reports/``).

Every figure is drawn on a bare ``matplotlib.figure.Figure`` rendered by the Agg canvas (no
``pyplot``, no global backend switch, nothing shown on screen) and saved as a small PNG
(``DPI`` = 90) without a ``Software`` metadata entry, so the same inputs give the same bytes.

Per case (``case_figures``):

* token cases with a closed-form target (``Case``, a ``DiffusionCase`` whose target chain has a
  closed-form marginal): a PP plot of the first tested projection (or the 1-D samples) against
  the exact target CDF, with its DKW band, and the ECDF - CDF deviation; plus a histogram of the
  pooled Rosenblatt / PIT values;
* ``DiffusionCase`` without a closed form: the two-sample ECDF difference along the first tested
  direction against a fresh draw of the target chain;
* ``ARCase``: the histogram of the pooled Rosenblatt values of the sequences;
* when the sampler exposed its accept mask: the observed acceptance rate with its interval next
  to ``1 - TV`` with the binomial acceptance region of the test (and, when residual trial counts
  were tested, their histogram against ``Geometric(TV)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.stats import CheckResult, dkw_detectable_distance
from cspd_ref.stats.details import AcceptanceDetails
from cspd_ref.validation import FloatArray

DPI = 90
"""Resolution of every PNG (keeps each file well under 150 KB)."""
MAX_PLOT_POINTS = 1500
"""Curves are drawn through at most this many points (the statistics use every sample)."""
PIT_BINS = 20
"""Bins of the PIT histograms."""
HISTOGRAM_BAND_LEVEL = 0.01
"""The PIT histograms' band: every bin inside it with probability >= 0.99 under the null
(Bonferroni over the bins; the band is a visual guide, the verdict comes from the KS tests)."""
MAX_AR_ROWS = 20_000
"""At most this many sequences are Rosenblatt-transformed for an AR figure."""
MAX_REFERENCE_ROWS = 20_000
"""At most this many target-chain draws for a two-sample figure."""
MAX_TRIAL_BINS = 12
"""Residual trial counts above this are pooled in the last bar."""

ALPHA = "\N{GREEK SMALL LETTER ALPHA}"
MINUS = "\N{MINUS SIGN}"
TIMES = "\N{MULTIPLICATION SIGN}"

OK_COLOUR = "#1b7837"
BAD_COLOUR = "#c51b7d"
BAND_COLOUR = "#9ecae1"
LINE_COLOUR = "#08519c"


@dataclass(frozen=True)
class FigureInfo:
    """A PNG written for a report.

    Attributes:
        path: where it was written.
        caption: one or two sentences saying what it shows and how to read it.
        kind: ``"cdf"``, ``"pit"``, ``"two_sample"`` or ``"acceptance"``.
    """

    path: Path
    caption: str
    kind: str


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a deterministic PNG (no software/date metadata)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})


def new_figure(width: float, height: float) -> Figure:
    """A bare Agg-rendered figure with a tight, constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def per_check_alpha(alpha: float, n_checks: int) -> float:
    """The Bonferroni per-check level ``alpha / m`` (Holm's first step)."""
    return alpha / max(1, n_checks)


def thin(count: int, keep: Sequence[int] = ()) -> np.ndarray:
    """At most ``MAX_PLOT_POINTS`` evenly spaced indices of ``range(count)``, plus ``keep``."""
    if count <= MAX_PLOT_POINTS:
        return np.arange(count)
    idx = np.unique(np.linspace(0, count - 1, MAX_PLOT_POINTS).round().astype(np.int64))
    return np.union1d(idx, np.asarray(keep, dtype=np.int64))


def find_check(checks: Sequence[CheckResult], name: str) -> CheckResult | None:
    """The first check called ``name`` (None when absent)."""
    return next((c for c in checks if c.name == name), None)


# ------------------------------------------------------------------------- PP plot + deviation
def cdf_figure(values: FloatArray, cdf_values: FloatArray, path: Path, *, label: str,
               alpha_check: float, statistic: float | None, pvalue: float | None) -> FigureInfo:
    """PP plot of ``values`` against the exact CDF (left) and ``ECDF - F`` (right), both with
    the DKW band of half-width ``sqrt(ln(2 / alpha_check) / (2 n))``.

    Args:
        values: ``(n,)`` the tested 1-D values (only used for their count and order).
        cdf_values: ``(n,)`` the exact target CDF at ``values``.
        path: PNG to write.
        label: what the values are (e.g. "projection 0").
        alpha_check: per-check level of the band.
        statistic: the KS statistic of the check (drawn as dashed lines), if known.
        pvalue: its raw p-value (for the title), if known.
    """
    n = int(values.shape[0])
    u = np.sort(np.clip(cdf_values, 0.0, 1.0))
    ecdf = np.arange(1, n + 1, dtype=np.float64) / n
    d_plus = ecdf - u
    d_minus = u - (ecdf - 1.0 / n)
    gaps = np.maximum(d_plus, d_minus)
    signed = np.where(d_plus >= d_minus, d_plus, -d_minus)
    worst = int(np.argmax(gaps))
    idx = thin(n, keep=(worst,))
    eps = dkw_detectable_distance(n, alpha_check)

    fig = new_figure(8.4, 3.3)
    left, right = fig.subplots(1, 2)
    grid = np.linspace(0.0, 1.0, 201)
    left.fill_between(grid, np.clip(grid - eps, 0, 1), np.clip(grid + eps, 0, 1),
                      color=BAND_COLOUR, alpha=0.6, lw=0, label=f"DKW band ±{eps:.3f}")
    left.plot([0, 1], [0, 1], color="0.3", lw=0.8, ls="--", label="exact target")
    left.plot(u[idx], ecdf[idx], color=LINE_COLOUR, lw=1.2, label="samples")
    left.set_xlabel("exact target CDF  F(x)")
    left.set_ylabel("empirical CDF")
    left.set_title(f"PP plot, {label}", fontsize=10)
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.legend(fontsize=8, loc="upper left", framealpha=0.8)

    right.axhspan(-eps, eps, color=BAND_COLOUR, alpha=0.6, lw=0,
                  label=f"DKW band (level {alpha_check:.2g})")
    right.axhline(0.0, color="0.3", lw=0.8, ls="--")
    right.plot(u[idx], signed[idx], color=LINE_COLOUR, lw=1.0, label=f"ECDF {MINUS} F")
    if statistic is not None:
        inside = statistic <= eps
        colour = OK_COLOUR if inside else BAD_COLOUR
        right.plot([u[worst]], [signed[worst]], "o", color=colour, ms=5,
                   label=f"KS D = {statistic:.4f}")
    top = max(1.5 * eps, 1.15 * float(np.max(np.abs(signed))))
    right.set_ylim(-top, top)
    right.set_xlim(0, 1)
    right.set_xlabel("exact target CDF  F(x)")
    right.set_ylabel(f"ECDF {MINUS} F")
    title = f"deviation, n = {n}"
    if pvalue is not None:
        title += f", KS p = {pvalue:.3g}"
    right.set_title(title, fontsize=10)
    right.legend(fontsize=8, loc="best", framealpha=0.8)
    save(fig, path)
    caption = (f"Left: PP plot of the {label} against the exact target CDF. Right: the "
               f"deviation ECDF {MINUS} F; the shaded DKW band (half-width {eps:.4f}) holds "
               f"the whole curve with probability ≥ 1 {MINUS} {alpha_check:.2g} when the "
               "sampler is exact. The dot marks the KS statistic.")
    return FigureInfo(path=path, caption=caption, kind="cdf")


# ------------------------------------------------------------------------------ PIT histogram
def pit_histogram(u: FloatArray, path: Path, *, title: str, what: str) -> FigureInfo:
    """Histogram of pooled PIT values with the expected count and a 99% simultaneous band.

    Under the null the pooled values are iid U(0, 1), so every bin count is
    ``Binomial(N, 1 / PIT_BINS)``; the band is that law's ``[q, 1 - q]`` quantiles with
    ``q = HISTOGRAM_BAND_LEVEL / (2 PIT_BINS)``.
    """
    values = np.clip(np.asarray(u, dtype=np.float64).ravel(), 0.0, 1.0)
    total = int(values.size)
    counts, edges = np.histogram(values, bins=PIT_BINS, range=(0.0, 1.0))
    p = 1.0 / PIT_BINS
    q = HISTOGRAM_BAND_LEVEL / (2 * PIT_BINS)
    lo, hi = stats.binom.ppf(q, total, p), stats.binom.isf(q, total, p)
    outside = (counts < lo) | (counts > hi)

    fig = new_figure(5.6, 3.4)
    ax = fig.subplots()
    colours = [BAD_COLOUR if bad else LINE_COLOUR for bad in outside]
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colours,
           edgecolor="white", lw=0.5, alpha=0.75, label="observed", zorder=1)
    ax.axhspan(lo, hi, facecolor=BAND_COLOUR, edgecolor="0.4", alpha=0.45, lw=0.6, zorder=2,
               label="99% band (all bins)")
    ax.axhline(total * p, color="0.1", lw=1.0, ls="--", label="expected (uniform)", zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(float(counts.max()), float(hi)) * 1.08)
    ax.set_xlabel("Rosenblatt / PIT value")
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", frameon=False, ncol=3,
              bbox_to_anchor=(0.5, -0.2))
    save(fig, path)
    caption = (f"Histogram of {total} pooled {what}; under the null they are iid U(0, 1). "
               f"Bars outside the shaded 99% band ({int(outside.sum())} of {PIT_BINS}) are "
               "highlighted; the verdict comes from the KS tests, the band is a visual guide.")
    return FigureInfo(path=path, caption=caption, kind="pit")


# ----------------------------------------------------------------------- two-sample deviation
def two_sample_figure(x: FloatArray, y: FloatArray, path: Path, *, label: str,
                      alpha_check: float) -> FigureInfo:
    """``ECDF_x - ECDF_y`` along one direction with the two-sample DKW band."""
    xs, ys = np.sort(x), np.sort(y)
    grid = np.sort(np.concatenate([xs, ys]))
    diff = (np.searchsorted(xs, grid, side="right") / xs.size
            - np.searchsorted(ys, grid, side="right") / ys.size)
    worst = int(np.argmax(np.abs(diff)))
    idx = thin(grid.size, keep=(worst,))
    eps = (dkw_detectable_distance(xs.size, alpha_check / 2)
           + dkw_detectable_distance(ys.size, alpha_check / 2))
    fig = new_figure(5.6, 3.2)
    ax = fig.subplots()
    ax.axhspan(-eps, eps, color=BAND_COLOUR, alpha=0.6, lw=0, label=f"DKW band ±{eps:.3f}")
    ax.axhline(0.0, color="0.3", lw=0.8, ls="--")
    ax.plot(grid[idx], diff[idx], color=LINE_COLOUR, lw=1.0,
            label=f"ECDF(samples) {MINUS} ECDF(ref)")
    ax.plot([grid[worst]], [diff[worst]], "o", ms=5,
            color=OK_COLOUR if abs(diff[worst]) <= eps else BAD_COLOUR,
            label=f"max |diff| = {abs(diff[worst]):.4f}")
    ax.set_xlabel(label)
    ax.set_ylabel("difference of ECDFs")
    ax.set_title(f"two-sample check, {label}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    save(fig, path)
    caption = (f"Difference between the empirical CDFs of the samples and of {ys.size} fresh "
               f"target-chain draws along the {label}; the shaded band (±{eps:.4f}) holds it "
               f"with probability ≥ 1 {MINUS} {alpha_check:.2g} when both follow one law.")
    return FigureInfo(path=path, caption=caption, kind="two_sample")


# ------------------------------------------------------------------------------- acceptance
def acceptance_figure(accepted: np.ndarray, trials: np.ndarray | None,
                      checks: Sequence[CheckResult], path: Path, *,
                      alpha_check: float) -> FigureInfo | None:
    """Observed acceptance rate vs ``1 - TV`` (and trial counts vs ``Geometric(TV)``).

    Returns None when the verdict has no ``acceptance_binomial`` check.
    """
    check = find_check(checks, "acceptance_binomial")
    if check is None:
        return None
    n = int(accepted.shape[0])
    k = int(np.sum(accepted))
    details = check.details
    if isinstance(details, AcceptanceDetails):
        expected = float(details.expected_rate)
        rate_lo, rate_hi = (float(v) for v in details.rate_interval)
    else:
        expected = rate_lo = rate_hi = math.nan
    # Acceptance region of the test at level alpha_check (conservative over the TV interval).
    region = (float(stats.binom.ppf(alpha_check / 2, n, rate_lo)) / n,
              float(stats.binom.isf(alpha_check / 2, n, rate_hi)) / n)
    ci = clopper_pearson(k, n, 0.05)
    geometric = find_check(checks, "geometric_trials")
    panels = 2 if geometric is not None and trials is not None else 1

    fig = new_figure(4.6 * panels, 2.8)
    axes = np.atleast_1d(fig.subplots(1, panels))
    ax = axes[0]
    inside = region[0] <= k / n <= region[1]
    ax.errorbar([expected], [1], xerr=[[expected - region[0]], [region[1] - expected]],
                fmt="s", color="0.25", capsize=4, label=f"test region (level {alpha_check:.2g})")
    ax.errorbar([k / n], [0], xerr=[[k / n - ci[0]], [ci[1] - k / n]], fmt="o", capsize=4,
                color=OK_COLOUR if inside else BAD_COLOUR, label="observed, 95% CI")
    ax.axvline(expected, color="0.5", lw=0.8, ls="--")
    ax.set_yticks([0, 1], [f"observed\n{k}/{n}", f"1 {MINUS} TV\n{expected:.4f}"])
    ax.set_ylim(-0.7, 1.7)
    span = max(region[1] - region[0], ci[1] - ci[0], 1e-3)
    centre = 0.5 * (expected + k / n)
    half = max(abs(k / n - expected) + span, 1.5 * span)
    ax.set_xlim(max(0.0, centre - half), min(1.0, centre + half))
    ax.set_xlabel("acceptance rate")
    ax.set_title(f"acceptance, p = {check.pvalue:.3g}", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", frameon=False, ncol=2,
              bbox_to_anchor=(0.5, -0.28))
    caption = (f"Acceptance: observed rate {k / n:.4f} (95% Clopper-Pearson interval) against "
               f"1 {MINUS} TV = {expected:.4f}; the grey bar is the set of rates the binomial "
               f"test accepts at level {alpha_check:.2g} (widened over the TV estimate's 5-sigma "
               "interval).")
    if panels == 2 and geometric is not None and trials is not None:
        rejected = np.asarray(trials)[~np.asarray(accepted, dtype=bool)]
        tv = 1.0 - expected
        trials_panel(axes[1], rejected, tv, geometric)
        caption += (" Right: residual trial counts of the rejected rows against "
                    "Geometric(TV) (expected counts as dots).")
    save(fig, path)
    return FigureInfo(path=path, caption=caption, kind="acceptance")


def trials_panel(ax: Any, rejected_trials: np.ndarray, tv: float, check: CheckResult) -> None:
    """Bars of the trial counts ``1 .. MAX_TRIAL_BINS`` (last pooled) vs ``Geometric(tv)``."""
    r = int(rejected_trials.size)
    ks = np.arange(1, MAX_TRIAL_BINS + 1)
    observed = np.array([np.sum(rejected_trials == k) for k in ks[:-1]]
                        + [np.sum(rejected_trials >= ks[-1])], dtype=np.float64)
    pmf = stats.geom.pmf(ks, tv)
    pmf[-1] = stats.geom.sf(ks[-1] - 1, tv)
    ax.bar(ks, observed, color=LINE_COLOUR, alpha=0.8, label="observed")
    ax.plot(ks, r * pmf, "o", color="0.15", ms=4, label=f"Geometric(TV={tv:.3f})")
    ax.set_yscale("log")
    ax.set_xticks(ks, [str(k) for k in ks[:-1]] + [f"≥{ks[-1]}"], fontsize=7)
    ax.set_xlabel("residual trials")
    ax.set_ylabel("rejected rows")
    ax.set_title(f"trials, p = {check.pvalue:.3g}", fontsize=10)
    ax.legend(fontsize=7, frameon=False)


def clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided ``1 - level`` confidence interval of a binomial
    proportion: ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1.0 - level, method="exact")
    return float(ci.low), float(ci.high)


# -------------------------------------------------------------------------------- per case
def worst_direction(checks: Sequence[CheckResult], d: int,
                    prefix: str) -> tuple[FloatArray, CheckResult | None]:
    """The direction of the projection check (name starting with ``prefix``) with the smallest
    p-value, and that check (``e_0`` and None when there is none)."""
    candidates = [c for c in checks if c.name.startswith(prefix) and c.direction is not None]
    if candidates:
        check = min(candidates, key=lambda c: c.pvalue)
        return np.asarray(check.direction, dtype=np.float64), check
    direction = np.zeros(d)
    direction[0] = 1.0
    return direction, None


def case_figures(verdict: Any, case: Any, fig_dir: Path, stem: str) -> list[FigureInfo]:
    """Every figure that applies to one verdict (see the module docstring).

    Args:
        verdict: a ``cspd_ref.verify.Verdict``; figures need ``verdict.output`` (run ``verify``
            with ``keep_output=True``); without it, or with non-finite samples, none are drawn.
        case: the case the verdict was computed for.
        fig_dir: folder of the PNGs.
        stem: file-name prefix, unique per case.
    """
    out = verdict.output
    if out is None or not np.all(np.isfinite(out.samples)):
        return []
    alpha_check = per_check_alpha(verdict.alpha, len(verdict.checks))
    samples = np.asarray(out.samples, dtype=np.float64)
    figures: list[FigureInfo] = []
    target = getattr(case, "target", None) if isinstance(case, Case | DiffusionCase) else None
    if isinstance(case, ARCase):
        from cspd_ref.ar import ar_rosenblatt

        sequences = samples[:MAX_AR_ROWS]
        u = ar_rosenblatt(case.target, case.schedule, sequences)
        figures.append(pit_histogram(
            u, fig_dir / f"{stem}_pit.png", title=f"{case.name}: sequence Rosenblatt values",
            what=f"Rosenblatt values of {sequences.shape[0]} sequences (L = {case.seq_len}, "
                 f"d = {case.dim})"))
    elif target is not None:
        figures.extend(token_figures(samples, target, verdict, fig_dir, stem, alpha_check))
    elif isinstance(case, DiffusionCase):
        direction, _ = worst_direction(verdict.checks, samples.shape[1], "ks2_")
        rows = min(int(samples.shape[0]), MAX_REFERENCE_ROWS)
        reference = case.reference_samples(rows, rng=np.random.default_rng([verdict.seed, 0xF16]))
        figures.append(two_sample_figure(
            samples[:rows] @ direction, np.asarray(reference, dtype=np.float64) @ direction,
            fig_dir / f"{stem}_two_sample.png", label="projection 0", alpha_check=alpha_check))
    if out.accepted is not None and isinstance(case, Case):
        info = acceptance_figure(out.accepted, out.trials, verdict.checks,
                                 fig_dir / f"{stem}_acceptance.png", alpha_check=alpha_check)
        if info is not None:
            figures.append(info)
    return figures


def token_figures(samples: FloatArray, target: Any, verdict: Any, fig_dir: Path, stem: str,
                  alpha_check: float) -> list[FigureInfo]:
    """PP/deviation plot of the first projection (or 1-D values) and the PIT histogram."""
    d = samples.shape[1]
    if d == 1:
        values = samples[:, 0]
        cdf_values = target.cdf(values)
        check = find_check(verdict.checks, "ks_1d")
        label = "1-D samples"
        u = cdf_values[:, None]
        what = "PIT values F(x)"
    else:
        direction, check = worst_direction(verdict.checks, d, "ks_")
        values = samples @ direction
        cdf_values = target.project(direction).cdf(values)
        label = (f"projection of {check.name} (smallest p-value)" if check is not None
                 else "first coordinate")
        u = target.rosenblatt(samples[:MAX_REFERENCE_ROWS])
        what = f"Rosenblatt values ({u.shape[0]} samples {TIMES} d = {d})"
    figures = [cdf_figure(values, cdf_values, fig_dir / f"{stem}_cdf.png", label=label,
                          alpha_check=alpha_check,
                          statistic=None if check is None else check.statistic,
                          pvalue=None if check is None else check.pvalue)]
    figures.append(pit_histogram(u, fig_dir / f"{stem}_pit.png",
                                 title=f"{verdict.case_name}: PIT values", what=what))
    return figures
