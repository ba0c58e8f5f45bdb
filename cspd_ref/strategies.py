"""Hypothesis strategies for cases: small, composable, named for what they generate.

Use them to sweep your own implementation over many cases::

    from hypothesis import given, settings
    from cspd_ref import strategies
    from cspd_ref.testing import assert_equivalent

    @settings(max_examples=20, deadline=None)
    @given(case=strategies.token_cases(max_dim=8))
    def test_my_sampler(case):
        assert_equivalent(my_sampler, case, alpha=1e-6, tier="quick")

(each example is one assertion of the session's false-alarm budget: 20 x 1e-6 here).

* Token cases: ``token_cases()`` (a random mixture target and a perturbed draft, d from 1 to 64),
  ``equal_scale_gaussian_cases()`` (the reflection case), ``extreme_valid_cases()`` (a plain
  list: means 1e4 apart, scales 1e-6 to 1e6, d = 4096, p == q); the building blocks
  ``gaussian_mixtures()``, ``mixture_weights(k)``, ``perturbed_drafts(target)``.
* Diffusion-head cases: ``linear_chain_pairs()`` (closed-form marginals),
  ``nonlinear_chain_pairs()`` (tanh-MLP heads: two-sample tests), ``tanh_mlp_chain``.
* AR cases: ``ar_cases()`` (mixture AR models, MAR schedules).

Numbers that Hypothesis draws directly (dimension, number of components, skew, separation, scale
ratio, shift) carry the structure; a drawn integer seeds NumPy for the many per-coordinate
values, so shrinking still reaches small, simple cases. Needs Hypothesis (``pip install
"cspd[test]"``).

Examples:
    >>> from hypothesis import find
    >>> case = find(token_cases(max_dim=2), lambda c: c.dim == 2)
    >>> case.dim, case.target.n_components >= 1
    (2, True)
"""

from __future__ import annotations

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("cspd_ref.strategies needs Hypothesis: pip install \"cspd[test]\" "
                      "(or pip install hypothesis)") from exc

from cspd_ref import GaussianMixture
from cspd_ref.ar import MixtureARModel, mar_schedule
from cspd_ref.builtin_cases import tanh_mlp_chain
from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.diffusion import LinearGaussianChain

numpy_seeds = st.integers(min_value=0, max_value=2**32 - 1)
dimensions = st.one_of(st.integers(1, 16), st.sampled_from([32, 64]))
component_counts = st.integers(1, 5)
weight_skews = st.floats(0.0, 8.0)
"""0: nearly uniform weights; 8: very skewed (smallest weight ~1e-4 of the largest)."""
separations = st.floats(0.0, 8.0)
"""Component mean spread in units of the component scale: overlapping (0) to far apart (8)."""
scale_ratios = st.floats(1.0, 3.0)
"""Draft/target scale ratio, applied up or down."""
draft_shifts = st.floats(0.002, 6.0)
"""Mean shift of the draft in target-scale units: TV from ~0.001 to ~0.99."""


@st.composite
def mixture_weights(draw: st.DrawFn, k: int) -> np.ndarray:
    """K weights from nearly uniform to very skewed, summing to 1."""
    skew = draw(weight_skews)
    rng = np.random.default_rng(draw(numpy_seeds))
    raw = rng.uniform(0.05, 1.0, size=k) ** skew
    return raw / raw.sum()


@st.composite
def gaussian_mixtures(draw: st.DrawFn, dim: int | None = None,
                      n_components: int | None = None) -> GaussianMixture:
    """A diagonal mixture: K in 1..5, separated from 0 to 8 scales, scales in [0.3, 3]."""
    d = draw(dimensions) if dim is None else dim
    k = draw(component_counts) if n_components is None else n_components
    weights = draw(mixture_weights(k))
    separation = draw(separations)
    rng = np.random.default_rng(draw(numpy_seeds))
    scales = np.exp(rng.uniform(np.log(0.3), np.log(3.0), size=(k, d)))
    means = separation * rng.standard_normal((k, d)) * scales.mean()
    return GaussianMixture(weights, means, scales)


@st.composite
def perturbed_drafts(draw: st.DrawFn, target: GaussianMixture) -> GaussianMixture:
    """A draft near ``target``: component means shifted, scales rescaled (1x to 3x either
    way), weights re-drawn, or the target itself (p == q)."""
    kind = draw(st.sampled_from(["identical", "shift", "rescale", "shift_rescale", "reweight"]))
    if kind == "identical":
        return target
    rng = np.random.default_rng(draw(numpy_seeds))
    means, scales, weights = target.means.copy(), target.scales.copy(), target.weights.copy()
    if kind in ("shift", "shift_rescale"):
        direction = rng.standard_normal(means.shape)
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        means = means + draw(draft_shifts) * direction * scales
    if kind in ("rescale", "shift_rescale"):
        ratio = draw(scale_ratios)
        scales = scales * (ratio if draw(st.booleans()) else 1.0 / ratio)
    if kind == "reweight":
        weights = rng.dirichlet(np.ones(target.n_components) * 2.0)
    return GaussianMixture(weights, means, scales)


