"""What a conformance-vector kind is, and the noise-generation rules every kind follows.

A *kind* (``VectorKind``) names one sampler with a fixed explicit-noise layout (docs/vectors.md):
the parameter arrays it reads, the noise arrays it consumes, the output arrays it produces, a
float64 reference replay (``cspd_ref``), a PyTorch replay (``gpu_impl``), the committed cases,
and a function giving, per row, the smallest distance of any decision the reference took to its
boundary.

Generation rules (stated in every manifest and in docs/vectors.md), so that a correct port in
float32 or float64 takes every decision the reference took:

* every noise value is exactly representable in float32 (uniforms rounded to float32 and kept
  below 1), and every parameter lies on the grid ``2**-8`` (weights on ``2**-6``), exact in
  float32 too;
* decision margin ``DECISION_MARGIN = 1e-4``, in the space where the comparison is made:
  acceptance ``|log u - log_ratio| > 1e-4``; residual proposal
  ``|u' - (-expm1(min(0, log q(y) - log p(y))))| > 1e-4`` for every proposal examined (the
  first ``trials`` of the row); mixture component choice ``|u - W_j| > 1e-4`` for every
  cumulative weight ``W_j`` (``j < K - 1``) of every component choice that is used. A row whose
  noise breaks the rule (or whose residual stream has no success) has all its noise redrawn from
  the case's generator until none does (``settle_noise``): this conditions the noise, which is
  harmless for a conformance vector (the law is checked by the battery, not here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from cspd_ref.speculative import ResidualBudgetExceeded
from cspd_ref.validation import FloatArray, IntArray

Arrays = dict[str, np.ndarray]
"""Named arrays: a vector's parameters, noise or outputs."""

ReferenceReplay = Callable[[Arrays, Arrays], Arrays]
"""``(params, noise) -> outputs`` in float64 (``cspd_ref``)."""

TorchReplay = Callable[[Arrays, Arrays, str, str], Arrays]
"""``(params, noise, dtype, device) -> outputs`` (``gpu_impl``)."""

RowMargins = Callable[[Arrays, Arrays, Arrays], FloatArray]
"""``(params, noise, outputs) -> (n,)`` smallest decision margin per row."""

DECISION_MARGIN = 1e-4
"""Smallest distance, in the comparison's own space, of any decision in a vector to its boundary."""

FLOAT_TOLERANCE_FACTOR = 512.0
"""``c`` in the float rule ``|actual - expected| <= c * eps * (1 + |expected|)``."""

PARAMETER_GRID = 2.0**-8
WEIGHT_GRID = 2.0**-6
MAX_SETTLE_ROUNDS = 64
ONE_BELOW_F32 = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


@dataclass(frozen=True)
class VectorCase:
    """One vector before noise is drawn: a name, a kind, its parameters and its sizes.

    Attributes:
        name: file-system-safe identifier, unique in a vector set.
        kind: a registered kind name.
        description: one line for the manifest.
        params: the kind's parameter arrays (float64, on the parameter grid).
        sizes: ``n`` (rows) plus kind-specific sizes (``M`` residual proposals per row, ...).
        seed: seeds the case's noise generator ``numpy.random.default_rng(seed)``.
    """

    name: str
    kind: str
    description: str
    params: Arrays
    sizes: dict[str, int]
    seed: int


class NoiseDraw(Protocol):
    """``(case, m, *, rng) -> noise``: the noise of ``m`` rows drawn from ``rng``."""

    def __call__(self, case: VectorCase, m: int, /, *, rng: np.random.Generator) -> Arrays: ...


@dataclass(frozen=True)
class VectorKind:
    """A sampler's explicit-noise contract (docs/vectors.md, one section per kind).

    Attributes:
        name: the kind's identifier in manifests and ``--kinds``.
        summary: one line: which sampler, which residual method.
        params, noise, outputs: array names, in the documented order.
        output_dtypes: ``"float64" | "bool" | "int64"`` per output.
        noise_row_axis: the axis that indexes rows, for noise arrays whose rows are not axis 0.
        param_dtypes: ``"int64" | "bool"`` for parameters that are not float64.
        budget_rows: maps ``ResidualBudgetExceeded.unfinished_rows`` to noise rows (default:
            they are noise rows already).
        draw_noise: ``(case, m, *, rng) -> noise`` for ``m`` rows (all arrays float32-exact).
        reference: the float64 ``cspd_ref`` replay ``(params, noise) -> outputs``.
        torch: the ``gpu_impl`` replay ``(params, noise, dtype, device) -> outputs``.
        row_margins: ``(params, noise, outputs) -> (n,)``: per row, the smallest distance of a
            decision the reference took to its boundary (``inf`` for rows without decisions).
        cases: the committed cases of this kind.
    """

    name: str
    summary: str
    params: tuple[str, ...]
    noise: tuple[str, ...]
    outputs: tuple[str, ...]
    output_dtypes: dict[str, str]
    draw_noise: NoiseDraw
    reference: ReferenceReplay
    torch: TorchReplay
    row_margins: RowMargins
    cases: Callable[[], list[VectorCase]]
    noise_row_axis: dict[str, int] = field(default_factory=dict)
    param_dtypes: dict[str, str] = field(default_factory=dict)
    budget_rows: Callable[[Arrays, np.ndarray], np.ndarray] | None = None


