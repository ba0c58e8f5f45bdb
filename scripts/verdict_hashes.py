"""Hash the battery's verdicts over fixed (sampler, case, seed, tier): a refactor must leave them
unchanged.

``python scripts/verdict_hashes.py`` runs ``cspd_ref.verify.verify`` on a fixed list of runs
(the reference token sampler on the three built-in token cases, the aligned diffusion sampler on
the linear and MLP chains, the AR sampler on the AR mixture, two gross mutants; all at
``tier="quick"`` with seeds 0 and 1, plus one ``tier="full"`` call on the demo case) and prints
one sha256 per run and a total. Per check it hashes the name, ``repr`` of the statistic, the
p-value, ``min_pvalue`` and the Holm-adjusted p-value (bit-exact), and per verdict
``equivalent``. A second total, ``details``, hashes every check's ``details`` as written in
``report.json`` (``CheckResult.details_dict()``, the numbers the reports print) so that
restructuring them is checked too.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from typing import Any

SEEDS = (0, 1)
GROSS_MUTANTS = ("ratio_direction_flipped", "noiseless_last_step")


def runs() -> list[tuple[str, Callable[..., Any], Any, int, str]]:
    """``(label, sampler, case, seed, tier)`` of every run, in a fixed order."""
    from cspd_ref.builtin_cases import ar_mixture_case, linear_chain_case, mlp_chain_case
    from cspd_ref.cases import demo_case, equal_scale_gaussian_case, mixture_1d_case
    from cspd_ref.mutants import MUTANTS
    from cspd_ref.samplers import ar_sampler, diffusion_sampler, token_sampler

    mutants = {m.name: m for m in MUTANTS}
    pairs: list[tuple[str, Callable[..., Any], Any]] = [
        ("token/demo", token_sampler("auto"), demo_case()),
        ("token/equal-scale-d4", token_sampler("auto"), equal_scale_gaussian_case(4, 1.0)),
        ("token/mixture-1d", token_sampler("auto"), mixture_1d_case()),
        ("diffusion/linear-chain", diffusion_sampler("aligned"), linear_chain_case()),
        ("diffusion/mlp-chain", diffusion_sampler("aligned"), mlp_chain_case()),
        ("ar/mixture", ar_sampler(), ar_mixture_case()),
        *[(f"mutant/{name}", mutants[name].sampler, mutants[name].case())
          for name in GROSS_MUTANTS],
    ]
    out = [(f"{label} seed={seed} quick", sampler, case, seed, "quick")
           for label, sampler, case in pairs for seed in SEEDS]
    out.append(("token/demo seed=0 full", token_sampler("auto"), demo_case(), 0, "full"))
    return out


def details_json(value: Any) -> str:
    """``details`` as canonical JSON (the report's ``jsonable`` conversion, key order kept)."""
    from cspd_ref.report.render import jsonable

    return json.dumps(jsonable(value), allow_nan=False)


def main() -> int:
    from cspd_ref.verify import verify

    total = hashlib.sha256()
    details_total = hashlib.sha256()
    for label, sampler, case, seed, tier in runs():
        verdict = verify(sampler, case, seed=seed, tier=tier)
        h = hashlib.sha256()
        h.update(repr(bool(verdict.equivalent)).encode())
        for check, adjusted in zip(verdict.checks, verdict.adjusted_pvalues, strict=True):
            for value in (check.name, repr(float(check.statistic)), repr(float(check.pvalue)),
                          repr(float(check.min_pvalue)), repr(float(adjusted))):
                h.update(value.encode())
                h.update(b"\0")
            details_total.update(details_json(check.details_dict()).encode())
        total.update(h.digest())
        print(f"{label:48s} {'EQ ' if verdict.equivalent else 'NEQ'} {len(verdict.checks):3d} "
              f"{h.hexdigest()}")
    print(f"{'total':48s}         {total.hexdigest()}")
    print(f"{'details':48s}         {details_total.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
