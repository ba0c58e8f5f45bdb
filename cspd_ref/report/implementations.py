"""The implementations ``cspd report`` judges, as samplers that accept every built-in case kind.

``implementation_sampler("ref")`` dispatches on the case type to the float64 reference
(``cspd_ref.samplers``: token sampler with its accept mask and trial counts, aligned-trajectory
diffusion sampler, AR speculative decoding); ``implementation_sampler("gpu", device, dtype)``
does the same with ``gpu_impl`` (``as_sampler``: token samples with their accept mask and trial
counts, ``aligned_speculative_sample`` on linear chains, ``as_ar_sampler``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cspd_ref.cases import ARCase, Case, DiffusionCase
from cspd_ref.diffusion import LinearGaussianChain

Sampler = Callable[[Any, int, int], Any]
IMPLEMENTATIONS = ("gpu", "ref")


def reference_sampler() -> Sampler:
    """The float64 reference for token, diffusion and AR cases."""
    from cspd_ref.samplers import ar_sampler, diffusion_sampler, token_sampler

    token, diffusion, ar = token_sampler(), diffusion_sampler("aligned"), ar_sampler()

    def sample(case: Any, n: int, seed: int) -> Any:
        if isinstance(case, ARCase):
            return ar(case, n, seed)
        if isinstance(case, DiffusionCase):
            return diffusion(case, n, seed)
        return token(case, n, seed)

    sample.__name__ = "cspd_ref"
    return sample


def gpu_sampler(device: str = "cpu", dtype: str = "float32") -> Sampler:
    """``gpu_impl`` on ``device`` in ``dtype`` for token, linear-chain diffusion and AR cases.

    Raises:
        ValueError: an unknown dtype, a device torch does not have, or (when called) a
            diffusion case whose chains are not ``LinearGaussianChain``\\ s.
    """
    import torch

    import gpu_impl

    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in dtypes:
        raise ValueError(f"dtype: expected one of {sorted(dtypes)}, got {dtype!r}")
    dt = dtypes[dtype]
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for but torch sees no CUDA device")
    token = gpu_impl.as_sampler(device=dev, dtype=dt)
    ar = gpu_impl.as_ar_sampler(device=dev, dtype=dt)

    def chain(reference: Any) -> Any:
        if not isinstance(reference, LinearGaussianChain):
            raise ValueError("case: gpu_impl's report sampler takes linear Gaussian chains only")
        return gpu_impl.LinearGaussianChain(reference.coefficients, reference.offsets,
                                            reference.step_scales, reference.temperature,
                                            device=dev, dtype=dt)

    def sample(case: Any, n: int, seed: int) -> Any:
        if isinstance(case, ARCase):
            return ar(case, n, seed)
        if isinstance(case, DiffusionCase):
            generator = torch.Generator(device=dev)
            generator.manual_seed(seed)
            return gpu_impl.aligned_speculative_sample(chain(case.draft_chain),
                                                       chain(case.target_chain), n,
                                                       generator=generator).samples
        if not isinstance(case, Case):
            raise ValueError(f"case: unsupported case type {type(case).__name__}")
        return token(case, n, seed)

    sample.__name__ = f"gpu_impl[{dev.type},{dtype}]"
    return sample


def implementation_sampler(impl: str, device: str = "cpu", dtype: str = "float32") -> Sampler:
    """``reference_sampler()`` for ``"ref"``, ``gpu_sampler(device, dtype)`` for ``"gpu"``.

    Raises:
        ValueError: naming ``impl`` for another name.
    """
    if impl == "ref":
        return reference_sampler()
    if impl == "gpu":
        return gpu_sampler(device, dtype)
    raise ValueError(f"impl: expected one of {IMPLEMENTATIONS}, got {impl!r}")