# --------------------------------------------------------------------- float32-exact values
def f32_uniforms(shape: tuple[int, ...], *, rng: np.random.Generator) -> FloatArray:
    """U[0, 1) rounded to float32-representable float64 values, kept below 1."""
    u = rng.random(shape).astype(np.float32).astype(np.float64)
    return np.minimum(u, ONE_BELOW_F32)


def f32_normals(shape: tuple[int, ...], *, rng: np.random.Generator) -> FloatArray:
    """Standard normals rounded to float32-representable float64 values."""
    return rng.standard_normal(shape).astype(np.float32).astype(np.float64)


def on_grid(values: np.ndarray, grid: float = PARAMETER_GRID) -> FloatArray:
    """``values`` rounded to the nearest multiple of ``grid`` (exact in float32 for |v| < 2**15)."""
    return np.asarray(np.round(np.asarray(values, dtype=np.float64) / grid) * grid)


def grid_scales(values: np.ndarray) -> FloatArray:
    """Positive scales on the parameter grid (at least 1/8)."""
    return np.maximum(on_grid(values), 0.125)


def grid_weights(raw: np.ndarray) -> FloatArray:
    """Mixture weights on the ``2**-6`` grid, each >= 2**-4, summing to exactly 1."""
    raw = np.asarray(raw, dtype=np.float64)
    units = 64 - 4 * raw.size
    if units < 0:
        raise ValueError(f"raw: at most 16 components on the 2**-6 grid, got {raw.size}")
    share = np.floor(raw / raw.sum() * units).astype(np.int64)
    share[np.argmax(raw)] += units - int(share.sum())
    return (share + 4) * WEIGHT_GRID


# --------------------------------------------------------------------- margins
def component_margins(uniforms: np.ndarray, weights: np.ndarray) -> FloatArray:
    """``min_j |u - W_j|`` over the cumulative weights ``W_j``, ``j < K - 1`` (``inf`` if K = 1).

    ``uniforms`` ``(...)``; ``weights`` ``(K,)`` or broadcasting to ``(..., K)``.
    """
    bounds = np.cumsum(np.asarray(weights, dtype=np.float64), axis=-1)[..., :-1]
    if bounds.shape[-1] == 0:
        return np.full(np.shape(uniforms), np.inf)
    return np.asarray(np.min(np.abs(np.asarray(uniforms)[..., None] - bounds), axis=-1))


def accept_margins(accept_uniforms: np.ndarray, log_ratio: np.ndarray) -> FloatArray:
    """``|log u - log_ratio|`` of the acceptance test ``log u < log p(x) - log q(x)``."""
    with np.errstate(divide="ignore"):
        return np.asarray(np.abs(np.log(accept_uniforms) - log_ratio))


def residual_margins(accept_uniforms: np.ndarray, log_q_minus_log_p: np.ndarray,
                     trials: IntArray) -> FloatArray:
    """Per row, ``min |u' - (-expm1(min(0, log q(y) - log p(y))))|`` over the examined proposals.

    ``accept_uniforms`` and ``log_q_minus_log_p`` are ``(m, M)`` (all proposals of ``m`` rows);
    proposal ``j`` was examined when ``j < trials[row]``. Rows with ``trials == 0`` get ``inf``.
    """
    probability = -np.expm1(np.minimum(0.0, log_q_minus_log_p))
    return examined_margins(np.abs(accept_uniforms - probability), trials)


def examined_margins(gaps: np.ndarray, trials: IntArray) -> FloatArray:
    """Per row, ``min`` of ``gaps`` ``(m, M)`` over the first ``trials[row]`` proposals."""
    examined = np.arange(gaps.shape[1])[None, :] < np.asarray(trials)[:, None]
    return np.asarray(np.min(np.where(examined, gaps, np.inf), axis=1))


# --------------------------------------------------------------------- settling the noise
def settle_noise(kind: VectorKind, case: VectorCase) -> tuple[Arrays, Arrays]:
    """Draw the case's noise and redraw rows until every decision keeps ``DECISION_MARGIN``.

    Deterministic: the generator is ``numpy.random.default_rng(case.seed)`` and rows are
    redrawn in a fixed order. Returns ``(noise, reference outputs)``.

    Raises:
        RuntimeError: if rows still break the rule after ``MAX_SETTLE_ROUNDS`` redraws (the
            case is badly chosen, e.g. a tiny TV with a short residual stream).
    """
    rng = np.random.default_rng(case.seed)
    n = case.sizes["n"]
    noise = kind.draw_noise(case, n, rng=rng)
    for _ in range(MAX_SETTLE_ROUNDS):
        try:
            outputs = kind.reference(case.params, noise)
        except ResidualBudgetExceeded as exc:
            rows = np.asarray(exc.unfinished_rows, dtype=np.int64)
            if kind.budget_rows is not None:
                rows = kind.budget_rows(case.params, rows)
            bad = np.unique(rows)
        else:
            margins = kind.row_margins(case.params, noise, outputs)
            bad = np.flatnonzero(margins <= DECISION_MARGIN)
            if bad.size == 0:
                return noise, outputs
        fresh = kind.draw_noise(case, int(bad.size), rng=rng)
        for name, array in noise.items():
            axis = kind.noise_row_axis.get(name, 0)
            np.moveaxis(array, axis, 0)[bad] = np.moveaxis(fresh[name], axis, 0)
    raise RuntimeError(f"case {case.name!r}: rows still within the decision margin after "
                       f"{MAX_SETTLE_ROUNDS} redraws")
