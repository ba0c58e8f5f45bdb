"""Mutants at the edge of detectability, and the grid of family members for power curves.

``edge_members()`` lists members whose law differs from the target by a KS distance of
0.006-0.02 along a case direction, or an atom of 0.1-1 %, on d = 1, 16, 64 and TV 0.005-0.3,
each with its effect size measured once (``n_ref = EDGE_N_REF`` samples, seed ``EDGE_SEED``;
``property_tests/mutant_families.py`` holds the measuring code) and recorded as a constant.
The default ``verify`` (``tier="full"``, alpha 1e-4) flags every one of them
(``reports/edge_members.md``). ``FAMILY_GRID`` spans effect sizes from clearly detectable to
undetectable at n = 10^6 (``reports/power.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from cspd_ref.mutants.ar_families import ar_keeps_extra_groups
from cspd_ref.mutants.family_cases import (
    Member,
    RecordedEffect,
    ar_case,
    gaussian_case,
    mixture_case,
    single_axis_shift,
    single_axis_shift_sampler,
    standard_normal_case,
)
from cspd_ref.mutants.token_families import (
    capped_residual,
    draft_temperature,
    low_precision_log_density,
    mass_toward_draft,
    residual_from_draft,
)

FloatArray = np.ndarray
Sampler = Callable[[Any, int, int], Any]


# =========================================================================== grid and edge
DKW_LEVEL = 0.01
"""The noise bounds of the recorded effect sizes hold with probability 1 - DKW_LEVEL (99 %)."""

def dkw_bound(n: int, level: float = DKW_LEVEL) -> float:
    """``sqrt(ln(2/level) / (2n))``: the empirical CDF of n iid draws is within this sup
    distance of the true CDF with probability >= 1 - level (DKW, Massart's constant)."""
    return math.sqrt(math.log(2.0 / level) / (2.0 * n))


CaseArgs = tuple[str, dict[str, Any]]


def build_case(args: CaseArgs) -> Any:
    """Build a case from ``(builder, kwargs)``: ``"gaussian"``, ``"mixture"``, ``"ar"`` or
    ``"standard_normal"`` (``gaussian_case``, ``mixture_case``, ``ar_case``,
    ``standard_normal_case``)."""
    builders: dict[str, Callable[..., Any]] = {
        "gaussian": gaussian_case, "mixture": mixture_case, "ar": ar_case,
        "standard_normal": standard_normal_case}
    name, kwargs = args
    return builders[name](**kwargs)


FAMILIES: dict[str, Callable[..., Sampler]] = {
    "capped_residual": lambda param: capped_residual(*param),
    "draft_temperature": draft_temperature,
    "mass_toward_draft": mass_toward_draft,
    "low_precision_log_density": low_precision_log_density,
    "residual_from_draft": lambda _param: residual_from_draft(),
    "ar_keeps_extra_groups": ar_keeps_extra_groups,
    "single_axis_shift": single_axis_shift_sampler,
}
"""Family name -> factory of one parameter (``capped_residual`` takes ``(cap, fallback)``)."""


def build_sampler(family: str, parameter: Any) -> Sampler:
    """The sampler of ``family`` at ``parameter`` (see ``FAMILIES``)."""
    return FAMILIES[family](parameter)


class GridPoint(NamedTuple):
    """``(family name, parameter, case builder args)``: one point of a power curve."""

    family: str
    parameter: Any
    case_args: CaseArgs

    def sampler(self) -> Sampler:
        """The family member."""
        return build_sampler(self.family, self.parameter)

    def case(self) -> Any:
        """The case."""
        return build_case(self.case_args)


def _g(d: int, tv: float) -> CaseArgs:
    return ("gaussian", {"d": d, "tv": tv})


def _m(d: int, K: int, tv: float) -> CaseArgs:
    return ("mixture", {"d": d, "K": K, "tv_hint": tv})


FAMILY_GRID: list[GridPoint] = [
    # atom TV (1 - TV)^cap at TV = 0.3: 5.0e-2, 8.5e-3, 2.4e-4, 1.9e-7, 1e-16
    *[GridPoint("capped_residual", (cap, "zero"), _g(1, 0.3)) for cap in (5, 10, 20, 40, 100)],
    *[GridPoint("capped_residual", (cap, "zero"), _m(16, 5, 0.1)) for cap in (5, 20, 40, 100)],
    *[GridPoint("capped_residual", (cap, "draft"), _m(16, 5, 0.1)) for cap in (5, 10, 20, 40, 100)],
    *[GridPoint("capped_residual", (cap, "fresh_draft"), _g(64, 0.05))
      for cap in (5, 20, 50, 100)],
    *[GridPoint("draft_temperature", tau, _g(1, 0.05)) for tau in (1.2, 1.1, 1.05, 1.02)],
    *[GridPoint("draft_temperature", tau, _m(16, 5, 0.1)) for tau in (1.2, 1.1, 1.05, 1.02, 1.01)],
    *[GridPoint("mass_toward_draft", w, _g(64, 0.3)) for w in (0.2, 0.1, 0.05, 0.02, 0.01, 0.005)],
    *[GridPoint("mass_toward_draft", w, _m(16, 5, 0.1)) for w in (0.2, 0.1, 0.05, 0.02, 0.01)],
    *[GridPoint("low_precision_log_density", dt, case)
      for dt in ("bfloat16", "float16")
      for case in (_g(1, 0.05), _m(16, 5, 0.1), _g(64, 0.005), _g(64, 0.3))],
    *[GridPoint("residual_from_draft", None, _g(1, tv)) for tv in (0.3, 0.1, 0.05, 0.02, 0.005)],
    *[GridPoint("residual_from_draft", None, _m(d, 5, 0.1)) for d in (1, 16)],
    *[GridPoint("ar_keeps_extra_groups", k, ("ar", {"perturbation": pert}))
      for k in (1, 2) for pert in (0.4, 0.2, 0.1, 0.05, 0.02, 0.01)],
    *[GridPoint("single_axis_shift", shift, ("standard_normal", {"d": 16}))
      for shift in (0.15, 0.05, 0.02, 0.005)],
]
"""Points from clearly detectable to undetectable at n = 1e6, for power curves."""


EDGE_N_REF = 4_000_000
EDGE_SEED = 8

EDGE_SPECS: tuple[GridPoint, ...] = (
    GridPoint("capped_residual", (10, "zero"), _g(1, 0.3)),
    GridPoint("capped_residual", (30, "zero"), _m(16, 5, 0.1)),
    GridPoint("capped_residual", (15, "draft"), _m(16, 5, 0.1)),
    GridPoint("capped_residual", (25, "fresh_draft"), _g(64, 0.05)),
    GridPoint("draft_temperature", 1.04, _g(1, 0.3)),
    GridPoint("draft_temperature", 1.05, _m(16, 5, 0.1)),
    GridPoint("draft_temperature", 1.04, _g(64, 0.005)),
    GridPoint("mass_toward_draft", 0.04, _g(64, 0.3)),
    GridPoint("mass_toward_draft", 0.2, _g(16, 0.05)),
    GridPoint("low_precision_log_density", "bfloat16", _g(64, 0.3)),
    GridPoint("residual_from_draft", None, _m(1, 3, 0.1)),
)
"""The edge members' (family, parameter, case); ``single_axis_shift(16, 0.15)`` comes last."""


def _recorded(ks: float, direction: str, *, atom: float, acceptance: float | None,
              closed_ks: float | None, closed_atom: float | None) -> RecordedEffect:
    return RecordedEffect(ks=ks, ks_direction=direction, ks_noise=dkw_bound(EDGE_N_REF),
                          atom_mass=atom, acceptance_deviation=acceptance,
                          closed_form_ks=closed_ks, closed_form_atom=closed_atom,
                          n_ref=EDGE_N_REF, seed=EDGE_SEED)


EDGE_RECORDED: tuple[RecordedEffect, ...] = (
    # capped_residual(10, zero), gaussian d1 tv0.3
    _recorded(0.00878481, "axis[0]", atom=0.0085085, acceptance=0.00026125,
              closed_ks=0.00847426, closed_atom=0.00847426),
    # capped_residual(30, zero), mixture d16 K5 tv0.1
    _recorded(0.00349103, "components[1,1]", atom=0.00414875, acceptance=-0.000143922,
              closed_ks=None, closed_atom=0.00416622),
    # capped_residual(15, draft), mixture d16 K5 tv0.1
    _recorded(0.00817635, "components[1,1]", atom=0.0, acceptance=-0.000143922,
              closed_ks=None, closed_atom=None),
    # capped_residual(25, fresh_draft), gaussian d64 tv0.05
    _recorded(0.00836857, "mean_difference", atom=0.0, acceptance=-0.00022525,
              closed_ks=None, closed_atom=None),
    # draft_temperature 1.04, gaussian d1 tv0.3
    _recorded(0.0117923, "axis[0]", atom=0.0, acceptance=-0.002804,
              closed_ks=0.0120865, closed_atom=0.0),
    # draft_temperature 1.05, mixture d16 K5 tv0.1
    _recorded(0.00942143, "axis[6]", atom=0.0, acceptance=-0.00294642,
              closed_ks=None, closed_atom=None),
    # draft_temperature 1.04, gaussian d64 tv0.005
    _recorded(0.0100231, "axis[47]", atom=0.0, acceptance=-0.0002515,
              closed_ks=None, closed_atom=None),
    # mass_toward_draft 0.04, gaussian d64 tv0.3
    _recorded(0.011658, "mean_difference", atom=0.0, acceptance=0.011483,
              closed_ks=0.012, closed_atom=None),
    # mass_toward_draft 0.2, gaussian d16 tv0.05
    _recorded(0.0101136, "mean_difference", atom=0.0, acceptance=0.009998,
              closed_ks=0.01, closed_atom=None),
    # low_precision_log_density bfloat16, gaussian d64 tv0.3
    _recorded(0.00693079, "mean_difference", atom=0.0, acceptance=0.0067985,
              closed_ks=None, closed_atom=None),
    # residual_from_draft, mixture d1 K3 tv0.1
    _recorded(0.0117669, "axis[0]", atom=0.0, acceptance=0.000178533,
              closed_ks=0.0114781, closed_atom=0.0),
)

"""``measure_edge_member(spec)`` for each of ``EDGE_SPECS`` (n_ref = EDGE_N_REF,
seed = EDGE_SEED), recorded by ``python -m property_tests.mutant_families``."""



def edge_members() -> list[Member]:
    """Members at the edge of detectability at n ≈ 1e6: KS distance 0.006–0.02 along a case
    direction, or an atom of 0.1–1 %, on d = 1, 16, 64 and TV 0.005–0.3, each with its effect
    measured by ``effect_size`` (``n_ref = EDGE_N_REF``, ``seed = EDGE_SEED``, noise bound
    ``dkw_bound(EDGE_N_REF)`` = 8.1e-4) recorded next to it; plus the single-axis shift 0.15 in
    d = 16 (KS 0.0598 along its axis, ~0.015 along a random direction)."""
    members = [Member(spec.family, spec.parameter, spec.sampler(), spec.case(), effect)
               for spec, effect in zip(EDGE_SPECS, EDGE_RECORDED, strict=True)]
    return [*members, single_axis_shift(16, 0.15)]
