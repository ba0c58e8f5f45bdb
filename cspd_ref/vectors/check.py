"""Replay a vector set through an implementation and compare its outputs (docs/vectors.md).

For each selected vector: load its parameters and noise, call ``replay(kind, params, noise)``,
and compare every output the kind declares with the stored reference output:

* float arrays: ``|actual - expected| <= factor * eps * (1 + |expected|)`` element by element,
  ``factor`` from the manifest and ``eps`` the machine epsilon of the coarser of the stated
  compute dtype and the returned array's dtype; a NaN in the expected array marks a value
  that is not computed (an AR acceptance test never made) and is matched only by NaN, a NaN
  anywhere else never matches;
* bool and integer arrays (``accepted``, ``trials``): exact equality.

A vector is *undecided* when it cannot be compared: its kind is unknown, an array is missing or
corrupt, the implementation raises, returns ``NotImplemented`` or omits an output. Exit status of
the report: 2 if any selected vector is undecided, else 1 if any array mismatches, else 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cspd_ref.vectors.layout import (
    Manifest,
    VectorEntry,
    VectorSetError,
    as_directory,
    load_role,
    read_manifest,
)
from cspd_ref.vectors.registry import KINDS, get_kind
from cspd_ref.vectors.replay import COMPUTE_DTYPES, Replay


@dataclass(frozen=True)
class ArrayComparison:
    """One output array compared with the reference.

    Attributes:
        name: the output's name.
        rule: ``"float"`` (tolerance) or ``"exact"``.
        elements: number of elements expected.
        mismatched: elements beyond tolerance / different (all of them on a shape mismatch).
        worst_index: index of the worst float element or the first differing exact element.
        expected, actual: those elements, as plain Python numbers.
        tolerance: the float tolerance at the worst element (``None`` for exact arrays).
        worst_ratio: ``max |actual - expected| / tolerance`` (float arrays; ``inf`` for NaN).
        note: why nothing could be compared element-wise (shape or dtype), else empty.
    """

    name: str
    rule: str
    elements: int
    mismatched: int
    worst_index: tuple[int, ...] | None = None
    expected: float | int | bool | None = None
    actual: float | int | bool | None = None
    tolerance: float | None = None
    worst_ratio: float | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        """True when every element matches."""
        return self.mismatched == 0

    def describe(self) -> str:
        """One line, plain numbers (no NumPy reprs)."""
        if self.note:
            return f"array {self.name}: {self.note}"
        if self.ok:
            return f"array {self.name}: {self.elements} elements match"
        where = list(self.worst_index or ())
        if self.rule == "float":
            diff = abs(float(self.actual or 0.0) - float(self.expected or 0.0))
            return (f"array {self.name}: {self.mismatched} of {self.elements} elements beyond "
                    f"tolerance; worst at {where}: expected {self.expected!r}, got "
                    f"{self.actual!r}, |diff| {diff:.6g} > tolerance {self.tolerance:.6g}")
        return (f"array {self.name}: {self.mismatched} of {self.elements} elements differ; first "
                f"at {where}: expected {self.expected!r}, got {self.actual!r}")


@dataclass(frozen=True)
class VectorOutcome:
    """The result for one vector: its comparisons, or why it could not be decided."""

    name: str
    kind: str
    arrays: tuple[ArrayComparison, ...] = ()
    undecided: str | None = None

    @property
    def status(self) -> str:
        """``"match"``, ``"mismatch"`` or ``"undecided"``."""
        if self.undecided is not None:
            return "undecided"
        return "match" if all(a.ok for a in self.arrays) else "mismatch"


@dataclass(frozen=True)
class CheckReport:
    """All outcomes of one ``check_vectors`` call."""

    directory: str
    implementation: str
    dtype: str
    outcomes: tuple[VectorOutcome, ...]

    @property
    def exit_code(self) -> int:
        """2 if any vector is undecided, else 1 if any mismatches, else 0."""
        statuses = {o.status for o in self.outcomes}
        if "undecided" in statuses or not self.outcomes:
            return 2
        return 1 if "mismatch" in statuses else 0

    @property
    def ok(self) -> bool:
        """True when every selected vector matches."""
        return self.exit_code == 0

    def count(self, status: str) -> int:
        """Number of vectors with ``status``."""
        return sum(o.status == status for o in self.outcomes)

    def lines(self) -> list[str]:
        """A human-readable report: one line per vector, one per mismatching array, a summary."""
        out = []
        for o in self.outcomes:
            head = f"vector {o.name} ({o.kind})"
            if o.status == "undecided":
                out.append(f"UNDECIDED {head}: {o.undecided}")
            elif o.status == "match":
                ratios = [a.worst_ratio for a in o.arrays if a.worst_ratio is not None]
                worst = f"; worst float error {max(ratios):.3g} x tolerance" if ratios else ""
                out.append(f"ok        {head}: {len(o.arrays)} arrays match{worst}")
            else:
                out.append(f"MISMATCH  {head}:")
                out.extend(f"    {a.describe()}" for a in o.arrays if not a.ok)
        out.append(f"{len(self.outcomes)} vectors: {self.count('match')} match, "
                   f"{self.count('mismatch')} mismatch, {self.count('undecided')} undecided "
                   f"({self.implementation}, tolerance dtype {self.dtype}, {self.directory})")
        return out

    def undecided_reason(self) -> str:
        """The first reason a vector could not be decided, with a count of the others."""
        reasons = [f"vector {o.name} ({o.kind}): {o.undecided}" for o in self.outcomes
                   if o.undecided is not None]
        if not reasons:
            return "no vectors selected" if not self.outcomes else ""
        more = f" (+{len(reasons) - 1} more undecided)" if len(reasons) > 1 else ""
        return reasons[0] + more


def plain(value: Any) -> float | int | bool:
    """A NumPy scalar as a plain Python number."""
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    return float(value)


def compare_array(name: str, expected: np.ndarray, actual_raw: Any, *, compute_eps: float,
                  factor: float) -> ArrayComparison:
    """Compare one returned array with the stored reference (module docstring rules).

    Raises:
        ValueError: naming ``actual`` when the returned value cannot be read as an array.
    """
    try:
        actual = np.asarray(actual_raw)
    except Exception as exc:
        raise ValueError(f"actual: output {name!r} cannot be read as an array ({exc})") from exc
    is_float = expected.dtype.kind == "f"
    rule = "float" if is_float else "exact"
    size = int(expected.size)
    if actual.dtype.kind not in "biuf":
        return ArrayComparison(name, rule, size, size, note=f"returned dtype {actual.dtype} is "
                               "not boolean, integer or real floating")
    if actual.shape != expected.shape:
        return ArrayComparison(name, rule, size, size, note=f"returned shape "
                               f"{list(actual.shape)}, expected {list(expected.shape)}")
    if size == 0:
        return ArrayComparison(name, rule, 0, 0)
    if is_float:
        eps = max(compute_eps, float(np.finfo(actual.dtype).eps) if actual.dtype.kind == "f"
                  else 0.0)
        got = actual.astype(np.float64)
        tolerance = factor * eps * (1.0 + np.abs(expected))
        with np.errstate(invalid="ignore"):
            ratio = np.abs(got - expected) / tolerance
        # NaN expected marks "not computed" (e.g. a test never made): only NaN matches it
        ratio = np.where(np.isnan(expected), np.where(np.isnan(got), 0.0, np.inf),
                         np.where(np.isnan(ratio), np.inf, ratio))
        worst = np.unravel_index(int(np.argmax(ratio)), expected.shape)
        return ArrayComparison(name, rule, size, int(np.count_nonzero(ratio > 1.0)),
                               tuple(int(i) for i in worst), plain(expected[worst]),
                               plain(got[worst]), float(tolerance[worst]),
                               float(ratio[worst]))
    with np.errstate(invalid="ignore"):
        differ = np.asarray(actual != expected)
    if not differ.any():
        return ArrayComparison(name, rule, size, 0)
    first = np.unravel_index(int(np.argmax(differ)), expected.shape)
    return ArrayComparison(name, rule, size, int(np.count_nonzero(differ)),
                           tuple(int(i) for i in first), plain(expected[first]),
                           plain(actual[first]))


def declared_problem(vector: VectorEntry) -> str | None:
    """Why ``vector`` does not fit its kind's declared arrays (None when it does)."""
    if vector.kind not in KINDS:
        return f"unknown kind {vector.kind!r} (this cspd knows: {', '.join(KINDS)})"
    kind = KINDS[vector.kind]
    for role, names in (("param", kind.params), ("noise", kind.noise),
                        ("output", kind.outputs)):
        have = {a.name for a in vector.arrays_of(role)}
        missing = [n for n in names if n not in have]
        if missing:
            return f"the manifest lists no {role} array {missing[0]!r}"
    return None


