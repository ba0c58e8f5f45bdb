"""Exact speculative sampling of one continuous token (docs/algorithms.md §3), float64 reference.

Draft ``q``, target ``p`` (``GaussianMixture``\\ s, batch shape ``()`` or ``(n,)``).

1. Draw ``x ~ q`` and accept iff ``log u < log p(x) - log q(x)`` with ``u ~ U[0, 1)``.
   ``P(accept) = ∫ q min(1, p/q) = 1 - TV(p, q)``.
2. On rejection draw from the residual ``r = (p - q)^+ / TV`` (``cspd_ref.residual``: loop,
   batched first success or reflection; a safety cap raises ``ResidualBudgetExceeded`` and
   never substitutes a value).

Randomness is explicit: ``*_from_noise`` functions are pure functions of their noise arrays and
of a residual noise stream (docs/noise.md §1), and ``speculative_sample`` draws that noise from
a ``numpy.random.Generator``.

Twin module: ``gpu_impl.speculative`` (same public names, same order). The names of
``cspd_ref.residual`` are re-exported here, where callers have always imported them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.distributions import (
    GaussianMixture,
    require_mixture,
    require_same_event,
)
from cspd_ref.residual import (
    DEFAULT_MAX_TRIALS,
    FIRST_ROUND_SIZE,
    RESIDUAL_METHODS,
    ROUND_ELEMENT_BUDGET,
    ProposalFn,
    ResidualBudgetExceeded,
    ResidualMethod,
    ResidualNoise,
    ResidualNoiseArrays,
    ResidualNoiseGenerator,
    RowSubsetNoise,
    equal_scale_gaussians,
    first_success_residual_batched,
    first_success_residual_loop,
    global_rows,
    reflection_map,
    require_noise_stream,
    residual_acceptance_from_log_ratio,
    residual_acceptance_probability,
    residual_sample_batched,
    residual_sample_loop,
    residual_sample_reflection,
    resolve_residual_method,
    rows_of,
    token_proposal_fn,
)
from cspd_ref.validation import (
    BoolArray,
    FloatArray,
    IntArray,
    as_float64,
    require_batch_shape,
    require_generator,
    require_half_open_unit_interval,
    require_int,
    require_shape,
)

__all__ = [  # noqa: RUF022 (definition order, the same in the twin module)
    # defined here
    "SpeculativeResult",
    "log_acceptance_ratio",
    "accept_from_uniforms",
    "check_pair",
    "speculative_sample_from_noise",
    "verify_draft_from_noise",
    "resample_rejected_from_noise",
    "speculative_sample",
    # re-exported from cspd_ref.residual (in its order)
    "ResidualMethod",
    "RESIDUAL_METHODS",
    "DEFAULT_MAX_TRIALS",
    "FIRST_ROUND_SIZE",
    "ROUND_ELEMENT_BUDGET",
    "ResidualBudgetExceeded",
    "residual_acceptance_from_log_ratio",
    "residual_acceptance_probability",
    "ResidualNoise",
    "ResidualNoiseArrays",
    "ResidualNoiseGenerator",
    "require_noise_stream",
    "RowSubsetNoise",
    "global_rows",
    "ProposalFn",
    "first_success_residual_loop",
    "first_success_residual_batched",
    "rows_of",
    "token_proposal_fn",
    "residual_sample_loop",
    "residual_sample_batched",
    "equal_scale_gaussians",
    "reflection_map",
    "residual_sample_reflection",
    "resolve_residual_method",
]


@dataclass(frozen=True)
class SpeculativeResult:
    """Output of a speculative sampler (docs/algorithms.md §3.5).

    Attributes:
        samples: ``(n, d)`` float64 samples, distributed exactly as the target.
        accepted: ``(n,)`` bool, True where the draft was accepted.
        trials: ``(n,)`` int64, residual proposals examined up to and including the accepted one
            (0 for accepted rows and for the reflection residual, which needs no proposals).
    """

    samples: FloatArray
    accepted: BoolArray
    trials: IntArray


# --------------------------------------------------------------------- the acceptance test
def log_acceptance_ratio(draft: GaussianMixture, target: GaussianMixture,
                         x: ArrayLike) -> FloatArray:
    """``log p(x) - log q(x)``, formed from log-densities (never from densities)
    (docs/algorithms.md §3.2)."""
    return target.log_prob(x) - draft.log_prob(x)


def accept_from_uniforms(log_ratio: ArrayLike, uniforms: ArrayLike) -> BoolArray:
    """Accept iff ``log u < log p(x) - log q(x)``, i.e. with probability ``min(1, p/q)``
    (docs/algorithms.md §3.2).

    ``u == 0`` gives ``log u = -inf`` and is accepted (a null event).
    """
    lr = np.asarray(log_ratio, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_u = np.log(np.asarray(uniforms, dtype=np.float64))
    return np.asarray(log_u < lr)


# --------------------------------------------------------------------- the whole sampler
def check_pair(draft: GaussianMixture, target: GaussianMixture) -> None:
    """Validate a draft/target pair for token sampling."""
    require_mixture(draft, "draft")
    require_mixture(target, "target")
    require_same_event(draft, target)
    for name, dist in (("draft", draft), ("target", target)):
        require_batch_shape(dist.batch_shape, name)


def speculative_sample_from_noise(
    draft: GaussianMixture,
    target: GaussianMixture,
    draft_component_uniforms: ArrayLike,
    draft_normals: ArrayLike,
    accept_uniforms: ArrayLike,
    residual_noise: ResidualNoise | None,
    *,
    residual: str = "auto",
    max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Speculative sampling as a pure function of its noise (docs/noise.md §1).

    ``x = draft.sample_from_noise(draft_component_uniforms, draft_normals)``; accept iff
    ``log u < log p(x) - log q(x)``; rejected rows are resampled from ``(p - q)^+ / TV`` by the
    chosen residual method, global row ``i``'s proposals drawn from ``residual_noise`` row ``i``
    (unused by reflection).

    Args:
        draft, target: batch shape ``()`` (one distribution for all rows) or ``(n,)``.
        draft_component_uniforms: ``(n,)`` in [0, 1).
        draft_normals: ``(n, d)``.
        accept_uniforms: ``(n,)`` in [0, 1).
        residual_noise: a ``ResidualNoise`` stream (``ResidualNoiseArrays`` or
            ``ResidualNoiseGenerator``); may be ``None`` for ``residual="reflection"``.
        residual: ``"auto" | "loop" | "batched" | "reflection"``.
        max_trials: safety cap on residual proposals per row; exceeding it raises.

    Returns:
        ``SpeculativeResult`` (float64 ``samples``).

    Raises:
        ValueError: naming the bad argument (docs/contract.md §4).
        ResidualBudgetExceeded: rows unfinished after ``max_trials`` proposals.
    """
    check_pair(draft, target)
    method = resolve_residual_method(residual, draft, target)
    max_trials = require_int(max_trials, "max_trials", minimum=1)
    u_c = require_half_open_unit_interval(
        as_float64(draft_component_uniforms, "draft_component_uniforms", ndim=1),
        "draft_component_uniforms")
    n = u_c.shape[0]
    z = require_shape(as_float64(draft_normals, "draft_normals", ndim=2), (n, target.dim),
                      "draft_normals")
    u_acc = require_half_open_unit_interval(
        require_shape(as_float64(accept_uniforms, "accept_uniforms", ndim=1), (n,),
                      "accept_uniforms"), "accept_uniforms")
    for name, dist in (("draft", draft), ("target", target)):
        require_batch_shape(dist.batch_shape, name, n)
    if method != "reflection" and residual_noise is None:
        raise ValueError(f"residual_noise: a noise stream is required for residual={method!r}")
    if residual_noise is not None:
        require_noise_stream(residual_noise)
        rows = getattr(residual_noise, "component_uniforms", None)
        if rows is not None and rows.shape[0] < n:
            raise ValueError(f"residual_noise: holds {rows.shape[0]} rows, expected at least "
                             f"{n} (one per token)")

    x = draft.sample_from_noise(u_c, z)
    return verify_draft_from_noise(draft, target, x, u_acc, residual_noise, method=method,
                                   max_trials=max_trials)


