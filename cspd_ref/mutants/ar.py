"""Gross AR-decoding mutants: groups kept after a rejection, a bonus group from the draft,
groups scored on the verified prefix only (``docs/algorithms.md``, AR sequences)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cspd_ref.cases import ARCase
from cspd_ref.speculative import (
    ResidualNoiseGenerator,
    verify_draft_from_noise,
)

FloatArray = np.ndarray


# --------------------------------------------------------------------------- AR mutants
def broken_ar_decode(case: ARCase, n: int, seed: int, *, gamma: int = 3,
                     keep_after_rejection: bool = False, bonus_from_draft: bool = False,
                     score_on_verified_prefix: bool = False) -> np.ndarray:
    """AR speculative decoding with one of three mistakes switched on (see the mutants)."""
    rng = np.random.default_rng(seed)
    sched, draft, target = case.schedule, case.draft, case.target
    L, d, G = sched.seq_len, target.dim, sched.num_groups
    noise = ResidualNoiseGenerator(d, rng=rng)
    out = np.zeros((n, L, d))
    for i in range(n):
        tokens, known, g = out[i], np.zeros(L, dtype=bool), 0
        while g < G:
            k = min(gamma, G - g)
            dtok, dknown, laws = tokens.copy(), known.copy(), []
            for j in range(k):
                pos = sched.positions(g + j)
                law = draft.conditionals(dtok, dknown, pos)
                dtok[pos] = law.sample(1, rng=rng)[0]
                dknown[pos] = True
                laws.append(law)
            scored = known.copy()
            targets = []
            for j in range(min(k + 1, G - g)):
                pos = sched.positions(g + j)
                targets.append(target.conditionals(dtok, known if score_on_verified_prefix
                                                   else scored, pos))
                scored[pos] = True
            all_ok = True
            for j in range(k):
                pos = sched.positions(g + j)
                res = verify_draft_from_noise(laws[j], targets[j], dtok[pos], rng.random(pos.size),
                                              noise, method="batched")
                tokens[pos] = res.samples
                known[pos] = True
                if not res.accepted.all():
                    all_ok = False
                    if not (keep_after_rejection or score_on_verified_prefix):
                        g += j + 1
                        break
            else:
                g += k
            if all_ok and g < G:
                pos = sched.positions(g)
                source = (draft.conditionals(tokens, known, pos) if bonus_from_draft
                          else targets[k])
                tokens[pos] = source.sample(1, rng=rng)[0]
                known[pos] = True
                g += 1
    return out


def ar_groups_kept_after_rejection(case: ARCase, n: int, seed: int) -> Any:
    """Groups after the first rejected group are verified and kept, though they were
    conditioned on draft tokens that were replaced."""
    return broken_ar_decode(case, n, seed, keep_after_rejection=True)


def ar_bonus_group_from_draft(case: ARCase, n: int, seed: int) -> Any:
    """After a fully accepted round, the bonus group is sampled from the draft."""
    return broken_ar_decode(case, n, seed, gamma=1, bonus_from_draft=True)


def ar_scored_on_verified_prefix(case: ARCase, n: int, seed: int) -> Any:
    """Every drafted group is scored against the target conditioned on the verified prefix
    alone and kept token by token (the public CSpD runner's scheme; docs/algorithms.md §8)."""
    return broken_ar_decode(case, n, seed, score_on_verified_prefix=True)
