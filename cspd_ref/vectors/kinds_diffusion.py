"""Diffusion kinds ``diffusion_aligned``, ``diffusion_aligned_reflection``, ``diffusion_joint``
(docs/vectors.md; the samplers of docs/algorithms.md, ``cspd_ref.diffusion``).

Both chains are linear Gaussian chains: with ``x_T`` given, for ``t = T, ..., 1``

    x_{t-1} = a[t-1] * x_t + b[t-1] + tau * s[t-1] * eps_t

(``a = coefficients``, ``b = offsets``, ``s = step_scales``, all ``(T, d)``; ``tau =
temperature``, a 0-d array). Noise is ordered by step: ``eps[i]`` is ``eps_{T-i}``.

* aligned: both chains run from ``x_T`` with the shared ``shared_eps`` (``eps_T .. eps_2``) to
  ``x_1^q`` and ``x_1^p``; their last steps ``q_1 = N(a_q[0] x_1^q + b_q[0], (tau_q s_q[0])^2)``
  and ``p_1`` likewise are a token pair: ``x = mean(q_1) + scale(q_1) * draft_last_normals``,
  ``log_ratio = log p_1(x) - log q_1(x)``, accept iff ``log u < log_ratio``; a rejected row
  proposes ``y = mean(p_1) + scale(p_1) * residual_normals[i, j]`` (single Gaussians: no
  component uniforms) accepted iff ``residual_accept_uniforms[i, j] < -expm1(min(0, log q_1(y)
  - log p_1(y)))``; ``diffusion_aligned_reflection`` (equal last-step scales) reflects instead.
* joint: the draft runs its own trajectory with ``draft_eps`` ``(T, n, d)``; ``log_ratio`` is
  ``sum_t log p_t(x_{t-1} | x_t) - log q_t(x_{t-1} | x_t)`` along it; a rejected row proposes
  whole target trajectories, item ``residual_normals[i, j]`` of ``(T + 1) d`` normals being
  ``x_T`` (first ``d``) then ``eps_T .. eps_1``, accepted iff ``u' < -expm1(min(0, log
  q(traj) - log p(traj)))``; the sample is the trajectory's ``x_0``.
"""

from __future__ import annotations

import numpy as np

from cspd_ref.diffusion import LinearGaussianChain, trajectory_log_ratio
from cspd_ref.diffusion_sampling import (
    aligned_last_steps,
    aligned_speculative_sample_from_noise,
    joint_speculative_sample_from_noise,
)
from cspd_ref.speculative import ResidualNoiseArrays, log_acceptance_ratio
from cspd_ref.validation import FloatArray
from cspd_ref.vectors.kind import (
    Arrays,
    ReferenceReplay,
    RowMargins,
    TorchReplay,
    VectorCase,
    VectorKind,
    accept_margins,
    f32_normals,
    f32_uniforms,
    grid_scales,
    on_grid,
    residual_margins,
)
from cspd_ref.vectors.kinds_token import OUTPUT_DTYPES, OUTPUTS, host

CHAIN_FIELDS = ("coefficients", "offsets", "step_scales", "temperature")
PARAMS = tuple(f"{who}_{f}" for who in ("draft", "target") for f in CHAIN_FIELDS)
RESIDUAL_NOISE = ("residual_normals", "residual_accept_uniforms")
ALIGNED_NOISE = ("x_T", "shared_eps", "draft_last_normals", "accept_uniforms")
JOINT_NOISE = ("x_T", "draft_eps", "accept_uniforms")
STEP_AXIS_NOISE = {"shared_eps": 1, "draft_eps": 1}


def chains(params: Arrays) -> tuple[LinearGaussianChain, LinearGaussianChain]:
    """``(draft_chain, target_chain)`` from the parameter arrays."""
    def chain(who: str) -> LinearGaussianChain:
        return LinearGaussianChain(params[f"{who}_coefficients"], params[f"{who}_offsets"],
                                   params[f"{who}_step_scales"],
                                   float(params[f"{who}_temperature"]))
    return chain("draft"), chain("target")


def draw_diffusion_noise(case: VectorCase, m: int, *, rng: np.random.Generator) -> Arrays:
    """Noise for ``m`` rows in the documented order (residual arrays unless reflection)."""
    T, d = case.params["target_offsets"].shape
    noise = {"x_T": f32_normals((m, d), rng=rng)}
    if case.kind == "diffusion_joint":
        noise["draft_eps"] = f32_normals((T, m, d), rng=rng)
        item = (T + 1) * d
    else:
        noise["shared_eps"] = f32_normals((T - 1, m, d), rng=rng)
        noise["draft_last_normals"] = f32_normals((m, d), rng=rng)
        item = d
    noise["accept_uniforms"] = f32_uniforms((m,), rng=rng)
    if case.kind != "diffusion_aligned_reflection":
        M = case.sizes["M"]
        noise["residual_normals"] = f32_normals((m, M, item), rng=rng)
        noise["residual_accept_uniforms"] = f32_uniforms((m, M), rng=rng)
    return noise


