"""Exact speculative sampling of continuous tokens over batched tensors (docs/algorithms.md §3, §7).

The PyTorch counterpart of ``cspd_ref.speculative``; draft ``q``, target ``p`` are
``gpu_impl.GaussianMixture``\\ s with batch shape ``()`` (one pair for every row) or ``(n,)``.

1. ``x ~ q``; accept iff ``log u < lr(x) = log p(x) - log q(x)``, ``u ~ U[0, 1)``.
   ``P(accept) = 1 - TV(p, q)``. The log-ratio and the test are computed in float32 for
   float16/bfloat16 distributions (``compute_dtype``), in the parameter dtype otherwise.
2. Rejected rows are resampled from the residual ``r = (p - q)^+ / TV`` (``gpu_impl.residual``:
   loop, batched first success or reflection; a safety cap raises ``ResidualBudgetExceeded``,
   the class of ``cspd_ref``, and never substitutes a value).

Randomness is explicit: ``speculative_sample_from_noise`` is a pure function of its noise
tensors and of a residual noise stream (docs/noise.md §1); ``speculative_sample`` draws all
noise from a ``torch.Generator``.

Host synchronisation: the draft sample, the log-ratio and the acceptance test are
synchronisation-free; the residual stage has data-dependent shapes (two synchronisations per
batched round), and argument validation synchronises once per checked value.

Twin module: ``cspd_ref.speculative`` (same public names, same order). The names of
``gpu_impl.residual`` are re-exported here, where callers have always imported them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gpu_impl.distributions import GaussianMixture, require_mixture, require_same_event
from gpu_impl.residual import (
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
from gpu_impl.validation import (
    as_tensor,
    compute_dtype,
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
    # re-exported from gpu_impl.residual (in its order)
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
        samples: ``(n, d)`` samples in the distributions' dtype, distributed exactly as the
            target.
        accepted: ``(n,)`` bool, True where the draft was accepted.
        trials: ``(n,)`` int64, residual proposals examined up to and including the accepted
            one (0 for accepted rows and for the reflection residual).
    """

    samples: Tensor
    accepted: Tensor
    trials: Tensor


# --------------------------------------------------------------------- the acceptance test
def log_acceptance_ratio(draft: GaussianMixture, target: GaussianMixture, x: Tensor) -> Tensor:
    """``log p(x) - log q(x)`` from log-densities (never densities), in ``compute_dtype``
    (docs/algorithms.md §3.2)."""
    return target.log_prob_unchecked(x) - draft.log_prob_unchecked(x)


