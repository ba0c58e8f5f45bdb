"""A JAX port of exact speculative sampling of one continuous token (float64, CPU).

Written from docs/algorithms.md §2-3 (the maths) and docs/vectors.md §4.1 (the noise layout of
the token kinds), without calling ``cspd_ref``. Float64 throughout: this module turns on
``jax_enable_x64`` when imported (JAX computes in float32 otherwise).

For draft ``q`` and target ``p``, diagonal Gaussian mixtures (weights ``(K,)``, means and
scales ``(K, d)``), per row:

1. draft ``x = mu_k + s_k * z`` with ``k = #{j < K-1 : u >= W_j}``, ``W`` the cumulative
   weights (inverse CDF; docs/algorithms.md §2);
2. ``lr = log p(x) - log q(x)`` from log-sum-exp log-densities; accept iff ``log u < lr``
   (docs/algorithms.md §3.1): ``P(accept | x) = min(1, p(x)/q(x))``;
3. a rejected row is resampled from the residual ``(p - q)^+ / TV`` (docs/algorithms.md §3.3):
   proposals ``y ~ p`` are accepted iff ``u' < -expm1(min(0, log q(y) - log p(y)))``; the first
   success in proposal order is the sample, ``trials`` its 1-based index. Two engines give the
   same value on the same noise:

   * ``residual_loop``: one proposal per pending row per step (``lax.while_loop``);
   * ``residual_batched``: rounds of ``slots`` proposals per row, first success in index order;

   or, for single Gaussians with identical scales ``S``, the reflection
   ``y = mu_p + S (w - 2 (w . e) e)``, ``w = S^{-1}(x - mu_q)``,
   ``e = S^{-1}(mu_p - mu_q) / ||S^{-1}(mu_p - mu_q)||`` (maximal coupling, no proposals).

Exactness is the point: a row whose residual proposals run out (explicit noise) or exceed
``MAX_TRIALS`` (``sampler``) raises ``ResidualExhausted``; no value is ever substituted.

Entry points: ``speculative_sample_from_noise`` (pure function of its noise),
``replay(kind, params, noise)`` for ``cspd vectors check --impl cspd_jax.py:replay``, and
``sampler(case, n, seed)`` (the ``verify`` contract, noise from ``jax.random``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after enabling float64)
import numpy as np  # noqa: E402
from jax.scipy.special import logsumexp  # noqa: E402

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
MAX_TRIALS = 100_000
"""Residual proposals per row before ``sampler`` raises; P(a row needs more) = (1-TV)^MAX_TRIALS."""
SLOTS = 4
"""Proposals per row and round of the batched residual."""
TOKEN_KINDS = ("token_loop", "token_batched", "token_reflection")


class ResidualExhausted(RuntimeError):
    """Rows found no accepted residual proposal in the proposals available; nothing was
    substituted."""

    def __init__(self, rows: np.ndarray, proposals: int) -> None:
        self.rows = np.asarray(rows)
        super().__init__(f"{self.rows.size} row(s) without an accepted residual proposal after "
                         f"{proposals} proposals (first rows {self.rows[:10].tolist()})")


class Mixture(NamedTuple):
    """A diagonal Gaussian mixture: ``weights (K,)``, ``means (K, d)``, ``scales (K, d)``."""

    weights: jax.Array
    means: jax.Array
    scales: jax.Array


class TokenResult(NamedTuple):
    """Outputs per row: draft ``(n, d)``, log-ratio ``(n,)``, accepted ``(n,)``, samples
    ``(n, d)``, trials ``(n,)``; ``exhausted (n,)`` flags rows whose residual ran out."""

    draft_samples: jax.Array
    log_ratio: jax.Array
    accepted: jax.Array
    samples: jax.Array
    trials: jax.Array
    exhausted: jax.Array


def mixture(weights: Any, means: Any, scales: Any) -> Mixture:
    """A ``Mixture`` of float64 arrays.

    Raises:
        ValueError: naming the argument, for shapes that disagree or non-positive scales.
    """
    w, m, s = (jnp.asarray(a, dtype=jnp.float64) for a in (weights, means, scales))
    if w.ndim != 1 or m.ndim != 2 or m.shape[0] != w.shape[0]:
        raise ValueError(f"means: expected ({w.shape[0]}, d) for weights {w.shape}, got {m.shape}")
    if s.shape != m.shape:
        raise ValueError(f"scales: expected shape {m.shape}, got {s.shape}")
    if not bool(jnp.all(s > 0)):
        raise ValueError("scales: must be strictly positive")
    return Mixture(w, m, s)


# --------------------------------------------------------------------- densities, sampling
def log_prob(mix: Mixture, x: jax.Array) -> jax.Array:
    """``log p(x) = logsumexp_k(log w_k - 1/2 sum_j z_kj^2 - sum_j log s_kj - d/2 log 2 pi)``,
    ``z = (x - mu_k) / s_k``; ``x (..., d)`` -> ``(...)``."""
    z = (x[..., None, :] - mix.means) / mix.scales
    per_component = (-0.5 * jnp.sum(z * z, axis=-1) - jnp.sum(jnp.log(mix.scales), axis=-1)
                     - x.shape[-1] * HALF_LOG_TWO_PI)
    return logsumexp(jnp.log(mix.weights) + per_component, axis=-1)


def sample_from_noise(mix: Mixture, uniforms: jax.Array, normals: jax.Array) -> jax.Array:
    """``mu_k + s_k z`` with ``k = #{j < K-1 : u >= W_j}``: ``uniforms (...)``,
    ``normals (..., d)`` -> ``(..., d)``."""
    bounds = jnp.cumsum(mix.weights)[:-1]
    k = jnp.sum(uniforms[..., None] >= bounds, axis=-1)
    return mix.means[k] + mix.scales[k] * normals


def residual_acceptance(draft: Mixture, target: Mixture, y: jax.Array) -> jax.Array:
    """``(1 - q(y)/p(y))^+ = -expm1(min(0, log q(y) - log p(y)))``."""
    return -jnp.expm1(jnp.minimum(0.0, log_prob(draft, y) - log_prob(target, y)))


# --------------------------------------------------------------------- residual engines
def first_success(draft: Mixture, target: Mixture, component_uniforms: jax.Array,
                  normals: jax.Array, accept_uniforms: jax.Array,
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Over ``k`` proposal slots per row (``(n, k)``, ``(n, k, d)``, ``(n, k)``): the first
    accepted proposal ``(n, d)``, its 0-based slot ``(n,)`` and whether one exists ``(n,)``."""
    y = sample_from_noise(target, component_uniforms, normals)
    success = accept_uniforms < residual_acceptance(draft, target, y)
    slot = jnp.argmax(success, axis=1)
    return jnp.take_along_axis(y, slot[:, None, None], axis=1)[:, 0], slot, success.any(axis=1)


