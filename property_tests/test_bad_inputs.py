"""Bad inputs raise ValueError naming the argument (docs/contract.md §4), on generated
inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cspd_ref import GaussianMixture, speculative_sample
from cspd_ref.cases import Case, demo_case
from cspd_ref.verify import verify

bad_floats = st.sampled_from([np.nan, np.inf, -np.inf])


@settings(max_examples=30)
@given(k=st.integers(1, 4), d=st.integers(1, 5), field=st.sampled_from(["weights", "means",
                                                                         "scales"]),
       bad=bad_floats, index=st.integers(0, 100))
def test_non_finite_parameters_are_refused(k: int, d: int, field: str, bad: float,
                                           index: int) -> None:
    params = {"weights": np.full(k, 1.0 / k), "means": np.zeros((k, d)), "scales": np.ones((k, d))}
    flat = params[field].reshape(-1)
    flat[index % flat.size] = bad
    with pytest.raises(ValueError, match=f"^{field}"):
        GaussianMixture(**params)


@settings(max_examples=30)
@given(k=st.integers(1, 4), d=st.integers(1, 5), value=st.floats(-1e6, 0.0),
       index=st.integers(0, 100))
def test_non_positive_scales_are_refused(k: int, d: int, value: float, index: int) -> None:
    scales = np.ones((k, d))
    scales.reshape(-1)[index % scales.size] = value
    with pytest.raises(ValueError, match="^scales"):
        GaussianMixture(np.full(k, 1.0 / k), np.zeros((k, d)), scales)


@settings(max_examples=30)
@given(weights=st.lists(st.floats(-1.0, 2.0), min_size=1, max_size=5))
def test_weights_must_be_a_probability_vector(weights: list[float]) -> None:
    w = np.array(weights)
    valid = np.all(w >= 0) and abs(w.sum() - 1.0) <= 1e-9
    k = w.size
    if valid:
        GaussianMixture(w, np.zeros((k, 1)), np.ones((k, 1)))
    else:
        with pytest.raises(ValueError, match="^weights"):
            GaussianMixture(w, np.zeros((k, 1)), np.ones((k, 1)))


@settings(max_examples=20)
@given(d_draft=st.integers(1, 4), d_target=st.integers(1, 4))
def test_dimension_mismatch_is_refused(d_draft: int, d_target: int) -> None:
    q = GaussianMixture([1.0], np.zeros((1, d_draft)), np.ones((1, d_draft)))
    p = GaussianMixture([1.0], np.zeros((1, d_target)), np.ones((1, d_target)))
    if d_draft == d_target:
        speculative_sample(q, p, 3, np.random.default_rng(0))
    else:
        with pytest.raises(ValueError, match="^target"):
            speculative_sample(q, p, 3, np.random.default_rng(0))
        with pytest.raises(ValueError, match="^target"):
            Case(q, p)


def test_verify_refuses_bad_arguments_and_contract_violations() -> None:
    case = demo_case()
    with pytest.raises(ValueError, match="^sampler"):
        verify("not callable", case)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^case"):
        verify(lambda c, n, s: np.zeros((n, 2)), object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^alpha"):
        verify(lambda c, n, s: np.zeros((n, 2)), case, alpha=0.0)
    with pytest.raises(ValueError, match="^sampler"):
        verify(lambda c, n, s: np.zeros((n, 3)), case, n=100)
    with pytest.raises(ValueError, match="^sampler"):
        verify(lambda c, n, s: np.zeros((n, 2), dtype=np.int64), case, n=100)
    with pytest.raises(ValueError, match="^n: 10 samples"):
        verify(lambda c, n, s: np.zeros((n, 2)), case, n=10)
    with pytest.raises(ValueError, match="^tier"):
        verify(lambda c, n, s: np.zeros((n, 2)), case, tier="fast")
    # NaN output is a failed check, not an exception.
    verdict = verify(lambda c, n, s: np.full((n, 2), np.nan), case, n=100)
    assert not verdict.equivalent and verdict.checks[0].name == "finite"