def accept_from_uniforms(log_ratio: Tensor, uniforms: Tensor) -> Tensor:
    """Accept iff ``log u < log p(x) - log q(x)``, i.e. with probability ``min(1, p/q)``
    (docs/algorithms.md §3.2).

    ``u`` is upcast to the log-ratio's dtype (float32 at least); ``u == 0`` gives
    ``log u = -inf`` and is accepted (a null event).
    """
    ct = compute_dtype(log_ratio.dtype)
    return torch.log(uniforms.to(ct)) < log_ratio.to(ct)


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
    draft_component_uniforms: Any,
    draft_normals: Any,
    accept_uniforms: Any,
    residual_noise: ResidualNoise | None,
    *,
    residual: str = "auto",
    max_trials: int = DEFAULT_MAX_TRIALS,
) -> SpeculativeResult:
    """Speculative sampling as a pure function of its noise (docs/noise.md §1).

    ``x = draft.sample_from_noise(draft_component_uniforms, draft_normals)``; accept iff
    ``log u < log p(x) - log q(x)``; rejected rows are resampled from ``(p - q)^+ / TV`` by the
    chosen residual method, global row ``i``'s proposals drawn from ``residual_noise`` row ``i``
    (unused by reflection). Noise tensors are cast to the distributions' ``compute_dtype``
    after their ranges are checked.

    Args:
        draft, target: ``gpu_impl.GaussianMixture``, batch shape ``()`` or ``(n,)``, same
            dtype and device.
        draft_component_uniforms: ``(n,)`` in [0, 1).
        draft_normals: ``(n, d)``.
        accept_uniforms: ``(n,)`` in [0, 1).
        residual_noise: a ``ResidualNoise`` stream (``ResidualNoiseArrays`` or
            ``ResidualNoiseGenerator``); may be ``None`` for ``residual="reflection"``.
        residual: ``"auto" | "loop" | "batched" | "reflection"``.
        max_trials: safety cap on residual proposals per row; exceeding it raises.

    Returns:
        ``SpeculativeResult`` (``samples`` in the distributions' dtype).

    Raises:
        ValueError: naming the bad argument (docs/contract.md §4).
        ResidualBudgetExceeded: rows unfinished after ``max_trials`` proposals.
    """
    check_pair(draft, target)
    method = resolve_residual_method(residual, draft, target)
    max_trials = require_int(max_trials, "max_trials", minimum=1)
    device, ct = target.device, target.compute_dtype
    u_c = require_half_open_unit_interval(
        as_tensor(draft_component_uniforms, "draft_component_uniforms", ndim=1, device=device),
        "draft_component_uniforms")
    n = int(u_c.shape[0])
    z = require_shape(as_tensor(draft_normals, "draft_normals", ndim=2, device=device),
                      (n, target.dim), "draft_normals")
    u_acc = require_half_open_unit_interval(
        require_shape(as_tensor(accept_uniforms, "accept_uniforms", ndim=1, device=device),
                      (n,), "accept_uniforms"), "accept_uniforms")
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

    x = draft.sample_from_noise_unchecked(u_c.to(ct), z.to(ct))
    return verify_draft_from_noise(draft, target, x, u_acc, residual_noise, method=method,
                                   max_trials=max_trials)


def verify_draft_from_noise(draft: GaussianMixture, target: GaussianMixture, x: Tensor,
                            accept_uniforms: Tensor, residual_noise: ResidualNoise | None,
                            *, method: str, max_trials: int = DEFAULT_MAX_TRIALS,
                            ) -> SpeculativeResult:
    """Accept or resample already-drafted tokens ``x ~ q`` (``(n, d)``): the verification half of
    speculative sampling (docs/algorithms.md §3.2, §3.3), as
    ``cspd_ref.speculative.verify_draft_from_noise`` with tensors.

    Accept row ``i`` iff ``log u_i < log p(x_i) - log q(x_i)``
    (``accept_from_uniforms(log_acceptance_ratio(...))``, in ``compute_dtype``), then
    ``resample_rejected_from_noise``. ``method`` is a resolved residual method
    (``"loop" | "batched" | "reflection"``); inputs are assumed validated by the caller.

    Raises:
        ResidualBudgetExceeded: rows (numbered as in ``x``) unfinished after ``max_trials``.
    """
    accepted = accept_from_uniforms(log_acceptance_ratio(draft, target, x), accept_uniforms)
    return resample_rejected_from_noise(draft, target, x, accepted, residual_noise,
                                        method=method, max_trials=max_trials)


