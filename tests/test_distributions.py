"""Deterministic unit tests of cspd_ref.distributions (docs/algorithms.md §2,
docs/contract.md §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from cspd_ref import DiagGaussian, GaussianMixture


def mixture_2d() -> GaussianMixture:
    return GaussianMixture([0.3, 0.7], [[0.0, 1.0], [3.0, -1.0]], [[1.0, 2.0], [0.5, 1.0]])


def test_shapes_and_dtypes() -> None:
    g = mixture_2d()
    assert (g.batch_shape, g.n_components, g.dim) == ((), 2, 2)
    x = g.sample(7, rng=np.random.default_rng(0))
    assert x.shape == (7, 2) and x.dtype == np.float64
    assert g.log_prob(x).shape == (7,)
    batched = DiagGaussian(np.zeros((5, 3)), np.ones((5, 3)))
    assert batched.sample(4, rng=np.random.default_rng(0)).shape == (4, 5, 3)
    assert batched.log_prob(np.zeros((4, 5, 3))).shape == (4, 5)


def test_log_prob_matches_scipy() -> None:
    g = mixture_2d()
    x = np.array([[0.2, -0.4], [3.1, 2.0]])
    expected = np.log(
        0.3 * stats.multivariate_normal([0, 1], np.diag([1, 4])).pdf(x)
        + 0.7 * stats.multivariate_normal([3, -1], np.diag([0.25, 1])).pdf(x)
    )
    np.testing.assert_allclose(g.log_prob(x), expected, rtol=1e-12)


def test_log_prob_far_in_the_tail_is_finite() -> None:
    g = GaussianMixture([0.5, 0.5], [[0.0], [1e4]], [[1e-6], [1e6]])
    values = g.log_prob(np.array([[5e3], [-1e7], [1e4]]))
    assert np.all(np.isfinite(values))


def test_sample_from_noise_inverse_cdf_component_rule() -> None:
    g = GaussianMixture([0.2, 0.0, 0.8], np.array([[0.0], [5.0], [10.0]]), np.ones((3, 1)))
    u = np.array([0.0, 0.19999, 0.2, 0.5, 0.99999])
    k = g.component_index_from_uniforms(u)
    np.testing.assert_array_equal(k, [0, 0, 2, 2, 2])  # the zero-weight component is never used
    x = g.sample_from_noise(u, np.zeros((5, 1)))
    np.testing.assert_array_equal(x[:, 0], [0.0, 0.0, 10.0, 10.0, 10.0])


def test_cdf_of_projection_is_the_integral_of_the_density() -> None:
    g = mixture_2d()
    a = np.array([0.6, 0.8])
    proj = g.project(a)
    assert proj.dim == 1
    # Law of a.x: component means mu.a, variances sum a^2 s^2.
    np.testing.assert_allclose(proj.means[:, 0], [0.8, 1.0])
    np.testing.assert_allclose(proj.scales[:, 0], [math.sqrt(0.36 + 0.64 * 4), math.sqrt(
        0.36 * 0.25 + 0.64)])
    value, _ = integrate.quad(lambda v: math.exp(proj.log_prob([[v]])[0]), -np.inf, 1.3)
    assert proj.cdf(np.array(1.3)) == pytest.approx(value, abs=1e-9)


def test_rosenblatt_first_coordinate_is_the_marginal_cdf_and_second_the_conditional() -> None:
    g = mixture_2d()
    x = np.array([0.4, 0.1])
    u = g.rosenblatt(x)
    marginal0 = GaussianMixture(g.weights, g.means[:, :1], g.scales[:, :1])
    assert u[0] == pytest.approx(float(marginal0.cdf(np.array(0.4))), abs=1e-14)
    # Conditional CDF of x1 given x0 by numerical integration of the joint density.
    joint = lambda v: math.exp(g.log_prob([[0.4, v]])[0])
    num, _ = integrate.quad(joint, -np.inf, 0.1)
    den, _ = integrate.quad(joint, -np.inf, np.inf)
    assert u[1] == pytest.approx(num / den, abs=1e-9)
    assert g.conditional_cdf(x, 1) == pytest.approx(u[1])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"weights": [0.5, 0.6], "means": [[0.0], [1.0]], "scales": [[1.0], [1.0]]}, "weights"),
        ({"weights": [1.5, -0.5], "means": [[0.0], [1.0]], "scales": [[1.0], [1.0]]}, "weights"),
        ({"weights": [1.0], "means": [[np.nan]], "scales": [[1.0]]}, "means"),
        ({"weights": [1.0], "means": [[0.0]], "scales": [[np.inf]]}, "scales"),
        ({"weights": [1.0], "means": [[0.0]], "scales": [[0.0]]}, "scales"),
        ({"weights": [1.0], "means": [[0.0]], "scales": [[-1.0]]}, "scales"),
        ({"weights": [1.0], "means": [[0.0, 1.0]], "scales": [[1.0]]}, "scales"),
        ({"weights": [0.5, 0.5], "means": [[0.0]], "scales": [[1.0]]}, "means"),
        ({"weights": [1.0], "means": [["a"]], "scales": [[1.0]]}, "means"),
        ({"weights": [True], "means": [[0.0]], "scales": [[1.0]]}, "weights"),
        ({"weights": [1.0], "means": [0.0], "scales": [1.0]}, "means"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}"):
        GaussianMixture(**kwargs)


def test_diag_gaussian_validation_and_attributes() -> None:
    g = DiagGaussian([1.0, 2.0], [0.5, 0.25])
    np.testing.assert_array_equal(g.mean, [1.0, 2.0])
    np.testing.assert_array_equal(g.scale, [0.5, 0.25])
    assert g.is_single_gaussian
    with pytest.raises(ValueError, match="^scale"):
        DiagGaussian([0.0], [0.0])
    with pytest.raises(ValueError, match="^scale"):
        DiagGaussian([0.0, 1.0], [1.0])


def test_cdf_and_project_validation() -> None:
    g = mixture_2d()
    with pytest.raises(ValueError, match="^values"):
        g.cdf(np.zeros(3))
    with pytest.raises(ValueError, match="^direction"):
        g.project([0.0, 0.0])
    with pytest.raises(ValueError, match="^direction"):
        g.project([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="^rng"):
        g.sample(3, rng=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^n"):
        g.sample(-1, rng=np.random.default_rng(0))
