"""Conformance vectors: explicit-noise test vectors that any port of the samplers can replay.

A vector set (docs/vectors.md) is a folder with ``manifest.json`` and ``.npy`` arrays holding,
for each sampler kind, the case parameters, the explicit noise in the layout the
``*_from_noise`` functions consume, and the float64 reference outputs. ``export_vectors``
writes a set; ``check_vectors`` replays it through any implementation behind the one
``replay(kind, params, noise) -> dict | NotImplemented`` interface (``reference_replay``,
``torch_replay`` or a port's function) and compares the outputs under a stated tolerance.
"""

from cspd_ref.vectors.check import ArrayComparison, CheckReport, VectorOutcome, check_vectors
from cspd_ref.vectors.export import export_vectors
from cspd_ref.vectors.kind import DECISION_MARGIN, FLOAT_TOLERANCE_FACTOR, VectorKind
from cspd_ref.vectors.layout import (
    FORMAT_VERSION,
    ArrayEntry,
    Manifest,
    VectorEntry,
    VectorSetError,
    read_manifest,
)
from cspd_ref.vectors.registry import KINDS
from cspd_ref.vectors.replay import Replay, reference_replay, resolve_implementation, torch_replay

__all__ = [
    "DECISION_MARGIN",
    "FLOAT_TOLERANCE_FACTOR",
    "FORMAT_VERSION",
    "KINDS",
    "ArrayComparison",
    "ArrayEntry",
    "CheckReport",
    "Manifest",
    "Replay",
    "VectorEntry",
    "VectorKind",
    "VectorOutcome",
    "VectorSetError",
    "check_vectors",
    "export_vectors",
    "read_manifest",
    "reference_replay",
    "resolve_implementation",
    "torch_replay",
]
