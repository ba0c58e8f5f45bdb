"""Token kinds ``token_loop``, ``token_batched``, ``token_reflection`` (docs/vectors.md).

One continuous token per row, draft ``q`` and target ``p`` diagonal Gaussian mixtures shared by
all rows (batch shape ``()``), speculative sampling as in docs/algorithms.md:

1. ``x = mu^q_k + s^q_k * draft_normals[i]``, ``k = #{j < K_q - 1 : u >= W^q_j}`` with
   ``u = draft_component_uniforms[i]`` and ``W^q`` the cumulative draft weights;
2. ``log_ratio = log p(x) - log q(x)`` (log-sum-exp over components); accept iff
   ``log(accept_uniforms[i]) < log_ratio``;
3. rejected rows: for ``j = 0, 1, ...`` propose ``y = mu^p_k + s^p_k * residual_normals[i, j]``
   with ``k`` chosen by ``residual_component_uniforms[i, j]`` against the target's cumulative
   weights, accept iff ``residual_accept_uniforms[i, j] < -expm1(min(0, log q(y) - log p(y)))``;
   the first success is the sample and ``trials = j + 1`` (loop and batched give the same
   outputs on the same noise: they differ only in how many proposals they evaluate at once);
   ``token_reflection`` (single Gaussians, equal scales) instead maps a rejected ``x`` to
   ``mu_p + S (I - 2 e e^T) S^{-1} (x - mu_q)``, ``e = S^{-1}(mu_p - mu_q) / ||.||``,
   ``trials = 0``, and has no residual noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cspd_ref.distributions import GaussianMixture
from cspd_ref.speculative import (
    ResidualNoiseArrays,
    log_acceptance_ratio,
    speculative_sample_from_noise,
)
from cspd_ref.validation import FloatArray
from cspd_ref.vectors.kind import (
    Arrays,
    ReferenceReplay,
    TorchReplay,
    VectorCase,
    VectorKind,
    accept_margins,
    component_margins,
    examined_margins,
    f32_normals,
    f32_uniforms,
    grid_scales,
    grid_weights,
    on_grid,
    residual_margins,
)

PARAMS = ("draft_weights", "draft_means", "draft_scales",
          "target_weights", "target_means", "target_scales")
DRAFT_NOISE = ("draft_component_uniforms", "draft_normals", "accept_uniforms")
RESIDUAL_NOISE = ("residual_component_uniforms", "residual_normals", "residual_accept_uniforms")
OUTPUTS = ("draft_samples", "log_ratio", "accepted", "samples", "trials")
OUTPUT_DTYPES = {"draft_samples": "float64", "log_ratio": "float64", "accepted": "bool",
                 "samples": "float64", "trials": "int64"}


def mixtures(params: Arrays) -> tuple[GaussianMixture, GaussianMixture]:
    """``(draft, target)`` from the parameter arrays."""
    return (GaussianMixture(params["draft_weights"], params["draft_means"],
                            params["draft_scales"]),
            GaussianMixture(params["target_weights"], params["target_means"],
                            params["target_scales"]))


def draw_token_noise(case: VectorCase, m: int, *, rng: np.random.Generator) -> Arrays:
    """Noise for ``m`` rows, drawn in the documented order (residual arrays unless reflection)."""
    d = case.params["target_means"].shape[-1]
    noise = {"draft_component_uniforms": f32_uniforms((m,), rng=rng),
             "draft_normals": f32_normals((m, d), rng=rng),
             "accept_uniforms": f32_uniforms((m,), rng=rng)}
    if case.kind != "token_reflection":
        M = case.sizes["M"]
        noise["residual_component_uniforms"] = f32_uniforms((m, M), rng=rng)
        noise["residual_normals"] = f32_normals((m, M, d), rng=rng)
        noise["residual_accept_uniforms"] = f32_uniforms((m, M), rng=rng)
    return noise


def residual_stream(noise: Arrays, n: int, d: int) -> ResidualNoiseArrays:
    """The explicit residual stream (empty for reflection, which reads none)."""
    if "residual_normals" not in noise:
        return ResidualNoiseArrays(np.zeros((n, 0)), np.zeros((n, 0, d)), np.zeros((n, 0)))
    return ResidualNoiseArrays(noise["residual_component_uniforms"], noise["residual_normals"],
                               noise["residual_accept_uniforms"])


def reference_replay(method: str) -> ReferenceReplay:
    """The float64 ``cspd_ref`` replay of a token kind with residual ``method``."""

    def replay(params: Arrays, noise: Arrays) -> Arrays:
        q, p = mixtures(params)
        u_c, z = noise["draft_component_uniforms"], noise["draft_normals"]
        x = q.sample_from_noise(u_c, z)
        out = speculative_sample_from_noise(q, p, u_c, z, noise["accept_uniforms"],
                                            residual_stream(noise, u_c.shape[0], p.dim),
                                            residual=method)
        return {"draft_samples": x, "log_ratio": log_acceptance_ratio(q, p, x),
                "accepted": out.accepted, "samples": out.samples, "trials": out.trials}

    return replay


def torch_replay(method: str) -> TorchReplay:
    """The ``gpu_impl`` replay of a token kind (tensors of ``dtype`` on ``device``)."""

    def replay(params: Arrays, noise: Arrays, dtype: str, device: str) -> Arrays:
        import torch

        import gpu_impl
        from gpu_impl.speculative import log_acceptance_ratio as torch_log_ratio

        dt = getattr(torch, dtype)

        def t(name: str, source: Arrays) -> torch.Tensor:
            return torch.as_tensor(source[name], device=device).to(dt)

        q = gpu_impl.GaussianMixture(t("draft_weights", params), t("draft_means", params),
                                     t("draft_scales", params))
        p = gpu_impl.GaussianMixture(t("target_weights", params), t("target_means", params),
                                     t("target_scales", params))
        u_c, z = t("draft_component_uniforms", noise), t("draft_normals", noise)
        stream = None if "residual_normals" not in noise else gpu_impl.ResidualNoiseArrays(
            t("residual_component_uniforms", noise), t("residual_normals", noise),
            t("residual_accept_uniforms", noise))
        x = q.sample_from_noise(u_c, z)
        out = gpu_impl.speculative_sample_from_noise(q, p, u_c, z, t("accept_uniforms", noise),
                                                     stream, residual=method)
        return {"draft_samples": host(x), "log_ratio": host(torch_log_ratio(q, p, x)),
                "accepted": host(out.accepted), "samples": host(out.samples),
                "trials": host(out.trials)}

    return replay


def host(tensor: Any) -> np.ndarray:
    """A tensor as a host NumPy array of its own dtype."""
    return np.asarray(tensor.detach().cpu().numpy())


def token_row_margins(params: Arrays, noise: Arrays, outputs: Arrays) -> FloatArray:
    """Per row: the smallest distance of a component choice, the acceptance test or an examined
    residual test to its boundary (module docstring of ``cspd_ref.vectors.kind``)."""
    q, p = mixtures(params)
    margins = np.minimum(component_margins(noise["draft_component_uniforms"], q.weights),
                         accept_margins(noise["accept_uniforms"], outputs["log_ratio"]))
    rejected = np.flatnonzero(~outputs["accepted"])
    if "residual_normals" in noise and rejected.size:
        r_u = noise["residual_component_uniforms"][rejected]
        y = p.sample_from_noise(r_u, noise["residual_normals"][rejected])
        trials = outputs["trials"][rejected]
        gaps = np.minimum(
            residual_margins(noise["residual_accept_uniforms"][rejected],
                             q.log_prob(y) - p.log_prob(y), trials),
            examined_margins(component_margins(r_u, p.weights), trials))
        margins[rejected] = np.minimum(margins[rejected], gaps)
    return np.asarray(margins)


# --------------------------------------------------------------------- committed cases
def mixture_params(k_draft: int, k_target: int, d: int, *, rng: np.random.Generator,
                   ) -> Arrays:
    """A random draft/target pair on the parameter grid: target means N(0, 1.5^2), scales in
    [0.5, 1.3]; draft components near target components (means moved by N(0, 0.5^2), scales
    jittered by 25%)."""
    t_means = on_grid(rng.normal(0.0, 1.5, (k_target, d)))
    t_scales = grid_scales(rng.uniform(0.5, 1.3, (k_target, d)))
    pick = rng.integers(0, k_target, size=k_draft)
    d_means = on_grid(t_means[pick] + rng.normal(0.0, 0.5, (k_draft, d)))
    d_scales = grid_scales(t_scales[pick] * np.exp(rng.normal(0.0, 0.25, (k_draft, d))))
    return {"draft_weights": grid_weights(rng.uniform(0.5, 1.5, k_draft)),
            "draft_means": d_means, "draft_scales": d_scales,
            "target_weights": grid_weights(rng.uniform(0.5, 1.5, k_target)),
            "target_means": t_means, "target_scales": t_scales}


def equal_scale_params(d: int, shift: float, *, rng: np.random.Generator) -> Arrays:
    """Single Gaussians with one shared diagonal scale and means ``~shift`` apart (whitened)."""
    scale = grid_scales(rng.uniform(0.5, 1.5, (1, d)))
    mean = on_grid(rng.normal(0.0, 1.0, (1, d)))
    direction = rng.normal(size=(1, d))
    direction /= np.linalg.norm(direction)
    return {"draft_weights": np.ones(1), "draft_means": mean, "draft_scales": scale,
            "target_weights": np.ones(1),
            "target_means": on_grid(mean + shift * scale * direction),
            "target_scales": scale.copy()}


def token_sizes(params: Arrays, n: int, M: int | None = None) -> dict[str, int]:
    """``n``, ``d``, ``K_draft``, ``K_target`` (and ``M``, residual proposals per row)."""
    sizes = {"n": n, "d": int(params["target_means"].shape[-1]),
             "K_draft": int(params["draft_weights"].size),
             "K_target": int(params["target_weights"].size)}
    return sizes if M is None else {**sizes, "M": M}


def token_cases() -> list[VectorCase]:
    """The committed token vectors (small: a few tens of KB each)."""
    rng = np.random.default_rng(20240611)
    one_d = {"draft_weights": np.ones(1), "draft_means": np.array([[0.25]]),
             "draft_scales": np.array([[1.375]]), "target_weights": np.array([0.5625, 0.4375]),
             "target_means": np.array([[-1.25], [1.0]]),
             "target_scales": np.array([[0.625], [0.875]])}
    gauss_1d = {"draft_weights": np.ones(1), "draft_means": np.array([[0.0]]),
                "draft_scales": np.array([[1.0]]), "target_weights": np.ones(1),
                "target_means": np.array([[0.75]]), "target_scales": np.array([[1.5]])}

    def with_sizes(params: Arrays, n: int, M: int | None = None,
                    ) -> tuple[Arrays, dict[str, int]]:
        return params, token_sizes(params, n, M)

    return [
        VectorCase("token_loop_d1_bimodal", "token_loop",
                   "d=1: broad Gaussian draft, two-component target (residual by loop)",
                   *with_sizes(one_d, 128, 8), 101),
        VectorCase("token_loop_d2_mixtures", "token_loop",
                   "d=2: 2-component draft, 3-component target (residual by loop)",
                   *with_sizes(mixture_params(2, 3, 2, rng=rng), 64, 8), 102),
        VectorCase("token_batched_d3_mixtures", "token_batched",
                   "d=3: 2-component draft, 3-component target (batched residual)",
                   *with_sizes(mixture_params(2, 3, 3, rng=rng), 128, 8), 103),
        VectorCase("token_batched_d4_mixtures", "token_batched",
                   "d=4: 3-component draft, 2-component target (batched residual)",
                   *with_sizes(mixture_params(3, 2, 4, rng=rng), 64, 8), 104),
        VectorCase("token_batched_d1_gaussians", "token_batched",
                   "d=1: single Gaussians with unequal scales (batched residual)",
                   *with_sizes(gauss_1d, 64, 8), 105),
        VectorCase("token_reflection_d1", "token_reflection",
                   "d=1: equal-scale single Gaussians, reflection residual",
                   *with_sizes(equal_scale_params(1, 1.0, rng=rng), 64), 106),
        VectorCase("token_reflection_d4", "token_reflection",
                   "d=4: equal-scale single Gaussians, per-coordinate scales, reflection",
                   *with_sizes(equal_scale_params(4, 1.25, rng=rng), 128), 107),
    ]


def cases_of(kind: str) -> Callable[[], list[VectorCase]]:
    """The committed cases of one token kind."""
    return lambda: [c for c in token_cases() if c.kind == kind]


def token_kind(method: str) -> VectorKind:
    """The kind ``token_<method>`` for residual ``method`` in loop, batched, reflection."""
    name = f"token_{method}"
    residual = () if method == "reflection" else RESIDUAL_NOISE
    summary = {"loop": "token speculative sampling, residual by the sequential loop",
               "batched": "token speculative sampling, batched first-success residual",
               "reflection": "token speculative sampling, reflection residual (equal-scale "
                             "single Gaussians)"}[method]
    return VectorKind(name=name, summary=summary, params=PARAMS, noise=DRAFT_NOISE + residual,
                      outputs=OUTPUTS, output_dtypes=OUTPUT_DTYPES, draw_noise=draw_token_noise,
                      reference=reference_replay(method), torch=torch_replay(method),
                      row_margins=token_row_margins, cases=cases_of(name))


KINDS = (token_kind("loop"), token_kind("batched"), token_kind("reflection"))
