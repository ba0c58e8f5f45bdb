"""The registered conformance-vector kinds: one line per kind module (docs/vectors.md).

A new sampler becomes checkable by writing ``kinds_<name>.py`` with a ``KINDS`` tuple of
``VectorKind``\\ s and adding it here.
"""

from __future__ import annotations

from cspd_ref.vectors import kinds_ar, kinds_diffusion, kinds_token
from cspd_ref.vectors.kind import VectorKind

KINDS: dict[str, VectorKind] = {
    kind.name: kind
    for module in (
        kinds_token,
        kinds_diffusion,
        kinds_ar,
    )
    for kind in module.KINDS
}
"""Kind name -> ``VectorKind``, in documentation order."""


def get_kind(name: str) -> VectorKind:
    """The registered kind ``name``.

    Raises:
        ValueError: naming ``kind`` and listing the known kinds.
    """
    if name not in KINDS:
        raise ValueError(f"kind: unknown kind {name!r} (known: {', '.join(KINDS)})")
    return KINDS[name]