def residual_stream(noise: Arrays, n: int, item: int) -> ResidualNoiseArrays:
    """The explicit residual stream; the unused component uniforms are zeros."""
    if "residual_normals" not in noise:
        return ResidualNoiseArrays(np.zeros((n, 0)), np.zeros((n, 0, item)), np.zeros((n, 0)))
    shape = noise["residual_accept_uniforms"].shape
    return ResidualNoiseArrays(np.zeros(shape), noise["residual_normals"],
                               noise["residual_accept_uniforms"])


def reference_replay(kind: str) -> ReferenceReplay:
    """The float64 ``cspd_ref`` replay of a diffusion kind."""

    def replay(params: Arrays, noise: Arrays) -> Arrays:
        qc, pc = chains(params)
        x_T, u = noise["x_T"], noise["accept_uniforms"]
        n, d = x_T.shape
        if kind == "diffusion_joint":
            states = qc.trajectory_from_noise(x_T, noise["draft_eps"])
            x, lr = states[-1], trajectory_log_ratio(qc, pc, states)
            out = joint_speculative_sample_from_noise(
                qc, pc, x_T, noise["draft_eps"], u,
                residual_stream(noise, n, (qc.num_steps + 1) * d), residual="batched")
        else:
            q_last, p_last = aligned_last_steps(qc, pc, x_T, noise["shared_eps"])
            x = q_last.sample_from_noise(np.zeros(n), noise["draft_last_normals"])
            lr = log_acceptance_ratio(q_last, p_last, x)
            method = "reflection" if kind == "diffusion_aligned_reflection" else "batched"
            out = aligned_speculative_sample_from_noise(
                qc, pc, x_T, noise["shared_eps"], noise["draft_last_normals"], u,
                residual_stream(noise, n, d), residual=method)
        return {"draft_samples": x, "log_ratio": lr, "accepted": out.accepted,
                "samples": out.samples, "trials": out.trials}

    return replay


def torch_replay(kind: str) -> TorchReplay:
    """The ``gpu_impl`` replay of a diffusion kind (tensors of ``dtype`` on ``device``)."""

    def replay(params: Arrays, noise: Arrays, dtype: str, device: str) -> Arrays:
        import torch

        import gpu_impl
        from gpu_impl.diffusion_sampling import aligned_last_steps as torch_last_steps
        from gpu_impl.diffusion_sampling import joint_draft_pass
        from gpu_impl.speculative import log_acceptance_ratio as torch_log_ratio

        dt = getattr(torch, dtype)

        def t(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array, device=device).to(dt)

        def chain(who: str) -> gpu_impl.LinearGaussianChain:
            return gpu_impl.LinearGaussianChain(
                t(params[f"{who}_coefficients"]), t(params[f"{who}_offsets"]),
                t(params[f"{who}_step_scales"]), float(params[f"{who}_temperature"]),
                device=device, dtype=dt)

        qc, pc = chain("draft"), chain("target")
        x_T, u = t(noise["x_T"]), t(noise["accept_uniforms"])
        stream = None
        if "residual_normals" in noise:
            r_acc = t(noise["residual_accept_uniforms"])
            stream = gpu_impl.ResidualNoiseArrays(torch.zeros_like(r_acc),
                                                  t(noise["residual_normals"]), r_acc)
        if kind == "diffusion_joint":
            assert stream is not None
            eps = t(noise["draft_eps"])
            x, lr, _ = joint_draft_pass(qc, pc, x_T, eps)
            out = gpu_impl.joint_speculative_sample_from_noise(qc, pc, x_T, eps, u, stream,
                                                               residual="batched")
        else:
            shared, eps1 = t(noise["shared_eps"]), t(noise["draft_last_normals"])
            q_last, p_last = torch_last_steps(qc, pc, x_T, shared)
            x = q_last.sample_from_noise(torch.zeros_like(u), eps1)
            lr = torch_log_ratio(q_last, p_last, x)
            method = "reflection" if kind == "diffusion_aligned_reflection" else "batched"
            out = gpu_impl.aligned_speculative_sample_from_noise(qc, pc, x_T, shared, eps1, u,
                                                                 stream, residual=method)
        return {"draft_samples": host(x), "log_ratio": host(lr), "accepted": host(out.accepted),
                "samples": host(out.samples), "trials": host(out.trials)}

    return replay


def diffusion_row_margins(kind: str) -> RowMargins:
    """Per-row decision margins (acceptance, examined residual tests) of a diffusion kind."""

    def margins(params: Arrays, noise: Arrays, outputs: Arrays) -> FloatArray:
        qc, pc = chains(params)
        result = accept_margins(noise["accept_uniforms"], outputs["log_ratio"])
        rejected = np.flatnonzero(~outputs["accepted"])
        if "residual_normals" not in noise or rejected.size == 0:
            return result
        normals = noise["residual_normals"][rejected]
        m, M = normals.shape[:2]
        if kind == "diffusion_joint":
            T, d = pc.num_steps, pc.dim
            flat = normals.reshape(m * M, T + 1, d)
            traj = pc.trajectory_from_noise(flat[:, 0], flat[:, 1:].transpose(1, 0, 2))
            q_minus_p = -trajectory_log_ratio(qc, pc, traj).reshape(m, M)
        else:
            q_last, p_last = aligned_last_steps(qc, pc, noise["x_T"], noise["shared_eps"])
            q_rows = q_last.index_batch(rejected[:, None])
            p_rows = p_last.index_batch(rejected[:, None])
            y = p_rows.means[..., 0, :] + p_rows.scales[..., 0, :] * normals
            q_minus_p = q_rows.log_prob(y) - p_rows.log_prob(y)
        gaps = residual_margins(noise["residual_accept_uniforms"][rejected], q_minus_p,
                                outputs["trials"][rejected])
        result[rejected] = np.minimum(result[rejected], gaps)
        return result

    return margins


