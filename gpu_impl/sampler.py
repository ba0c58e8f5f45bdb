"""``as_sampler``: the SPEC §5 sampler contract backed by the PyTorch implementation.

``gpu_impl.as_sampler(device=..., dtype=..., residual=...)`` returns a callable
``sampler(case, n, seed) -> torch.Tensor (n, d)`` that converts ``case.draft`` and
``case.target`` (``cspd_ref.GaussianMixture``, float64 NumPy parameters) to ``dtype`` on
``device``, seeds a ``torch.Generator`` on that device with ``seed`` and returns
``gpu_impl.speculative_sample(...).samples``: samples whose law is exactly ``case.target`` (up to
the rounding of the parameters to ``dtype``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gpu_impl.distributions import from_reference
from gpu_impl.speculative import DEFAULT_MAX_TRIALS, RESIDUAL_METHODS, speculative_sample
from gpu_impl.validation import require_device, require_floating_dtype, require_int

Sampler = Callable[[Any, int, int], torch.Tensor]


def as_sampler(*, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
               residual: str = "auto", max_trials: int = DEFAULT_MAX_TRIALS) -> Sampler:
    """A sampler following the SPEC §5 contract, backed by ``gpu_impl.speculative_sample``.

    Args:
        device: where the sampling runs (``"cuda"`` for the GPU).
        dtype: floating dtype of the parameters and samples (16-bit dtypes compute the
            log-ratio in float32).
        residual: ``"auto" | "loop" | "batched" | "reflection"`` (SPEC §2).
        max_trials: safety cap on residual proposals per row (exceeding it raises).

    Returns:
        ``sampler(case, n, seed) -> torch.Tensor`` of shape ``(n, d)`` on ``device``.

    Raises:
        ValueError: (here) a bad ``device``, ``dtype`` or ``residual``; (from the sampler) a case
            without ``draft``/``target`` mixtures, a negative ``n`` or ``seed``.

    Example:
        >>> import cspd_ref.cases, gpu_impl
        >>> sampler = gpu_impl.as_sampler()
        >>> tuple(sampler(cspd_ref.cases.demo_case(), 100, seed=0).shape)
        (100, 2)
    """
    dev = require_device(device)
    dt = require_floating_dtype(dtype)
    if not isinstance(residual, str) or residual not in RESIDUAL_METHODS:
        raise ValueError(f"residual: expected one of {RESIDUAL_METHODS}, got {residual!r}")
    cap = require_int(max_trials, "max_trials", minimum=1)

    def sampler(case: Any, n: int, seed: int) -> torch.Tensor:
        for name in ("draft", "target"):
            if not hasattr(case, name):
                raise ValueError(f"case: expected a cspd_ref.Case with draft and target, got "
                                 f"{type(case).__name__}")
        n = require_int(n, "n")
        seed = require_int(seed, "seed")
        draft = from_reference(case.draft, dev, dt)
        target = from_reference(case.target, dev, dt)
        generator = torch.Generator(device=dev)
        generator.manual_seed(seed)
        return speculative_sample(draft, target, n, generator, residual=residual,
                                  max_trials=cap).samples

    sampler.__name__ = f"gpu_impl_sampler_{dev.type}_{str(dt).replace('torch.', '')}_{residual}"
    sampler.__qualname__ = sampler.__name__
    sampler.__doc__ = (f"gpu_impl speculative sampler (device={dev}, dtype={dt}, "
                       f"residual={residual!r}): sampler(case, n, seed) -> (n, d) tensor.")
    return sampler