def verify_draft_from_noise(draft: GaussianMixture, target: GaussianMixture, x: FloatArray,
                            accept_uniforms: FloatArray, residual_noise: ResidualNoise | None,
                            *, method: str, max_trials: int = DEFAULT_MAX_TRIALS,
                            ) -> SpeculativeResult:
    """Accept or resample already-drafted tokens ``x ~ q`` (``(n, d)``): the verification half of
    speculative sampling (docs/algorithms.md §3.2, §3.3), used directly by AR decoding where the
    draft tokens come first (docs/algorithms.md §5).

    Accept row ``i`` iff ``log u_i < log p(x_i) - log q(x_i)``
    (``accept_from_uniforms(log_acceptance_ratio(...))``), then
    ``resample_rejected_from_noise``. ``method`` is a resolved residual method
    (``"loop" | "batched" | "reflection"``); inputs are assumed validated by the caller.

    Raises:
        ResidualBudgetExceeded: rows (numbered as in ``x``) unfinished after ``max_trials``.
    """
    accepted = accept_from_uniforms(log_acceptance_ratio(draft, target, x), accept_uniforms)
    return resample_rejected_from_noise(draft, target, x, accepted, residual_noise,
                                        method=method, max_trials=max_trials)


def resample_rejected_from_noise(draft: GaussianMixture, target: GaussianMixture,
                                 x: FloatArray, accepted: BoolArray,
                                 residual_noise: ResidualNoise | None, *, method: str,
                                 max_trials: int = DEFAULT_MAX_TRIALS) -> SpeculativeResult:
    """The residual stage (docs/algorithms.md §3.3): keep the accepted rows of ``x``, replace
    each rejected row ``i`` by a draw from ``(p - q)^+ / TV``, its proposals read from row ``i``
    of ``residual_noise`` (unused by reflection; docs/noise.md §1).

    Used directly where the acceptance decisions are already made (``gpu_impl``'s AR decoder
    decides a whole round first); ``verify_draft_from_noise`` is the test followed by this.
    ``method`` is a resolved residual method; inputs are assumed validated by the caller.

    Returns:
        ``SpeculativeResult(samples, accepted, trials)``.

    Raises:
        ResidualBudgetExceeded: rows (numbered as in ``x``) unfinished after ``max_trials``.
    """
    n = x.shape[0]
    samples = x.copy()
    trials = np.zeros(n, dtype=np.int64)
    rejected = np.flatnonzero(~accepted)
    if rejected.size:
        if method == "reflection":
            samples[rejected] = residual_sample_reflection(draft, target, x[rejected], rejected)
        else:
            if residual_noise is None:
                raise ValueError(f"residual_noise: a noise stream is required for "
                                 f"residual={method!r}")
            sub_draft = draft.index_batch(rejected) if draft.batch_shape else draft
            sub_target = target.index_batch(rejected) if target.batch_shape else target
            sampler = residual_sample_loop if method == "loop" else residual_sample_batched
            stream = RowSubsetNoise(residual_noise, rejected)
            with global_rows(rejected):
                values, used = sampler(sub_draft, sub_target, rejected.size, stream,
                                       max_trials=max_trials)
            samples[rejected] = values
            trials[rejected] = used
    return SpeculativeResult(samples=samples, accepted=accepted, trials=trials)