def check_vector(directory: Path, vector: VectorEntry, replay: Replay, *, compute_eps: float,
                 factor: float, reraise: bool = False) -> VectorOutcome:
    """Replay and compare one vector (``VectorOutcome.undecided`` says why it could not be);
    with ``reraise`` an exception of the implementation propagates (for debugging)."""
    problem = declared_problem(vector)
    if problem:
        return VectorOutcome(vector.name, vector.kind, undecided=problem)
    kind = KINDS[vector.kind]
    try:
        params = load_role(directory, vector, "param")
        noise = load_role(directory, vector, "noise")
        expected = load_role(directory, vector, "output")
    except VectorSetError as exc:
        return VectorOutcome(vector.name, vector.kind, undecided=str(exc))
    try:
        result = replay(vector.kind, params, noise)
    except Exception as exc:
        if reraise:
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        return VectorOutcome(vector.name, vector.kind, undecided=(
            f"the implementation raised {type(exc).__name__}: {message}"))
    if result is NotImplemented:
        return VectorOutcome(vector.name, vector.kind, undecided=(
            f"the implementation does not implement kind {vector.kind!r} (returned "
            "NotImplemented; select other kinds with --kinds)"))
    if not isinstance(result, Mapping):
        return VectorOutcome(vector.name, vector.kind, undecided=(
            f"the implementation returned {type(result).__name__}, expected a dict of arrays"))
    missing = [name for name in kind.outputs if name not in result]
    if missing:
        return VectorOutcome(vector.name, vector.kind, undecided=(
            f"the implementation returned no {missing[0]!r} array"))
    try:
        arrays = tuple(compare_array(name, expected[name], result[name],
                                     compute_eps=compute_eps, factor=factor)
                       for name in kind.outputs)
    except ValueError as exc:
        return VectorOutcome(vector.name, vector.kind, undecided=str(exc))
    return VectorOutcome(vector.name, vector.kind, arrays)