def residual_batched(draft: Mixture, target: Mixture, pending: jax.Array,
                     component_uniforms: jax.Array, normals: jax.Array,
                     accept_uniforms: jax.Array, slots: int = SLOTS,
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Batched residual on explicit noise ``(n, M)``, ``(n, M, d)``, ``(n, M)``: rounds of
    ``slots`` proposals per pending row, the first success in index order wins.

    Returns ``(values (n, d), trials (n,), still_pending (n,))``; ``trials`` is the 1-based
    index of the accepted proposal (0 for rows not pending).
    """
    component_uniforms, normals, accept_uniforms = (
        jnp.asarray(a, dtype=jnp.float64) for a in (component_uniforms, normals, accept_uniforms))
    n, M = accept_uniforms.shape
    rounds = -(-M // slots)
    pad = rounds * slots - M
    # padding slots carry u' = 1, which never passes u' < a <= 1
    u_c = jnp.pad(component_uniforms, ((0, 0), (0, pad)))
    z = jnp.pad(normals, ((0, 0), (0, pad), (0, 0)))
    u_a = jnp.pad(accept_uniforms, ((0, 0), (0, pad)), constant_values=1.0)

    def one_round(carry: tuple[jax.Array, jax.Array, jax.Array], r: jax.Array,
                  ) -> tuple[tuple[jax.Array, jax.Array, jax.Array], None]:
        values, trials, waiting = carry
        cols = r * slots + jnp.arange(slots)
        y, slot, found = first_success(draft, target, u_c[:, cols], z[:, cols], u_a[:, cols])
        take = waiting & found
        values = jnp.where(take[:, None], y, values)
        trials = jnp.where(take, r * slots + slot + 1, trials)
        return (values, trials, waiting & ~found), None

    start = (jnp.zeros((n, normals.shape[2])), jnp.zeros(n, dtype=jnp.int64), pending)
    (values, trials, waiting), _ = jax.lax.scan(one_round, start, jnp.arange(rounds))
    return values, trials, waiting


def residual_loop(draft: Mixture, target: Mixture, pending: jax.Array,
                  component_uniforms: jax.Array, normals: jax.Array,
                  accept_uniforms: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The sequential residual loop on explicit noise: proposal ``j = 0, 1, ...`` for every
    still-pending row until each succeeds or the ``M`` proposals run out. Same outputs as
    ``residual_batched`` on the same noise."""
    component_uniforms, normals, accept_uniforms = (
        jnp.asarray(a, dtype=jnp.float64) for a in (component_uniforms, normals, accept_uniforms))
    n, M = accept_uniforms.shape

    def keep_going(state: tuple[jax.Array, jax.Array, jax.Array, jax.Array]) -> jax.Array:
        j, _, _, waiting = state
        return (j < M) & waiting.any()

    def step(state: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
             ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        j, values, trials, waiting = state
        y = sample_from_noise(target, component_uniforms[:, j], normals[:, j])
        ok = waiting & (accept_uniforms[:, j] < residual_acceptance(draft, target, y))
        return (j + 1, jnp.where(ok[:, None], y, values), jnp.where(ok, j + 1, trials),
                waiting & ~ok)

    start = (jnp.asarray(0), jnp.zeros((n, normals.shape[2])), jnp.zeros(n, dtype=jnp.int64),
             pending)
    _, values, trials, waiting = jax.lax.while_loop(keep_going, step, start)
    return values, trials, waiting


def reflect(x: jax.Array, mean_draft: jax.Array, mean_target: jax.Array,
            scale: jax.Array) -> jax.Array:
    """``mu_p + S (w - 2 (w . e) e)``, ``w = S^{-1}(x - mu_q)``, ``e`` the unit whitened mean
    difference; ``x`` unchanged where the means coincide (such rows are never rejected)."""
    direction = (mean_target - mean_draft) / scale
    norm = jnp.linalg.norm(direction)
    e = direction / jnp.where(norm > 0, norm, 1.0)
    w = (x - mean_draft) / scale
    reflected = mean_target + scale * (w - 2.0 * (w @ e)[:, None] * e)
    return jnp.where(norm > 0, reflected, x)


def equal_scale_gaussians(draft: Mixture, target: Mixture) -> bool:
    """True when both are single Gaussians with identical scales (reflection applies)."""
    return (draft.weights.shape[0] == 1 and target.weights.shape[0] == 1
            and bool(jnp.array_equal(draft.scales, target.scales)))


# --------------------------------------------------------------------- the sampler
def speculative_sample_from_noise(draft: Mixture, target: Mixture, draft_component_uniforms: Any,
                                  draft_normals: Any, accept_uniforms: Any,
                                  residual_noise: tuple[Any, Any, Any] | None, *,
                                  method: str) -> TokenResult:
    """Speculative sampling as a pure function of its noise (docs/vectors.md §4.1 layout).

    Args:
        draft, target: ``Mixture``\\ s of one event dimension d.
        draft_component_uniforms, draft_normals, accept_uniforms: ``(n,)``, ``(n, d)``,
            ``(n,)``.
        residual_noise: ``(component_uniforms (n, M), normals (n, M, d), accept_uniforms
            (n, M))``; ``None`` for reflection.
        method: ``"loop"``, ``"batched"`` or ``"reflection"``.

    Raises:
        ValueError: naming ``method`` or ``residual_noise``.
    """
    if method not in ("loop", "batched", "reflection"):
        raise ValueError(f"method: expected loop, batched or reflection, got {method!r}")
    if method == "reflection" and not equal_scale_gaussians(draft, target):
        raise ValueError("method: reflection needs single Gaussians with equal scales")
    if method != "reflection" and residual_noise is None:
        raise ValueError(f"residual_noise: required for method {method!r}")
    u_c, z, u = (jnp.asarray(a, dtype=jnp.float64)
                 for a in (draft_component_uniforms, draft_normals, accept_uniforms))
    noise = None if residual_noise is None else tuple(
        jnp.asarray(a, dtype=jnp.float64) for a in residual_noise)
    return _speculative(draft, target, u_c, z, u, noise, method)


@partial(jax.jit, static_argnames=("method",))
def _speculative(draft: Mixture, target: Mixture, u_c: jax.Array, z: jax.Array, u: jax.Array,
                 noise: tuple[jax.Array, jax.Array, jax.Array] | None,
                 method: str) -> TokenResult:
    x = sample_from_noise(draft, u_c, z)
    lr = log_prob(target, x) - log_prob(draft, x)
    accepted = jnp.log(u) < lr
    if method == "reflection":
        values = reflect(x, draft.means[0], target.means[0], target.scales[0])
        trials = jnp.zeros(x.shape[0], dtype=jnp.int64)
        waiting = jnp.zeros(x.shape[0], dtype=bool)
    else:
        assert noise is not None
        engine = residual_loop if method == "loop" else residual_batched
        values, trials, waiting = engine(draft, target, ~accepted, *noise)
    samples = jnp.where(accepted[:, None], x, values)
    return TokenResult(x, lr, accepted, samples, trials, waiting)


def replay(kind: str, params: dict[str, np.ndarray], noise: dict[str, np.ndarray]) -> Any:
    """The conformance-vector interface (docs/vectors.md §5): replay a ``token_*`` vector;
    ``NotImplemented`` for other kinds (diffusion, AR).

    Raises:
        ResidualExhausted: a rejected row found no success in its stored proposals.
    """
    if kind not in TOKEN_KINDS:
        return NotImplemented
    draft = mixture(params["draft_weights"], params["draft_means"], params["draft_scales"])
    target = mixture(params["target_weights"], params["target_means"], params["target_scales"])
    method = kind.removeprefix("token_")
    residual = None if method == "reflection" else (
        noise["residual_component_uniforms"], noise["residual_normals"],
        noise["residual_accept_uniforms"])
    out = speculative_sample_from_noise(draft, target, noise["draft_component_uniforms"],
                                        noise["draft_normals"], noise["accept_uniforms"],
                                        residual, method=method)
    if bool(out.exhausted.any()):
        raise ResidualExhausted(np.flatnonzero(np.asarray(out.exhausted)),
                                noise["residual_accept_uniforms"].shape[1])
    return {name: np.asarray(getattr(out, name))
            for name in ("draft_samples", "log_ratio", "accepted", "samples", "trials")}


class SamplerOutput(NamedTuple):
    """``sampler``'s result: ``.samples (n, d)``, ``.accepted (n,)``, ``.trials (n,)``."""

    samples: np.ndarray
    accepted: np.ndarray
    trials: np.ndarray


@partial(jax.jit, static_argnames=("n", "d", "rounds"))
def _generated(draft: Mixture, target: Mixture, key: jax.Array, n: int, d: int,
               rounds: int) -> TokenResult:
    """Speculative sampling with noise from ``jax.random``; the batched residual draws
    ``SLOTS`` fresh proposals per row and round, up to ``rounds`` rounds."""
    k_c, k_z, k_u, k_r = jax.random.split(key, 4)
    x = sample_from_noise(draft, jax.random.uniform(k_c, (n,), dtype=jnp.float64),
                          jax.random.normal(k_z, (n, d), dtype=jnp.float64))
    lr = log_prob(target, x) - log_prob(draft, x)
    accepted = jnp.log(jax.random.uniform(k_u, (n,), dtype=jnp.float64)) < lr

    def keep_going(state: tuple[jax.Array, ...]) -> jax.Array:
        r, _, _, waiting, _ = state
        return (r < rounds) & waiting.any()

    def one_round(state: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        r, values, trials, waiting, key = state
        key, k1, k2, k3 = jax.random.split(key, 4)
        y, slot, found = first_success(
            draft, target, jax.random.uniform(k1, (n, SLOTS), dtype=jnp.float64),
            jax.random.normal(k2, (n, SLOTS, d), dtype=jnp.float64),
            jax.random.uniform(k3, (n, SLOTS), dtype=jnp.float64))
        take = waiting & found
        return (r + 1, jnp.where(take[:, None], y, values),
                jnp.where(take, r * SLOTS + slot + 1, trials), waiting & ~found, key)

    start = (jnp.asarray(0), jnp.zeros((n, d)), jnp.zeros(n, dtype=jnp.int64), ~accepted, k_r)
    _, values, trials, waiting, _ = jax.lax.while_loop(keep_going, one_round, start)
    return TokenResult(x, lr, accepted, jnp.where(accepted[:, None], x, values), trials,
                       waiting)


def sampler(case: Any, n: int, seed: int) -> SamplerOutput:
    """The ``verify`` contract ``sampler(case, n, seed)`` (docs/contract.md §1): ``n`` tokens of
    ``case.target``'s law, speculatively from ``case.draft``, all noise from
    ``jax.random.key(seed)``. Reflection for equal-scale single Gaussians, else the batched
    residual (at most ``MAX_TRIALS`` proposals per row).

    Raises:
        ValueError: naming ``n`` or ``seed`` when they are not non-negative integers.
        ResidualExhausted: a row needed more than ``MAX_TRIALS`` residual proposals.
    """
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    draft = mixture(case.draft.weights, case.draft.means, case.draft.scales)
    target = mixture(case.target.weights, case.target.means, case.target.scales)
    d = int(target.means.shape[1])
    key = jax.random.key(int(seed))
    if equal_scale_gaussians(draft, target):
        k_c, k_z, k_u = jax.random.split(key, 3)
        out = speculative_sample_from_noise(
            draft, target, jax.random.uniform(k_c, (n,), dtype=jnp.float64),
            jax.random.normal(k_z, (n, d), dtype=jnp.float64),
            jax.random.uniform(k_u, (n,), dtype=jnp.float64), None, method="reflection")
    else:
        out = _generated(draft, target, key, int(n), d, MAX_TRIALS // SLOTS)
    if bool(out.exhausted.any()):
        raise ResidualExhausted(np.flatnonzero(np.asarray(out.exhausted)), MAX_TRIALS)
    return SamplerOutput(np.asarray(out.samples), np.asarray(out.accepted),
                         np.asarray(out.trials))
