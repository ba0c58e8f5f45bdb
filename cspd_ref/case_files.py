"""Token cases from JSON files, for ``cspd verify --case path/to/case.json``.

A case file holds one draft/target pair of diagonal Gaussian mixtures::

    {
      "name": "my-case",
      "draft":  {"weights": [1.0],      "means": [[0.0, 0.0]],             "scales": [[1.0, 1.0]]},
      "target": {"weights": [0.5, 0.5], "means": [[-1.0, 0.0], [1.0, 0.0]],
                 "scales": [[0.7, 1.0], [0.7, 1.0]]}
    }

``weights`` has K entries summing to 1 (within the rounding of the digits written), ``means``
and ``scales`` are K rows of d numbers, scales > 0 (``docs/contract.md``). ``name`` is optional
(default: the file's stem). Every error names the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cspd_ref.cases import Case
from cspd_ref.distributions import GaussianMixture

MIXTURE_FIELDS = ("weights", "means", "scales")


def mixture_from_json(value: Any, where: str) -> GaussianMixture:
    """A ``GaussianMixture`` from ``{"weights": ..., "means": ..., "scales": ...}``.

    Raises:
        ValueError: naming ``where`` and the field for a missing or extra field or a bad value.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object with {', '.join(MIXTURE_FIELDS)}")
    missing = [f for f in MIXTURE_FIELDS if f not in value]
    extra = sorted(set(value) - set(MIXTURE_FIELDS))
    if missing or extra:
        raise ValueError(f"{where}: missing field(s) {missing}" if missing else
                         f"{where}: unknown field(s) {extra}")
    try:
        return GaussianMixture(value["weights"], value["means"], value["scales"])
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None


def load_case_file(path: str | Path) -> Case:
    """The ``Case`` in a JSON case file (format in the module docstring).

    Raises:
        ValueError: the file is missing, is not JSON, or a field is missing or invalid; the
            message names the file and the field.

    Examples:
        >>> import json, tempfile, os
        >>> spec = {"draft": {"weights": [1.0], "means": [[0.0]], "scales": [[1.0]]},
        ...         "target": {"weights": [1.0], "means": [[0.5]], "scales": [[1.0]]}}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "shift.json")
        ...     _ = open(path, "w").write(json.dumps(spec))
        ...     load_case_file(path).name
        'shift'
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"case: cannot read {str(file)!r} ({exc.strerror})") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"case: {str(file)!r} is not valid JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"case: {str(file)!r} must hold a JSON object")
    extra = sorted(set(spec) - {"name", "draft", "target"})
    if extra:
        raise ValueError(f"case: {str(file)!r} has unknown field(s) {extra}")
    for side in ("draft", "target"):
        if side not in spec:
            raise ValueError(f"case: {str(file)!r} has no {side!r} mixture")
    name = spec.get("name", file.stem)
    if not isinstance(name, str) or not name:
        raise ValueError(f"case: {str(file)!r}: name must be a non-empty string")
    where = str(file)
    draft = mixture_from_json(spec["draft"], f"{where}: draft")
    target = mixture_from_json(spec["target"], f"{where}: target")
    try:
        return Case(draft=draft, target=target, name=name)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
