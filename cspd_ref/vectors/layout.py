"""On-disk layout of a conformance-vector set: ``manifest.json`` plus one ``.npy`` per array.

The format (docs/vectors.md, "Manifest"): ``DIR/manifest.json`` is UTF-8 JSON::

    {"format": "cspd-conformance-vectors", "format_version": 1,
     "documentation": "docs/vectors.md",
     "tolerance": {"factor": 512.0, "float": "...", "eps": {...}, "exact": "..."},
     "decision_margin": {"margin": 0.0001, "accept": "...", "residual": "...", ...},
     "vectors": [{"name": ..., "kind": ..., "description": ..., "sizes": {"n": 128, ...},
                  "arrays": [{"name": ..., "role": "param" | "noise" | "output",
                              "file": "<vector>/<name>.npy", "shape": [...],
                              "dtype": "float64" | "bool" | "int64"}, ...]}, ...]}

Every array is a little-endian, C-ordered NumPy ``.npy`` file (format 1.0, no pickled objects;
read with ``np.load(path, allow_pickle=False)``, or any NPY reader in C++, Rust or JAX).
Writing is deterministic: the same vectors give byte-identical files (no timestamps).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cspd_ref.vectors.kind import DECISION_MARGIN, FLOAT_TOLERANCE_FACTOR

FORMAT = "cspd-conformance-vectors"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ROLES = ("param", "noise", "output")
DTYPES = {"float64": np.dtype("<f8"), "bool": np.dtype("|b1"), "int64": np.dtype("<i8")}
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

TOLERANCE_TEXT = {
    "float": "|actual - expected| <= factor * eps * (1 + |expected|), element by element",
    "eps": {"float64": float(np.finfo(np.float64).eps),
            "float32": float(np.finfo(np.float32).eps)},
    "eps_rule": "eps of the coarser of the compute dtype under test and the returned array's "
                "dtype",
    "nan": "a NaN in an expected float array marks a value that is not computed (an AR "
           "acceptance test never made) and is matched only by NaN",
    "exact": "bool and int64 arrays must be equal element for element",
}
MARGIN_TEXT = {
    "accept": "|log(u) - log_ratio| > margin for every acceptance test",
    "residual": "|u' - (-expm1(min(0, log q(y) - log p(y))))| > margin for every examined "
                "residual proposal (the first `trials` of a rejected row)",
    "component": "|u - W_j| > margin for every cumulative mixture weight W_j (j < K - 1) of "
                 "every component choice that is used",
    "noise": "every noise value is exactly representable in float32; uniforms lie in [0, 1)",
    "parameters": "multiples of 2**-8 (mixture weights of 2**-6), exactly representable in "
                  "float32",
}


class VectorSetError(ValueError):
    """A vector set cannot be read: missing directory, manifest or array, corrupt contents."""


@dataclass(frozen=True)
class ArrayEntry:
    """One array of a vector: its name, role, file (relative to the set), shape and dtype."""

    name: str
    role: str
    file: str
    shape: tuple[int, ...]
    dtype: str

    def to_json(self) -> dict[str, Any]:
        """The manifest entry."""
        return {"name": self.name, "role": self.role, "file": self.file,
                "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class VectorEntry:
    """One vector: a case of one kind with its parameter, noise and output arrays."""

    name: str
    kind: str
    description: str
    sizes: dict[str, int]
    arrays: tuple[ArrayEntry, ...]

    def arrays_of(self, role: str) -> tuple[ArrayEntry, ...]:
        """The entries with ``role`` (``"param"``, ``"noise"`` or ``"output"``)."""
        return tuple(a for a in self.arrays if a.role == role)

    def to_json(self) -> dict[str, Any]:
        """The manifest entry."""
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "sizes": dict(self.sizes), "arrays": [a.to_json() for a in self.arrays]}


@dataclass(frozen=True)
class Manifest:
    """A vector set's manifest (module docstring)."""

    vectors: tuple[VectorEntry, ...]
    float_tolerance_factor: float = FLOAT_TOLERANCE_FACTOR
    decision_margin: float = DECISION_MARGIN
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {"format": FORMAT, "format_version": self.format_version,
                "documentation": "docs/vectors.md",
                "tolerance": {"factor": self.float_tolerance_factor, **TOLERANCE_TEXT},
                "decision_margin": {"margin": self.decision_margin, **MARGIN_TEXT},
                "vectors": [v.to_json() for v in self.vectors]}

    def files(self) -> list[str]:
        """Every array file named by the manifest (relative paths)."""
        return [a.file for v in self.vectors for a in v.arrays]