@st.composite
def token_cases(draw: st.DrawFn, max_dim: int | None = None) -> Case:
    """A ``Case``: a random mixture target and a perturbed draft."""
    d = draw(st.integers(1, max_dim)) if max_dim is not None else draw(dimensions)
    target = draw(gaussian_mixtures(dim=d))
    draft = draw(perturbed_drafts(target))
    return Case(draft=draft, target=target, name=f"mixture-d{d}-K{target.n_components}")


@st.composite
def equal_scale_gaussian_cases(draw: st.DrawFn) -> Case:
    """Single Gaussians with identical diagonal scales (the reflection case), TV ~0.001..0.99."""
    d = draw(dimensions)
    rng = np.random.default_rng(draw(numpy_seeds))
    scale = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=d))
    mean = rng.normal(0.0, 3.0, size=d) * scale
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    shift = draw(st.one_of(st.just(0.0), draft_shifts))
    draft = GaussianMixture([1.0], (mean + shift * direction * scale)[None], scale[None])
    target = GaussianMixture([1.0], mean[None], scale[None])
    return Case(draft=draft, target=target, name=f"equal-scale-d{d}",
                tags=("equal_scales", "single_gaussian"))


def extreme_valid_cases() -> list[Case]:
    """Extreme but valid inputs (docs/contract.md): means 1e4 apart, scales 1e-6..1e6,
    d = 4096, p == q."""
    far = GaussianMixture([0.5, 0.5], [[0.0], [1e4]], [[1.0], [1.0]])
    near_far = GaussianMixture([0.5, 0.5], [[0.0], [1e4]], [[1.5], [0.7]])
    tiny = GaussianMixture([1.0], [[0.0, 0.0]], [[1e-6, 1e-6]])
    tiny_draft = GaussianMixture([1.0], [[1e-6, 0.0]], [[2e-6, 1e-6]])
    huge = GaussianMixture([1.0], [[0.0]], [[1e6]])
    huge_draft = GaussianMixture([1.0], [[3e5]], [[1e6]])
    wide = GaussianMixture([0.3, 0.7], [[0.0], [0.0]], [[1e-6], [1e6]])
    d = 4096
    big_target = GaussianMixture([1.0], np.zeros((1, d)), np.ones((1, d)))
    big_draft = GaussianMixture([1.0], np.full((1, d), 0.02), np.ones((1, d)))
    return [
        Case(near_far, far, name="means-1e4-apart"),
        Case(tiny_draft, tiny, name="scales-1e-6"),
        Case(huge_draft, huge, name="scales-1e6", tags=("equal_scales",)),
        Case(GaussianMixture([1.0], [[0.0]], [[1.0]]), wide, name="scales-1e-6-to-1e6"),
        Case(big_draft, big_target, name="d-4096", tags=("equal_scales",)),
        Case(far, far, name="p-equals-q"),
    ]


@st.composite
def linear_chain_pairs(draw: st.DrawFn, equal_last_scale: bool | None = None) -> DiffusionCase:
    """Draft and target ``LinearGaussianChain``\\ s (T in 2..8, d in 1..8); the draft's
    coefficients, offsets and (unless ``equal_last_scale``) scales perturbed."""
    T = draw(st.integers(2, 8))
    d = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(numpy_seeds))
    a = rng.uniform(0.6, 1.0, (T, d))
    b = rng.normal(0.0, 0.5, (T, d))
    s = rng.uniform(0.2, 1.0, (T, d))
    tau = draw(st.floats(0.5, 1.2))
    shift = draw(st.floats(0.0, 1.5))
    target = LinearGaussianChain(a, b, s, temperature=tau)
    equal = draw(st.booleans()) if equal_last_scale is None else equal_last_scale
    s_draft = s.copy() if equal else s * draw(st.floats(0.5, 2.0))
    draft = LinearGaussianChain(a * rng.uniform(0.9, 1.1, (T, d)),
                                b + shift * rng.standard_normal((T, d)), s_draft, temperature=tau)
    return DiffusionCase(draft, target, name=f"linear-chain-T{T}-d{d}",
                         tags=("equal_last_scale",) if equal else ())


@st.composite
def nonlinear_chain_pairs(draw: st.DrawFn) -> DiffusionCase:
    """Draft and target tanh-MLP chains (no closed-form marginal: two-sample tests)."""
    T = draw(st.integers(2, 6))
    d = draw(st.integers(1, 6))
    seed = draw(numpy_seeds)
    size = draw(st.floats(0.0, 0.5))
    target = tanh_mlp_chain(T, d, 16, rng=np.random.default_rng(seed))
    draft = tanh_mlp_chain(T, d, 16, rng=np.random.default_rng(seed), perturbation=size)
    return DiffusionCase(draft, target, name=f"mlp-chain-T{T}-d{d}")


@st.composite
def ar_cases(draw: st.DrawFn) -> ARCase:
    """A ``MixtureARModel`` target (L in 3..6, d in 1..2, K in 1..3), a perturbed draft and a
    MAR schedule (random order, cosine groups)."""
    L = draw(st.integers(3, 6))
    d = draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    steps = draw(st.integers(2, L))
    rng = np.random.default_rng(draw(numpy_seeds))
    target = MixtureARModel.random(L, d, k, rng=rng)
    draft = target.perturbed(draw(st.floats(0.0, 0.6)), rng=rng)
    return ARCase(draft, target, mar_schedule(L, steps, rng=rng),
                  name=f"ar-L{L}-d{d}-K{k}-G{steps}")
