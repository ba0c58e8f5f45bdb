"""Aligned-trajectory and joint-criterion samplers pass the battery
(docs/algorithms.md §4)."""

from __future__ import annotations

from hypothesis import given, settings

from cspd_ref.cases import DiffusionCase
from cspd_ref.samplers import diffusion_sampler
from cspd_ref.strategies import linear_chain_pairs, nonlinear_chain_pairs
from property_tests.gate import assert_equivalent


@settings(max_examples=10)
@given(case=linear_chain_pairs())
def test_aligned_trajectories_are_exact_on_linear_chains(case: DiffusionCase) -> None:
    assert_equivalent(diffusion_sampler("aligned"), case, "aligned",
                      repr(case.target_chain.offsets.sum()))


@settings(max_examples=8)
@given(case=linear_chain_pairs())
def test_joint_criterion_is_exact_on_linear_chains(case: DiffusionCase) -> None:
    assert_equivalent(diffusion_sampler("joint"), case, "joint",
                      repr(case.target_chain.offsets.sum()))


@settings(max_examples=4)
@given(case=nonlinear_chain_pairs())
def test_aligned_trajectories_match_direct_target_sampling_on_mlp_heads(
        case: DiffusionCase) -> None:
    """No closed form: two-sample KS on projections and MMD against the target chain run
    directly."""
    assert_equivalent(diffusion_sampler("aligned"), case, "aligned-mlp", case.name, n=4000)
