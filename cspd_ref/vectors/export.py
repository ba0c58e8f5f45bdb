"""Write the committed conformance-vector set (``cspd vectors export DIR``; docs/vectors.md).

For every registered kind and each of its cases: draw the noise from the case's seed, redraw
rows until every decision the reference takes keeps the decision margin (``settle_noise``),
replay the float64 reference, and write parameters, noise and outputs as ``.npy`` files plus
``manifest.json``. Deterministic: exporting twice gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cspd_ref.vectors.kind import Arrays, VectorCase, VectorKind, settle_noise
from cspd_ref.vectors.layout import (
    MANIFEST_NAME,
    ArrayEntry,
    Manifest,
    VectorEntry,
    VectorSetError,
    as_directory,
    canonical_array,
    read_manifest,
    save_array,
    write_manifest,
)
from cspd_ref.vectors.registry import KINDS, get_kind


def select_kinds(kinds: Sequence[str] | None) -> list[VectorKind]:
    """The registered kinds named in ``kinds`` (all, in registry order, when ``None``).

    Raises:
        ValueError: naming ``kinds`` for an empty selection, a non-string or an unknown kind.
    """
    if kinds is None:
        return list(KINDS.values())
    if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
        raise ValueError("kinds: expected a sequence of kind names")
    if not kinds:
        raise ValueError("kinds: the selection is empty")
    selected = []
    for name in kinds:
        try:
            selected.append(get_kind(name))
        except ValueError as exc:
            raise ValueError(f"kinds: {exc}") from None
    return selected


def clear_previous_set(root: Path) -> None:
    """Remove the files an earlier export wrote into ``root`` (only those it lists).

    Raises:
        ValueError: ``root`` is not a directory, or is non-empty without a readable manifest
            (nothing is deleted then).
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise ValueError(f"directory: {str(root)!r} exists and is not a directory")
    if not (root / MANIFEST_NAME).exists():
        if any(root.iterdir()):
            raise ValueError(f"directory: {str(root)!r} is not empty and holds no "
                             f"{MANIFEST_NAME}; refusing to write a vector set into it")
        return
    try:
        old = read_manifest(root)
    except VectorSetError as exc:
        raise ValueError(f"directory: {str(root)!r} holds an unreadable {MANIFEST_NAME} ({exc}); "
                         "remove it first") from None
    for name in old.files():
        (root / name).unlink(missing_ok=True)
    for vector in old.vectors:
        folder = root / vector.name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    (root / MANIFEST_NAME).unlink()


def vector_entry(root: Path, kind: VectorKind, case: VectorCase, noise: Arrays,
                 outputs: Arrays) -> VectorEntry:
    """Write one vector's arrays under ``root/case.name/`` and return its manifest entry."""
    arrays: list[ArrayEntry] = []
    for role, names, source in (("param", kind.params, case.params),
                                ("noise", kind.noise, noise),
                                ("output", kind.outputs, outputs)):
        for name in names:
            dtype = (kind.output_dtypes[name] if role == "output"
                     else kind.param_dtypes.get(name, "float64") if role == "param"
                     else "float64")
            array = canonical_array(source[name], dtype)
            entry = ArrayEntry(name=name, role=role, file=f"{case.name}/{name}.npy",
                               shape=tuple(int(s) for s in array.shape), dtype=dtype)
            save_array(root, entry, array)
            arrays.append(entry)
    return VectorEntry(name=case.name, kind=kind.name, description=case.description,
                       sizes=dict(case.sizes), arrays=tuple(arrays))


def export_vectors(directory: str | Path, *, kinds: Sequence[str] | None = None) -> Manifest:
    """Generate the vector set into ``directory`` and return its manifest.

    Each case's noise is drawn from ``numpy.random.default_rng(case.seed)`` (float32-exact
    values), rows are redrawn until every decision keeps the margin of docs/vectors.md, and the
    outputs are the float64 reference's (``cspd_ref``). An earlier set in ``directory`` is
    replaced (only the files its manifest lists are removed).

    Args:
        directory: the output folder (created if needed).
        kinds: kind names to export (default: every registered kind).

    Raises:
        ValueError: naming ``kinds`` or ``directory`` (see ``select_kinds``,
            ``clear_previous_set``).
    """
    selected = select_kinds(kinds)
    root = as_directory(directory)
    clear_previous_set(root)
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for kind in selected:
        for case in kind.cases():
            noise, outputs = settle_noise(kind, case)
            if set(noise) != set(kind.noise):
                raise RuntimeError(f"kind {kind.name}: draw_noise returned {sorted(noise)}, "
                                   f"expected {sorted(kind.noise)}")
            entries.append(vector_entry(root, kind, case, noise, outputs))
    manifest = Manifest(vectors=tuple(entries))
    write_manifest(root, manifest)
    return manifest