def require(condition: bool, message: str) -> None:
    """Raise ``VectorSetError(message)`` unless ``condition``."""
    if not condition:
        raise VectorSetError(message)


def parse_array(data: Any, where: str) -> ArrayEntry:
    """An ``ArrayEntry`` from its JSON object, validated."""
    require(isinstance(data, dict), f"{where}: expected an object")
    name, role, file = data.get("name"), data.get("role"), data.get("file")
    shape, dtype = data.get("shape"), data.get("dtype")
    require(isinstance(name, str) and bool(NAME_PATTERN.match(name)), f"{where}: bad name "
            f"{name!r}")
    where = f"{where} ({name})"
    require(role in ROLES, f"{where}: role must be one of {ROLES}, got {role!r}")
    require(isinstance(file, str) and file.endswith(".npy") and not file.startswith("/")
            and ".." not in Path(file).parts, f"{where}: bad file {file!r}")
    require(isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool)
                                            and s >= 0 for s in shape),
            f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    require(dtype in DTYPES, f"{where}: dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    return ArrayEntry(name=name, role=str(role), file=str(file), shape=tuple(shape),
                      dtype=str(dtype))


def parse_vector(data: Any, where: str) -> VectorEntry:
    """A ``VectorEntry`` from its JSON object, validated."""
    require(isinstance(data, dict), f"{where}: expected an object")
    name, kind = data.get("name"), data.get("kind")
    require(isinstance(name, str) and bool(NAME_PATTERN.match(name)),
            f"{where}: bad vector name {name!r}")
    where = f"vector {name!r}"
    require(isinstance(kind, str) and bool(kind), f"{where}: kind must be a non-empty string")
    sizes = data.get("sizes", {})
    require(isinstance(sizes, dict) and all(isinstance(v, int) for v in sizes.values()),
            f"{where}: sizes must map names to integers")
    arrays = data.get("arrays")
    require(isinstance(arrays, list) and bool(arrays), f"{where}: arrays must be a non-empty list")
    entries = tuple(parse_array(a, f"{where} array #{i}") for i, a in enumerate(arrays))
    names = [a.name for a in entries]
    require(len(set(names)) == len(names), f"{where}: duplicate array names")
    return VectorEntry(name=name, kind=kind, description=str(data.get("description", "")),
                       sizes=dict(sizes), arrays=entries)


def parse_manifest(data: Any) -> Manifest:
    """A ``Manifest`` from the decoded JSON document, validated.

    Raises:
        VectorSetError: wrong format name or version, missing or malformed fields.
    """
    require(isinstance(data, dict), "manifest: expected a JSON object")
    require(data.get("format") == FORMAT, f"manifest: format must be {FORMAT!r}, got "
            f"{data.get('format')!r}")
    version = data.get("format_version")
    require(version == FORMAT_VERSION, f"manifest: format_version {version!r} is not supported "
            f"(this reader knows {FORMAT_VERSION})")
    tolerance, margin = data.get("tolerance"), data.get("decision_margin")
    require(isinstance(tolerance, dict) and isinstance(tolerance.get("factor"), int | float)
            and tolerance["factor"] > 0, "manifest: tolerance.factor must be a positive number")
    require(isinstance(margin, dict) and isinstance(margin.get("margin"), int | float),
            "manifest: decision_margin.margin must be a number")
    vectors = data.get("vectors")
    require(isinstance(vectors, list), "manifest: vectors must be a list")
    entries = tuple(parse_vector(v, f"manifest vector #{i}") for i, v in enumerate(vectors))
    names = [v.name for v in entries]
    require(len(set(names)) == len(names), "manifest: duplicate vector names")
    return Manifest(vectors=entries, float_tolerance_factor=float(tolerance["factor"]),
                    decision_margin=float(margin["margin"]), format_version=FORMAT_VERSION)