# --------------------------------------------------------------------- committed cases
def chain_params(T: int, d: int, *, rng: np.random.Generator, equal_last_scale: bool,
                 draft_temperature: float) -> Arrays:
    """Target: ``a`` in [0.6, 0.95], ``b ~ N(0, 0.5^2)``, ``s`` in [0.3, 0.7]; draft: each
    moved by ``N(0, 0.1^2)``, ``N(0, 0.4^2)`` and ``exp(N(0, 0.2^2))``; with
    ``equal_last_scale`` the draft's ``s[0]`` (step 1) is the target's and both temperatures
    are 1."""
    a_p = on_grid(rng.uniform(0.6, 0.95, (T, d)))
    b_p = on_grid(rng.normal(0.0, 0.5, (T, d)))
    s_p = grid_scales(rng.uniform(0.3, 0.7, (T, d)))
    a_q = on_grid(a_p + rng.normal(0.0, 0.1, (T, d)))
    b_q = on_grid(b_p + rng.normal(0.0, 0.4, (T, d)))
    s_q = grid_scales(s_p * np.exp(rng.normal(0.0, 0.2, (T, d))))
    if equal_last_scale:
        s_q[0] = s_p[0]
    return {"draft_coefficients": a_q, "draft_offsets": b_q, "draft_step_scales": s_q,
            "draft_temperature": np.array(1.0 if equal_last_scale else draft_temperature),
            "target_coefficients": a_p, "target_offsets": b_p, "target_step_scales": s_p,
            "target_temperature": np.array(1.0)}


def diffusion_cases() -> list[VectorCase]:
    """The committed diffusion vectors."""
    rng = np.random.default_rng(20240612)
    return [
        VectorCase("diffusion_aligned_d2", "diffusion_aligned",
                   "T=4, d=2 linear chains, draft temperature 0.875 (batched residual)",
                   chain_params(4, 2, rng=rng, equal_last_scale=False, draft_temperature=0.875),
                   {"n": 64, "M": 8, "T": 4, "d": 2}, 201),
        VectorCase("diffusion_aligned_reflection_d3", "diffusion_aligned_reflection",
                   "T=3, d=3 linear chains with equal last-step scales (reflection)",
                   chain_params(3, 3, rng=rng, equal_last_scale=True, draft_temperature=1.0),
                   {"n": 64, "T": 3, "d": 3}, 202),
        VectorCase("diffusion_joint_d2", "diffusion_joint",
                   "T=3, d=2 linear chains, whole-trajectory criterion (batched residual)",
                   chain_params(3, 2, rng=rng, equal_last_scale=False, draft_temperature=1.0),
                   {"n": 64, "M": 8, "T": 3, "d": 2}, 203),
        VectorCase("diffusion_joint_d1", "diffusion_joint",
                   "T=2, d=1 linear chains, draft temperature 1.125 (batched residual)",
                   chain_params(2, 1, rng=rng, equal_last_scale=False, draft_temperature=1.125),
                   {"n": 64, "M": 8, "T": 2, "d": 1}, 204),
    ]


def diffusion_kind(name: str, summary: str) -> VectorKind:
    """The kind ``name`` (aligned, aligned_reflection or joint)."""
    noise: tuple[str, ...] = JOINT_NOISE if name == "diffusion_joint" else ALIGNED_NOISE
    if name != "diffusion_aligned_reflection":
        noise = noise + RESIDUAL_NOISE
    return VectorKind(name=name, summary=summary, params=PARAMS, noise=noise, outputs=OUTPUTS,
                      output_dtypes=OUTPUT_DTYPES, draw_noise=draw_diffusion_noise,
                      reference=reference_replay(name), torch=torch_replay(name),
                      row_margins=diffusion_row_margins(name),
                      cases=lambda: [c for c in diffusion_cases() if c.kind == name],
                      noise_row_axis=STEP_AXIS_NOISE)


KINDS = (
    diffusion_kind("diffusion_aligned", "aligned-trajectory diffusion, batched residual on the "
                                        "last step"),
    diffusion_kind("diffusion_aligned_reflection", "aligned-trajectory diffusion, reflection on "
                                                   "equal-scale last steps"),
    diffusion_kind("diffusion_joint", "joint-criterion diffusion, whole-trajectory batched "
                                      "residual"),
)
