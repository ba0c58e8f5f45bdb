"""Known-bad samplers: mutation testing for your gate.

A gate that never fails is worthless; show that yours fails on real bugs. Each mutant is the
reference algorithm with one deliberate, realistic mistake (``docs/algorithms.md`` lists why
each breaks exactness). Run them through ``cspd_ref.testing.assert_flagged`` with the same
``alpha``, ``n`` and ``tier`` as your ``assert_equivalent`` calls.

* ``MUTANTS``: the gross catalog — 19 ``Mutant`` records (name, mistake, sampler, case, n), on
  token, diffusion and AR cases; any configuration of the battery should flag all of them.
* ``edge_members()``: family members at the edge of detectability at n = 10^6 (KS distance
  0.006-0.02 or an atom of 0.1-1 %), with their measured effect sizes; the default
  ``verify(tier="full")`` flags them, ``tier="quick"`` does not claim to.
* Families with a size knob: ``capped_residual``, ``draft_temperature``, ``mass_toward_draft``,
  ``low_precision_log_density``, ``residual_from_draft``, ``ar_keeps_extra_groups``,
  ``single_axis_shift_sampler``; ``FAMILY_GRID`` spans them for power curves.

Every sampler follows the contract ``sampler(case, n, seed)`` and is seeded only from ``seed``.

Examples:
    >>> from cspd_ref.mutants import MUTANTS
    >>> from cspd_ref.testing import assert_flagged
    >>> mutant = next(m for m in MUTANTS if m.name == "ratio_direction_flipped")
    >>> verdict = assert_flagged(mutant.sampler, mutant.case(), alpha=1e-6, tier="quick")
    >>> verdict.equivalent
    False
"""

from cspd_ref.mutants.ar_families import ar_keeps_extra_groups
from cspd_ref.mutants.catalog import MUTANTS, Mutant
from cspd_ref.mutants.edge import FAMILIES, FAMILY_GRID, GridPoint, edge_members
from cspd_ref.mutants.family_cases import Member, RecordedEffect, single_axis_shift_sampler
from cspd_ref.mutants.token_families import (
    TokenMistake,
    capped_residual,
    draft_temperature,
    low_precision_log_density,
    mass_toward_draft,
    residual_from_draft,
)

__all__ = [
    "FAMILIES",
    "FAMILY_GRID",
    "MUTANTS",
    "GridPoint",
    "Member",
    "Mutant",
    "RecordedEffect",
    "TokenMistake",
    "ar_keeps_extra_groups",
    "capped_residual",
    "draft_temperature",
    "edge_members",
    "low_precision_log_density",
    "mass_toward_draft",
    "residual_from_draft",
    "single_axis_shift_sampler",
]
