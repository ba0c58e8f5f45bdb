"""Two samplers following the contract of docs/contract.md, for the example reports and the
CLI tests.

* ``reference_sampler`` — the float64 reference speculative sampler: exact, so ``cspd verify``
  calls it equivalent (and it exposes its accept mask and residual trial counts, so the
  acceptance and trial checks run too).
* ``draft_only_sampler`` — a known-bad sampler that returns draft samples as if every draft
  were accepted: ``cspd verify`` must call it not equivalent.
* ``make_reference_sampler()`` — a factory returning the reference sampler (for the
  ``module:factory()`` form of a sampler spec).

``cspd verify cspd_ref.report.example_samplers:reference_sampler`` runs the first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cspd_ref.samplers import Sampler, token_sampler
from cspd_ref.speculative import SpeculativeResult


def reference_sampler(case: Any, n: int, seed: int) -> SpeculativeResult:
    """Exact speculative sampling of ``case.target`` from ``case.draft`` (float64 reference)."""
    return token_sampler("auto")(case, n, seed)


def draft_only_sampler(case: Any, n: int, seed: int) -> np.ndarray:
    """Known-bad: returns ``n`` draft samples (the law of ``case.draft``, not the target's)."""
    return case.draft.sample(n, rng=np.random.default_rng(seed))


def make_reference_sampler(residual: str = "auto") -> Sampler:
    """A factory (for ``module:factory()`` specs): the reference sampler with a chosen residual
    method (``"auto" | "loop" | "batched" | "reflection"``)."""
    return token_sampler(residual)
