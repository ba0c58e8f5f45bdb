"""Projection directions for the KS checks, chosen from the case, never from the data
(docs/battery.md §2).

Random directions see every discrepancy eventually, but one that lives along a single axis is
diluted by about ``1/sqrt(d)`` in a random projection, and the discrepancies speculative sampling
produces (mass leaking toward the draft, a residual drawn from the wrong law) live along the
directions that separate the draft from the target. So the battery also tests the directions the
*case parameters* determine:

* every coordinate axis ``e_j`` (one-axis bugs, dtype effects in one coordinate); above
  ``MAX_AXES`` dimensions, the ``MAX_AXES`` axes along which draft and target differ most
  (largest ``max_kl |mu_p,kj - mu_q,lj| / s_p,kj + |log(s_q,lj / s_p,kj)|``), ties by index;
* the difference of the mixture means ``E_p[x] - E_q[x]``;
* the differences ``mu_p,k - mu_q,l`` between target and draft component means, for the pairs
  with the largest weight products (at most ``MAX_COMPONENT_DIRECTIONS``).

All are unit vectors, deduplicated (two directions with ``|cos| > 1 - 1e-9`` are one test, since
``a`` and ``-a`` give the same KS statistic). They depend on the case alone, so a KS test along
each is exact under the null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cspd_ref.distributions import GaussianMixture
from cspd_ref.validation import FloatArray

#: At most this many coordinate axes are tested (all of them for d <= MAX_AXES).
MAX_AXES = 64
#: At most this many target/draft component-pair directions are tested.
MAX_COMPONENT_DIRECTIONS = 8
#: Directions closer than this in ``1 - |cos|`` are the same test.
DUPLICATE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Direction:
    """A unit direction the case determines, with the reason it is tested.

    Attributes:
        label: ``"axis[j]"``, ``"mean_difference"`` or ``"components[k,l]"`` (target
            component ``k``, draft component ``l``).
        vector: ``(d,)`` unit vector.

    Examples:
        >>> import numpy as np
        >>> Direction("axis[0]", np.array([1.0, 0.0])).label
        'axis[0]'
    """

    label: str
    vector: FloatArray


def case_directions(draft: GaussianMixture | None, target: GaussianMixture) -> list[Direction]:
    """The directions the case determines: axes, then draft–target directions (see module).

    Args:
        draft: the draft mixture, or None when the case has no closed-form draft (axes only).
        target: the target mixture (batch shape ``()``).

    Returns:
        Deduplicated unit directions, axes first. For ``d == 1`` the single axis.

    Examples:
        >>> from cspd_ref.cases import demo_case
        >>> case = demo_case()
        >>> [c.label for c in case_directions(case.draft, case.target)][:3]
        ['axis[0]', 'axis[1]', 'mean_difference']
        >>> [c.label for c in case_directions(None, case.target)]
        ['axis[0]', 'axis[1]']
    """
    d = target.dim
    axes = np.arange(d)
    if d > MAX_AXES:
        axes = np.sort(np.argsort(-axis_separation(draft, target), kind="stable")[:MAX_AXES])
    chosen: list[Direction] = []
    for j in axes:
        unit = np.zeros(d)
        unit[j] = 1.0
        chosen.append(Direction(f"axis[{j}]", unit))
    if draft is None or d == 1:
        return chosen
    candidates: list[tuple[str, FloatArray]] = []
    mean_p = target.weights @ target.means
    mean_q = draft.weights @ draft.means
    candidates.append(("mean_difference", mean_p - mean_q))
    products = target.weights[:, None] * draft.weights[None, :]
    order = np.argsort(-products, axis=None, kind="stable")
    for flat in order[:MAX_COMPONENT_DIRECTIONS]:
        k, j = np.unravel_index(int(flat), products.shape)
        candidates.append((f"components[{k},{j}]", target.means[k] - draft.means[j]))
    for label, vector in candidates:
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            continue
        unit = np.asarray(vector / norm, dtype=np.float64)
        if any(1.0 - abs(float(unit @ c.vector)) <= DUPLICATE_TOLERANCE for c in chosen):
            continue
        chosen.append(Direction(label, unit))
    return chosen


def axis_separation(draft: GaussianMixture | None, target: GaussianMixture) -> FloatArray:
    """Per coordinate j, how far draft and target components lie apart along ``e_j``:
    ``max_kl |mu_p,kj - mu_q,lj| / s_p,kj + |log(s_q,lj / s_p,kj)|`` (zeros without a draft).

    Examples:
        >>> from cspd_ref import DiagGaussian
        >>> draft = DiagGaussian([1.0, 0.0], [1.0, 1.0])
        >>> axis_separation(draft, DiagGaussian([0.0, 0.0], [1.0, 1.0]))
        array([1., 0.])
    """
    if draft is None:
        return np.zeros(target.dim)
    shift = np.abs(target.means[:, None, :] - draft.means[None, :, :]) / target.scales[:, None, :]
    spread = np.abs(np.log(draft.scales[None, :, :] / target.scales[:, None, :]))
    return np.asarray((shift + spread).max(axis=(0, 1)), dtype=np.float64)
