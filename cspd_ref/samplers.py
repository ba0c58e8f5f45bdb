"""The reference samplers behind the contract ``sampler(case, n, seed)`` (docs/contract.md).

Each factory returns a callable that ``verify`` (and outside tools) can judge like any other
implementation. Outputs are ``SpeculativeResult``/``ARDecodeResult``-like objects with
``.samples`` so the acceptance and trial counts are checked too.

Twin module: ``gpu_impl.samplers``, whose factories keep their fixed public names:
``gpu_impl.as_sampler`` is ``token_sampler``'s counterpart (it returns a ``SpeculativeResult``
too) and ``gpu_impl.as_ar_sampler`` is ``ar_sampler``'s (it returns the sequences).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cspd_ref.ar import ar_speculative_decode
from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.diffusion_sampling import aligned_speculative_sample, joint_speculative_sample
from cspd_ref.speculative import SpeculativeResult, speculative_sample

Sampler = Callable[[Any, int, int], Any]


def token_sampler(residual: str = "auto") -> Sampler:
    """``speculative_sample(case.draft, case.target, n, default_rng(seed), residual=...)``."""

    def sample(case: Case, n: int, seed: int) -> SpeculativeResult:
        return speculative_sample(case.draft, case.target, n, np.random.default_rng(seed),
                                  residual=residual)

    sample.__name__ = f"reference_token_sampler[{residual}]"
    return sample


def diffusion_sampler(method: str = "aligned", residual: str | None = None) -> Sampler:
    """Aligned-trajectory or joint-criterion speculative sampling of ``DiffusionCase`` tokens.

    The acceptance counts are dropped from the output (they do not follow 1 - TV of the
    marginals), only ``.samples`` is returned.
    """
    if method not in ("aligned", "joint"):
        raise ValueError(f"method: expected 'aligned' or 'joint', got {method!r}")

    def sample(case: DiffusionCase, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if method == "aligned":
            out = aligned_speculative_sample(case.draft_chain, case.target_chain, n, rng=rng,
                                             residual=residual or "auto")
        else:
            out = joint_speculative_sample(case.draft_chain, case.target_chain, n, rng=rng,
                                           residual=residual or "batched")
        return out.samples

    sample.__name__ = f"reference_diffusion_sampler[{method}]"
    return sample


@dataclass(frozen=True)
class ARSamplerOutput:
    """Sequences ``(n, L, d)`` as ``.samples`` (the contract), plus the decode statistics."""

    samples: np.ndarray
    stats: Any


def ar_sampler(gamma: int = 2, prefill: float = 0.0, bonus_group: bool = True,
               residual: str = "auto") -> Sampler:
    """Speculative decoding of ``ARCase`` sequences with the given draft length and options."""

    def sample(case: ARCase, n: int, seed: int) -> ARSamplerOutput:
        out = ar_speculative_decode(case.draft, case.target, case.schedule, n,
                                    rng=np.random.default_rng(seed), gamma=gamma, prefill=prefill,
                                    bonus_group=bonus_group, residual=residual)
        return ARSamplerOutput(samples=out.sequences, stats=out)

    sample.__name__ = f"reference_ar_sampler[gamma={gamma},prefill={prefill},bonus={bonus_group}]"
    return sample