def speculative_sample(draft: GaussianMixture, target: GaussianMixture, n: int,
                       rng: np.random.Generator, *, residual: str = "auto",
                       max_trials: int = DEFAULT_MAX_TRIALS) -> SpeculativeResult:
    """Draw ``n`` tokens whose law is exactly ``target``, speculatively from ``draft``.

    Public API (docs/contract.md, docs/algorithms.md §3). The noise is drawn from ``rng`` in
    this order: draft component uniforms ``(n,)``, draft normals ``(n, d)``, acceptance uniforms
    ``(n,)``, then residual proposals on demand (docs/noise.md §1).

    Args:
        draft: the draft distribution ``q`` (batch ``()`` or ``(n,)``).
        target: the target distribution ``p`` (batch ``()`` or ``(n,)``).
        n: number of tokens.
        rng: a ``numpy.random.Generator``.
        residual: ``"auto"`` (reflection for equal-scale single Gaussians, batched otherwise),
            ``"loop"``, ``"batched"`` or ``"reflection"``.
        max_trials: safety cap on residual proposals per row (raises, never substitutes).

    Returns:
        ``SpeculativeResult`` with ``.samples`` ``(n, d)``, ``.accepted`` ``(n,)``, ``.trials``
        ``(n,)``.

    Example:
        >>> import numpy as np, cspd_ref
        >>> q = cspd_ref.GaussianMixture([1.0], [[0.0]], [[1.0]])
        >>> p = cspd_ref.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])
        >>> out = cspd_ref.speculative_sample(q, p, 1000, np.random.default_rng(0))
        >>> out.samples.shape, out.accepted.dtype
        ((1000, 1), dtype('bool'))
    """
    check_pair(draft, target)
    n = require_int(n, "n")
    rng = require_generator(rng)
    u_c = rng.random(n)
    z = rng.standard_normal((n, target.dim))
    u_acc = rng.random(n)
    return speculative_sample_from_noise(draft, target, u_c, z, u_acc,
                                         ResidualNoiseGenerator(target.dim, rng=rng),
                                         residual=residual, max_trials=max_trials)