def resample_rejected_from_noise(draft: GaussianMixture, target: GaussianMixture, x: Tensor,
                                 accepted: Tensor, residual_noise: ResidualNoise | None, *,
                                 method: str, max_trials: int = DEFAULT_MAX_TRIALS,
                                 ) -> SpeculativeResult:
    """The residual stage (docs/algorithms.md §3.3): keep the accepted rows of ``x``, replace
    each rejected row ``i`` by a draw from ``(p - q)^+ / TV``, its proposals read from row ``i``
    of ``residual_noise`` (unused by reflection; docs/noise.md §1). Data-dependent shapes.

    Used directly by the AR decoder (docs/algorithms.md §5), which makes the acceptance
    decisions of a whole round at once first; ``verify_draft_from_noise`` is the test followed
    by this. ``method`` is a resolved residual method; inputs are assumed validated by the
    caller.

    Returns:
        ``SpeculativeResult(samples, accepted, trials)``.

    Raises:
        ResidualBudgetExceeded: rows (numbered as in ``x``) unfinished after ``max_trials``.
    """
    n = int(x.shape[0])
    samples = x.clone()
    trials = torch.zeros(n, dtype=torch.int64, device=x.device)
    rejected = torch.nonzero(~accepted).squeeze(1)
    if rejected.numel():
        if method == "reflection":
            samples[rejected] = residual_sample_reflection(draft, target, x[rejected], rejected)
        else:
            if residual_noise is None:
                raise ValueError(f"residual_noise: a noise stream is required for "
                                 f"residual={method!r}")
            sub_draft = draft.index_batch(rejected) if tuple(draft.batch_shape) else draft
            sub_target = target.index_batch(rejected) if tuple(target.batch_shape) else target
            sampler = residual_sample_loop if method == "loop" else residual_sample_batched
            stream = RowSubsetNoise(residual_noise, rejected)
            with global_rows(rejected):
                values, used = sampler(sub_draft, sub_target, int(rejected.numel()), stream,
                                       max_trials=max_trials)
            samples[rejected] = values
            trials[rejected] = used
    return SpeculativeResult(samples=samples, accepted=accepted, trials=trials)


def speculative_sample(draft: GaussianMixture, target: GaussianMixture, n: int,
                       generator: torch.Generator, *, residual: str = "auto",
                       max_trials: int = DEFAULT_MAX_TRIALS) -> SpeculativeResult:
    """Draw ``n`` tokens whose law is exactly ``target``, speculatively from ``draft``.

    The PyTorch counterpart of ``cspd_ref.speculative_sample`` (docs/algorithms.md §3, §7). Noise is
    drawn from ``generator`` on the distributions' device, in ``compute_dtype``, in the order:
    draft component uniforms ``(n,)``, draft normals ``(n, d)``, acceptance uniforms ``(n,)``,
    then residual proposals on demand (docs/noise.md §1). No value check on the noise it draws
    itself, so the draft and the test are synchronisation-free.

    Args:
        draft: the draft ``q`` (batch ``()`` or ``(n,)``).
        target: the target ``p`` (batch ``()`` or ``(n,)``).
        n: number of tokens.
        generator: a ``torch.Generator`` on the distributions' device (required: randomness is
            explicit).
        residual: ``"auto"`` (reflection for equal-scale single Gaussians, batched otherwise),
            ``"loop"``, ``"batched"`` or ``"reflection"``.
        max_trials: safety cap on residual proposals per row (raises, never substitutes).

    Returns:
        ``SpeculativeResult`` with ``.samples`` ``(n, d)``, ``.accepted`` ``(n,)``, ``.trials``
        ``(n,)``.

    Example:
        >>> import torch, gpu_impl
        >>> q = gpu_impl.GaussianMixture([1.0], [[0.0]], [[1.0]])
        >>> p = gpu_impl.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.5], [0.5]])
        >>> out = gpu_impl.speculative_sample(q, p, 1000, torch.Generator().manual_seed(0))
        >>> tuple(out.samples.shape), out.accepted.dtype
        ((1000, 1), torch.bool)
    """
    check_pair(draft, target)
    n = require_int(n, "n")
    device, ct = target.device, target.compute_dtype
    generator = require_generator(generator, device)
    method = resolve_residual_method(residual, draft, target)
    max_trials = require_int(max_trials, "max_trials", minimum=1)
    for name, dist in (("draft", draft), ("target", target)):
        require_batch_shape(dist.batch_shape, name, n)
    u_c = torch.rand(n, generator=generator, device=device, dtype=ct)
    z = torch.randn((n, target.dim), generator=generator, device=device, dtype=ct)
    u_acc = torch.rand(n, generator=generator, device=device, dtype=ct)
    x = draft.sample_from_noise_unchecked(u_c, z)
    noise = ResidualNoiseGenerator(target.dim, generator=generator, device=device, dtype=ct)
    return verify_draft_from_noise(draft, target, x, u_acc, noise, method=method,
                                   max_trials=max_trials)
