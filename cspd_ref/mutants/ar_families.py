"""AR decoding that keeps ``k`` drafted groups after the first rejected group before discarding
the rest (``ar_keeps_extra_groups(k)``), batched over sequences, and a batched Rosenblatt
transform of sequences used to measure its effect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cspd_ref.ar import MixtureARModel
from cspd_ref.cases import ARCase
from cspd_ref.distributions import GaussianMixture
from cspd_ref.speculative import (
    ResidualNoiseGenerator,
    verify_draft_from_noise,
)

FloatArray = np.ndarray
Sampler = Callable[[Any, int, int], Any]


# =========================================================================== AR family
def batched_conditionals(model: Any, tokens: FloatArray, known: np.ndarray,
                         positions: FloatArray) -> GaussianMixture:
    """``model.conditionals`` for m sequences at once: batch ``(m, len(positions))``.

    Vectorised for ``MixtureARModel`` (the same formulas as its ``conditionals``); any other
    ``ARModel`` is called row by row and stacked.
    """
    if isinstance(model, MixtureARModel):
        features = np.tanh(np.where(known[..., None], tokens, 0.0))              # (m, L, d)
        context = np.einsum("pl,mld->mpd", model.context_weights[positions], features)
        level = context.mean(axis=2)                                               # (m, P)
        k = np.arange(model.n_components)
        logits = model.logits[positions] + model.weight_coupling * level[..., None] * k
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        means = (model.base_means[positions]
                 + model.mean_coupling[None, None, :, None] * context[:, :, None, :])
        scales = model.base_scales[positions] * np.exp(
            model.scale_coupling * np.tanh(level))[..., None, None]
        return GaussianMixture(weights, means, scales, validate_args=False)
    laws = [model.conditionals(tokens[i], known[i], positions) for i in range(tokens.shape[0])]
    return GaussianMixture(np.stack([law.weights for law in laws]),
                           np.stack([law.means for law in laws]),
                           np.stack([law.scales for law in laws]), validate_args=False)


def _flat(law: GaussianMixture) -> GaussianMixture:
    m, p, k = law.weights.shape
    d = law.dim
    return GaussianMixture(law.weights.reshape(m * p, k), law.means.reshape(m * p, k, d),
                           law.scales.reshape(m * p, k, d), validate_args=False)


def run_ar_extra_groups(case: ARCase, n: int, seed: int, extra: int, gamma: int = 3,
                        ) -> FloatArray:
    """AR speculative decoding (bonus group on, no pre-fill) of ``n`` sequences, vectorised over
    the sequences that share the same progress; ``extra`` groups after the first rejected one
    are kept (``extra = 0`` is the exact algorithm of ``ar_speculative_decode``, in law).

    Each round every drafted group is verified (accept or exact batched residual against the
    target conditioned on the draft's earlier groups); a sequence whose first rejection is in
    drafted group j keeps groups ``0 .. min(j + extra, gamma - 1)`` and discards the rest.
    """
    rng = np.random.default_rng(seed)
    sched, draft, target = case.schedule, case.draft, case.target
    L, d, G = sched.seq_len, target.dim, sched.num_groups
    out = np.zeros((n, L, d))
    known = np.zeros((n, L), dtype=bool)
    progress = np.zeros(n, dtype=np.int64)
    while np.any(progress < G):
        for g0 in np.unique(progress[progress < G]):
            rows = np.flatnonzero(progress == g0)
            m, k = rows.size, int(min(gamma, G - g0))
            tokens, kn = out[rows], known[rows]
            dtok, dkn = tokens.copy(), kn.copy()
            draft_laws = []
            for j in range(k):
                pos = sched.positions(g0 + j)
                law = batched_conditionals(draft, dtok, dkn, pos)
                dtok[:, pos] = law.sample_from_noise(rng.random((m, pos.size)),
                                                     rng.standard_normal((m, pos.size, d)))
                dkn[:, pos] = True
                draft_laws.append(law)
            target_laws, scored = [], kn.copy()
            for j in range(min(k + 1, G - g0)):
                pos = sched.positions(g0 + j)
                target_laws.append(batched_conditionals(target, dtok, scored, pos))
                scored[:, pos] = True
            verified, rejected = [], np.zeros((m, k), dtype=bool)
            for j in range(k):
                pos = sched.positions(g0 + j)
                res = verify_draft_from_noise(
                    _flat(draft_laws[j]), _flat(target_laws[j]), dtok[:, pos].reshape(-1, d),
                    rng.random(m * pos.size), ResidualNoiseGenerator(d, rng=rng), method="batched")
                verified.append(res.samples.reshape(m, pos.size, d))
                rejected[:, j] = ~res.accepted.reshape(m, pos.size).all(axis=1)
            any_rejected = rejected.any(axis=1)
            keep = np.where(any_rejected, np.minimum(np.argmax(rejected, axis=1) + 1 + extra, k), k)
            for j in range(k):
                pos = sched.positions(g0 + j)
                sel = keep > j
                out[np.ix_(rows[sel], pos)] = verified[j][sel]
                known[np.ix_(rows[sel], pos)] = True
            new_progress = g0 + keep
            bonus = ~any_rejected & (g0 + k < G)
            if bonus.any():
                pos = sched.positions(g0 + k)
                law = target_laws[k]
                sub = GaussianMixture(law.weights[bonus], law.means[bonus], law.scales[bonus],
                                      validate_args=False)
                b = int(bonus.sum())
                out[np.ix_(rows[bonus], pos)] = sub.sample_from_noise(
                    rng.random((b, pos.size)), rng.standard_normal((b, pos.size, d)))
                known[np.ix_(rows[bonus], pos)] = True
                new_progress = new_progress + bonus
            progress[rows] = new_progress
    return out


def ar_keeps_extra_groups(k: int, gamma: int = 3) -> Sampler:
    """After the first drafted group with a rejection, ``k`` more drafted groups are verified
    and kept (instead of discarding every later group); returns ``(n, L, d)``.

    The kept groups were drafted, and scored by the target, conditioned on draft tokens that the
    residual has just replaced: their accept/residual step corrects them toward
    ``p(. | draft prefix)``, not ``p(. | kept prefix)``, so the joint law is wrong wherever the
    conditionals depend on the replaced tokens (the Rosenblatt columns of those groups are not
    uniform). The effect grows with the rejection rate and the coupling; ``k = 0`` is exact.
    """
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")

    def sample(case: ARCase, n: int, seed: int) -> FloatArray:
        return run_ar_extra_groups(case, n, seed, int(k), gamma)

    sample.__name__ = sample.__qualname__ = f"ar_keeps_extra_groups[k={k},gamma={gamma}]"
    return sample


def ar_rosenblatt_batched(model: Any, schedule: Any, sequences: FloatArray) -> FloatArray:
    """``cspd_ref.ar.ar_rosenblatt`` vectorised over sequences: ``(n, L d)`` conditional CDFs in
    the same column order (groups in order, positions as listed, coordinates)."""
    x = np.asarray(sequences, dtype=np.float64)
    n = x.shape[0]
    known = np.zeros((n, schedule.seq_len), dtype=bool)
    cols = []
    for g in range(schedule.num_groups):
        pos = schedule.positions(g)
        law = batched_conditionals(model, x, known, pos)
        cols.append(law.rosenblatt(x[:, pos]).reshape(n, -1))
        known[:, pos] = True
    return np.concatenate(cols, axis=1)