def as_directory(value: Any) -> Path:
    """``value`` as a ``Path``; ``ValueError`` naming ``directory`` unless it is a path."""
    if not isinstance(value, str | os.PathLike) or str(value) == "":
        raise ValueError(f"directory: expected a path, got {value!r}")
    return Path(value)


def read_manifest(directory: str | Path) -> Manifest:
    """Read and validate ``directory/manifest.json``.

    Raises:
        VectorSetError: the directory or manifest is missing, or it is not a valid manifest.
    """
    root = as_directory(directory)
    require(root.is_dir(), f"directory: {str(root)!r} is not a directory")
    path = root / MANIFEST_NAME
    require(path.is_file(), f"directory: no {MANIFEST_NAME} in {str(root)!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VectorSetError(f"manifest: {str(path)!r} is not valid JSON ({exc})") from exc
    return parse_manifest(data)


def manifest_text(manifest: Manifest) -> str:
    """The manifest as JSON text: 2-space indent, one line per array entry, trailing newline."""
    document = manifest.to_json()
    vectors = document.pop("vectors")
    head = json.dumps(document, indent=2)[:-2]  # drop the closing "\n}"
    blocks = []
    for vector in vectors:
        arrays = vector.pop("arrays")
        fields = json.dumps(vector, indent=2)[:-2].replace("\n", "\n    ")
        rows = ",\n".join(f"        {json.dumps(a)}" for a in arrays)
        blocks.append(f"    {fields},\n      \"arrays\": [\n{rows}\n      ]\n    }}")
    return head + ',\n  "vectors": [\n' + ",\n".join(blocks) + "\n  ]\n}\n"


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Write ``directory/manifest.json`` (``manifest_text``); returns its path."""
    path = Path(directory) / MANIFEST_NAME
    path.write_text(manifest_text(manifest), encoding="utf-8")
    return path


def canonical_array(array: np.ndarray, dtype: str) -> np.ndarray:
    """``array`` as a C-ordered array of the manifest dtype ``dtype`` (little-endian)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {tuple(DTYPES)}, got {dtype!r}")
    return np.array(array, dtype=DTYPES[dtype], order="C", copy=True)


def save_array(directory: str | Path, entry: ArrayEntry, array: np.ndarray) -> None:
    """Write ``array`` to ``directory/entry.file`` as ``.npy`` (never pickled)."""
    path = Path(directory) / entry.file
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.save(handle, canonical_array(array, entry.dtype), allow_pickle=False)


def load_array(directory: str | Path, entry: ArrayEntry, vector: str) -> np.ndarray:
    """Load one array with ``allow_pickle=False`` and check its shape and dtype.

    Raises:
        VectorSetError: the file is missing, unreadable, or disagrees with the manifest.
    """
    path = Path(directory) / entry.file
    where = f"vector {vector!r} array {entry.name!r}"
    require(path.is_file(), f"{where}: missing file {entry.file!r}")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise VectorSetError(f"{where}: cannot read {entry.file!r} ({exc})") from exc
    require(isinstance(array, np.ndarray), f"{where}: {entry.file!r} is not a single array")
    require(array.shape == entry.shape, f"{where}: shape {array.shape} differs from the "
            f"manifest's {entry.shape}")
    require(array.dtype == DTYPES[entry.dtype], f"{where}: dtype {array.dtype} differs from the "
            f"manifest's {entry.dtype}")
    return array


def load_role(directory: str | Path, vector: VectorEntry, role: str) -> dict[str, np.ndarray]:
    """All arrays of ``vector`` with ``role``, by name."""
    return {a.name: load_array(directory, a, vector.name) for a in vector.arrays_of(role)}
