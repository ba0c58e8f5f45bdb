"""Hash the outputs of every sampler over fixed seeds: a refactor must leave them unchanged.

``python scripts/output_hashes.py`` prints one sha256 per sampler family and a total. Run it
before and after a change that claims "no change of law, sample for sample" and compare: the
reference samplers (token loop/batched/reflection/auto, aligned and joint diffusion, AR decoding,
their from-noise twins via the generator wrappers), gpu_impl on the CPU (float64 and float32),
the gross mutants and the mutant families. Everything returned — samples, accept masks, trial
counts, AR counters — goes into the hash, as float64/int64/bool bytes.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

SEEDS = (0, 1, 2)
N_TOKENS = 512
N_SEQUENCES = 64


def arrays_of(output: Any) -> Iterable[np.ndarray]:
    """Every array a sampler returned, in a fixed order."""
    if hasattr(output, "detach"):
        yield output.detach().cpu().double().numpy() if output.is_floating_point() else \
            output.detach().cpu().numpy()
        return
    if isinstance(output, np.ndarray):
        yield output
        return
    for name in ("samples", "accepted", "trials", "sequences", "target_passes",
                 "prefill_passes", "drafted_groups", "accepted_groups", "bonus_groups"):
        value = getattr(output, name, None)
        if value is not None:
            yield from arrays_of(value)
    stats = getattr(output, "stats", None)
    if stats is not None:
        yield from arrays_of(stats)


def digest(update: Callable[[bytes], None], output: Any) -> None:
    for array in arrays_of(output):
        a = np.ascontiguousarray(array)
        if a.dtype.kind == "f":
            a = a.astype(np.float64)
        elif a.dtype.kind in "iu":
            a = a.astype(np.int64)
        update(str(a.shape).encode())
        update(a.tobytes())


def family_hashes() -> dict[str, str]:
    import torch

    import gpu_impl
    from cspd_ref.builtin_cases import ar_mixture_case, linear_chain_case
    from cspd_ref.cases import demo_case, equal_scale_gaussian_case, mixture_1d_case
    from cspd_ref.mutants import MUTANTS, edge_members
    from cspd_ref.report.implementations import gpu_sampler
    from cspd_ref.samplers import ar_sampler, diffusion_sampler, token_sampler

    token_cases = [demo_case(), equal_scale_gaussian_case(4, 1.0), mixture_1d_case()]
    families: dict[str, list[tuple[Callable[..., Any], Any, int]]] = {
        "reference tokens": [(token_sampler(r), c, N_TOKENS) for r in
                             ("auto", "loop", "batched") for c in token_cases]
                            + [(token_sampler("reflection"), token_cases[1], N_TOKENS)],
        "reference diffusion": [(diffusion_sampler(m), linear_chain_case(), N_TOKENS)
                                for m in ("aligned", "joint")],
        "reference AR": [(ar_sampler(gamma=g, prefill=p, bonus_group=b), ar_mixture_case(),
                          N_SEQUENCES) for g, p, b in ((1, 0.0, True), (3, 0.5, False))],
        "gpu_impl float64": [(gpu_sampler("cpu", "float64"), c, N_TOKENS)
                             for c in [*token_cases, linear_chain_case()]]
                            + [(gpu_sampler("cpu", "float64"), ar_mixture_case(), N_SEQUENCES)],
        "gpu_impl float32": [(gpu_sampler("cpu", "float32"), c, N_TOKENS)
                             for c in [*token_cases, linear_chain_case()]]
                            + [(gpu_impl.as_sampler(dtype=torch.bfloat16), token_cases[0],
                                N_TOKENS)],
        "gross mutants": [(m.sampler, m.case(), N_SEQUENCES if "ar_" in m.name else N_TOKENS)
                          for m in MUTANTS],
        "edge members": [(m.sampler, m.case, N_SEQUENCES if m.family == "ar_keeps_extra_groups"
                          else N_TOKENS) for m in edge_members()],
    }
    out: dict[str, str] = {}
    for family, runs in families.items():
        h = hashlib.sha256()
        for sampler, case, n in runs:
            for seed in SEEDS:
                digest(h.update, sampler(case, n, seed))
        out[family] = h.hexdigest()
    return out


def main() -> int:
    hashes = family_hashes()
    total = hashlib.sha256("".join(hashes.values()).encode()).hexdigest()
    for family, value in hashes.items():
        print(f"{family:20s} {value}")
    print(f"{'total':20s} {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
