"""The sampler contract (docs/contract.md) backed by the PyTorch implementation: ``as_sampler``
(tokens) and ``as_ar_sampler`` (AR sequences). Twin module: ``cspd_ref.samplers``
(``token_sampler``, ``ar_sampler``).

``gpu_impl.as_sampler(device=..., dtype=..., residual=...)`` returns a callable
``sampler(case, n, seed) -> gpu_impl.SpeculativeResult`` that converts ``case.draft`` and
``case.target`` (``cspd_ref.GaussianMixture``, float64 NumPy parameters) to ``dtype`` on
``device``, seeds a ``torch.Generator`` on that device with ``seed`` and returns
``gpu_impl.speculative_sample(...)``: ``.samples`` ``(n, d)`` whose law is exactly
``case.target`` (up to the rounding of the parameters to ``dtype``), ``.accepted`` and
``.trials``, so the battery tests the acceptance and trial counts too (as it does for
``cspd_ref.samplers.token_sampler``). For float16/bfloat16 the sampling runs in float32
(parameters, noise, log-ratio) and only the samples are rounded to ``dtype``: the exact law
rounded to 11 or 8 significant bits, as a model under bfloat16 autocast would consume it
(rounding the *parameters* to 8 bits would move the law itself).

``gpu_impl.as_ar_sampler(...)`` is the sequence version: ``sampler(ar_case, n, seed) ->
torch.Tensor (n, L, d)`` from ``gpu_impl.ar_speculative_decode`` (docs/algorithms.md §5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gpu_impl.ar import ARModel, MixtureARModel, ar_speculative_decode, check_decode_options
from gpu_impl.distributions import from_reference
from gpu_impl.speculative import (
    DEFAULT_MAX_TRIALS,
    RESIDUAL_METHODS,
    SpeculativeResult,
    speculative_sample,
)
from gpu_impl.validation import require_device, require_floating_dtype, require_int

Sampler = Callable[[Any, int, int], Any]


def as_sampler(*, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
               residual: str = "auto", max_trials: int = DEFAULT_MAX_TRIALS) -> Sampler:
    """A sampler following the contract of docs/contract.md, backed by
    ``gpu_impl.speculative_sample``.

    Args:
        device: where the sampling runs (``"cuda"`` for the GPU).
        dtype: floating dtype of the samples; float32/float64 also of the parameters and the
            arithmetic; float16/bfloat16 sample in float32 and round the output.
        residual: ``"auto" | "loop" | "batched" | "reflection"`` (docs/algorithms.md §3.3).
        max_trials: safety cap on residual proposals per row (exceeding it raises).

    Returns:
        ``sampler(case, n, seed) -> gpu_impl.SpeculativeResult`` on ``device``: ``.samples``
        ``(n, d)`` in ``dtype`` (rounded from float32 for float16/bfloat16), ``.accepted``
        ``(n,)`` bool, ``.trials`` ``(n,)`` int64.

    Raises:
        ValueError: (here) a bad ``device``, ``dtype`` or ``residual``; (from the sampler) a case
            without ``draft``/``target`` mixtures, a negative ``n`` or ``seed``.

    Example:
        >>> import cspd_ref.cases, gpu_impl
        >>> sampler = gpu_impl.as_sampler()
        >>> out = sampler(cspd_ref.cases.demo_case(), 100, seed=0)
        >>> tuple(out.samples.shape), out.accepted.dtype, out.trials.dtype
        ((100, 2), torch.bool, torch.int64)
    """
    dev = require_device(device)
    dt = require_floating_dtype(dtype)
    if not isinstance(residual, str) or residual not in RESIDUAL_METHODS:
        raise ValueError(f"residual: expected one of {RESIDUAL_METHODS}, got {residual!r}")
    cap = require_int(max_trials, "max_trials", minimum=1)
    working = torch.float32 if dt in (torch.float16, torch.bfloat16) else dt

    def sampler(case: Any, n: int, seed: int) -> SpeculativeResult:
        for name in ("draft", "target"):
            if not hasattr(case, name):
                raise ValueError(f"case: expected a cspd_ref.Case with draft and target, got "
                                 f"{type(case).__name__}")
        n = require_int(n, "n")
        seed = require_int(seed, "seed")
        draft = from_reference(case.draft, dev, working)
        target = from_reference(case.target, dev, working)
        generator = torch.Generator(device=dev)
        generator.manual_seed(seed)
        out = speculative_sample(draft, target, n, generator, residual=residual,
                                 max_trials=cap)
        return SpeculativeResult(samples=out.samples.to(dt), accepted=out.accepted,
                                 trials=out.trials)

    sampler.__name__ = f"gpu_impl_sampler_{dev.type}_{str(dt).replace('torch.', '')}_{residual}"
    sampler.__qualname__ = sampler.__name__
    sampler.__doc__ = (f"gpu_impl speculative sampler (device={dev}, dtype={dt}, "
                       f"residual={residual!r}): sampler(case, n, seed) -> SpeculativeResult "
                       f"(samples (n, d), accepted, trials).")
    return sampler


def _ar_model(model: Any, name: str, device: torch.device, dtype: torch.dtype) -> ARModel:
    """A torch ``ARModel`` for ``model``: a ``cspd_ref.ar.MixtureARModel`` is converted with
    ``MixtureARModel.from_reference``; a gpu_impl ``ARModel`` is used as it is."""
    if isinstance(model, ARModel):
        return model
    from cspd_ref.ar import MixtureARModel as RefModel

    if isinstance(model, RefModel):
        return MixtureARModel.from_reference(model, device, dtype)
    raise ValueError(f"case: {name} must be a cspd_ref.ar.MixtureARModel or a gpu_impl ARModel, "
                     f"got {type(model).__name__}")


def as_ar_sampler(*, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                  gamma: int = 2, prefill: float = 0.0, bonus_group: bool = True,
                  residual: str = "auto", max_trials: int = DEFAULT_MAX_TRIALS) -> Sampler:
    """A sequence sampler following the contract of docs/contract.md, backed by
    ``gpu_impl.ar_speculative_decode`` (docs/algorithms.md §5).

    Args:
        device: where the decoding runs (``"cuda"`` for the GPU).
        dtype: floating dtype of the model parameters and tokens.
        gamma: draft length in groups, >= 1.
        prefill: fraction in [0, 1] of groups generated by the target alone first.
        bonus_group: sample the next group from the target when all drafted groups pass.
        residual: ``"auto" | "loop" | "batched" | "reflection"`` (docs/algorithms.md §3.3).
        max_trials: safety cap on residual proposals per token (exceeding it raises).

    Returns:
        ``sampler(ar_case, n, seed) -> torch.Tensor`` of shape ``(n, L, d)`` on ``device``:
        ``ar_case.draft``/``ar_case.target`` (``cspd_ref.ar.MixtureARModel``) are converted with
        ``MixtureARModel.from_reference`` and a ``torch.Generator`` on ``device`` is seeded with
        ``seed``.

    Raises:
        ValueError: (here) a bad ``device``, ``dtype``, ``gamma``, ``prefill``, ``bonus_group``,
            ``residual`` or ``max_trials``; (from the sampler) a case without ``draft``,
            ``target`` and ``schedule``, a negative ``n`` or ``seed``.

    Example:
        >>> import numpy as np, gpu_impl
        >>> from cspd_ref.ar import MixtureARModel, mar_schedule
        >>> from cspd_ref.cases import ARCase
        >>> rng = np.random.default_rng(0)
        >>> p = MixtureARModel.random(6, 2, 2, rng=rng)
        >>> case = ARCase(p.perturbed(0.3, rng=rng), p, mar_schedule(6, 3, rng=rng))
        >>> tuple(gpu_impl.as_ar_sampler()(case, 10, seed=0).shape)
        (10, 6, 2)
    """
    dev = require_device(device)
    dt = require_floating_dtype(dtype)
    gamma, prefill_value, cap = check_decode_options(gamma, prefill, bonus_group, residual,
                                                     max_trials)

    def sampler(case: Any, n: int, seed: int) -> torch.Tensor:
        for name in ("draft", "target", "schedule"):
            if not hasattr(case, name):
                raise ValueError(f"case: expected a cspd_ref.cases.ARCase with draft, target and "
                                 f"schedule, got {type(case).__name__}")
        n = require_int(n, "n")
        seed = require_int(seed, "seed")
        draft = _ar_model(case.draft, "draft", dev, dt)
        target = _ar_model(case.target, "target", dev, dt)
        generator = torch.Generator(device=dev)
        generator.manual_seed(seed)
        return ar_speculative_decode(draft, target, case.schedule, n, generator=generator,
                                     gamma=gamma, prefill=prefill_value, bonus_group=bonus_group,
                                     residual=residual, max_trials=cap).sequences

    tag = f"{dev.type}_{str(dt).replace('torch.', '')}_g{gamma}_{residual}"
    sampler.__name__ = f"gpu_impl_ar_sampler_{tag}"
    sampler.__qualname__ = sampler.__name__
    sampler.__doc__ = (f"gpu_impl AR speculative decoder (device={dev}, dtype={dt}, "
                       f"gamma={gamma}, prefill={prefill_value}, bonus_group={bonus_group}, "
                       f"residual={residual!r}): sampler(ar_case, n, seed) -> (n, L, d) tensor.")
    return sampler
