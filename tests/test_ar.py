"""Deterministic unit tests of cspd_ref.ar (docs/algorithms.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

from cspd_ref.ar import (
    GroupSchedule,
    MixtureARModel,
    ar_rosenblatt,
    ar_sample,
    ar_speculative_decode,
    mar_schedule,
)


@pytest.mark.parametrize(("L", "S"), [(1, 1), (6, 4), (16, 8), (10, 10), (64, 16)])
def test_mar_schedule_partitions_the_sequence(L: int, S: int) -> None:
    sched = mar_schedule(L, S, rng=np.random.default_rng(L))
    assert sched.num_groups == S and sched.seq_len == L
    sizes = [len(g) for g in sched.groups]
    assert min(sizes) >= 1
    assert sorted(p for g in sched.groups for p in g) == list(range(L))


def test_schedule_validation() -> None:
    with pytest.raises(ValueError, match="^groups"):
        GroupSchedule(((0, 1), (1, 2)))
    with pytest.raises(ValueError, match="^groups"):
        GroupSchedule(((0,), ()))
    with pytest.raises(ValueError, match="^groups"):
        GroupSchedule(((0.0,), (1.0,)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^num_steps"):
        mar_schedule(3, 4, rng=np.random.default_rng(0))


def model_pair(seed: int = 0, size: float = 0.3) -> tuple[MixtureARModel, MixtureARModel,
                                                          GroupSchedule]:
    rng = np.random.default_rng(seed)
    target = MixtureARModel.random(6, 2, 2, rng=rng)
    return target.perturbed(size, rng=rng), target, mar_schedule(6, 4, rng=rng)


def test_identical_draft_accepts_every_group_and_counts_passes() -> None:
    _, target, sched = model_pair()
    gamma = 2
    out = ar_speculative_decode(target, target, sched, 20, rng=np.random.default_rng(0),
                                gamma=gamma)
    assert out.sequences.shape == (20, 6, 2)
    assert np.all(out.accepted_groups == out.drafted_groups)
    # 4 groups, gamma 2: round 1 drafts 2 + bonus, round 2 drafts 1 and stops: 2 passes.
    np.testing.assert_array_equal(out.target_passes, 2)
    np.testing.assert_array_equal(out.bonus_groups, 1)
    assert out.groups_per_speculative_pass == pytest.approx(2.0)


def test_prefill_groups_use_target_passes_only() -> None:
    draft, target, sched = model_pair()
    out = ar_speculative_decode(draft, target, sched, 10, rng=np.random.default_rng(0), gamma=3,
                                prefill=0.5)
    np.testing.assert_array_equal(out.prefill_passes, 2)
    # Every speculative pass produces at least one of the 2 remaining groups.
    assert np.all(out.target_passes - out.prefill_passes <= 2)
    assert np.all(out.target_passes - out.prefill_passes >= 1)


def test_rosenblatt_has_one_column_per_coordinate_in_unit_interval() -> None:
    _draft, target, sched = model_pair()
    seqs = ar_sample(target, sched, 30, rng=np.random.default_rng(0))
    u = ar_rosenblatt(target, sched, seqs)
    assert u.shape == (30, 12) and np.all((u >= 0) & (u <= 1))


def test_ar_validation() -> None:
    draft, target, sched = model_pair()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="^gamma"):
        ar_speculative_decode(draft, target, sched, 2, rng=rng, gamma=0)
    with pytest.raises(ValueError, match="^prefill"):
        ar_speculative_decode(draft, target, sched, 2, rng=rng, prefill=1.5)
    with pytest.raises(ValueError, match="^draft"):
        ar_speculative_decode(object(), target, sched, 2, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^schedule"):
        ar_speculative_decode(draft, target, mar_schedule(5, 2, rng=rng), 2, rng=rng)
    with pytest.raises(ValueError, match="^sequences"):
        ar_rosenblatt(target, sched, np.zeros((3, 5, 2)))