def select_vectors(manifest: Manifest, kinds: Sequence[str] | None,
                   directory: Path) -> list[VectorEntry]:
    """The manifest's vectors of the selected kinds (all when ``kinds`` is None).

    Raises:
        ValueError: naming ``kinds`` for an unknown kind or a kind without vectors in the set.
    """
    if kinds is None:
        return list(manifest.vectors)
    if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds) or not kinds:
        raise ValueError("kinds: expected a non-empty sequence of kind names")
    for name in kinds:
        try:
            get_kind(name)
        except ValueError as exc:
            raise ValueError(f"kinds: {exc}") from None
        if not any(v.kind == name for v in manifest.vectors):
            raise ValueError(f"kinds: the set in {str(directory)!r} has no vectors of kind "
                             f"{name!r}")
    return [v for v in manifest.vectors if v.kind in kinds]


def check_vectors(directory: str | Path, replay: Replay, *, kinds: Sequence[str] | None = None,
                  dtype: str = "float64", label: str | None = None,
                  reraise: bool = False) -> CheckReport:
    """Check an implementation against the vector set in ``directory``.

    Args:
        directory: a folder written by ``export_vectors`` (``manifest.json`` + ``.npy``).
        replay: ``replay(kind, params, noise) -> dict | NotImplemented`` (``replay.Replay``).
        kinds: kind names to check (default: every vector in the set).
        dtype: the implementation's compute dtype (``"float64"`` or ``"float32"``); its
            epsilon is the floor of the float tolerance.
        label: the implementation's name in the report.
        reraise: let an exception raised by ``replay`` propagate instead of recording the
            vector as undecided (the CLI's ``--debug``).

    Returns:
        A ``CheckReport``; its ``exit_code`` is 0 (all match), 1 (some array mismatches) or 2
        (some vector undecided).

    Raises:
        VectorSetError: the directory or manifest is missing or corrupt.
        ValueError: naming ``replay``, ``kinds`` or ``dtype``.
    """
    if not callable(replay):
        raise ValueError("replay: expected a callable replay(kind, params, noise)")
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"dtype: expected one of {COMPUTE_DTYPES}, got {dtype!r}")
    root = as_directory(directory)
    manifest = read_manifest(root)
    selected = select_vectors(manifest, kinds, root)
    eps = float(np.finfo(np.dtype(dtype)).eps)
    outcomes = tuple(check_vector(root, v, replay, compute_eps=eps,
                                  factor=manifest.float_tolerance_factor, reraise=reraise)
                     for v in selected)
    name = label or str(getattr(replay, "__name__", type(replay).__name__))
    return CheckReport(directory=str(root), implementation=name, dtype=dtype,
                       outcomes=outcomes)
