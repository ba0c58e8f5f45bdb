"""Helpers shared by the test suites and the GPU check: the device under test
(``CSPD_TEST_DEVICE``) and seeded, explicit initialisation of test networks."""

from __future__ import annotations

import math
import os

import torch

DEVICE_VARIABLE = "CSPD_TEST_DEVICE"


def device_under_test() -> torch.device:
    """``CSPD_TEST_DEVICE`` (default ``cpu``).

    Raises:
        RuntimeError: when a CUDA device is asked for but CUDA is not available — a run that
            asked for the GPU must not pass by skipping it.
    """
    name = os.environ.get(DEVICE_VARIABLE, "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"{DEVICE_VARIABLE}={name} but torch.cuda.is_available() is False; "
                           f"unset {DEVICE_VARIABLE} to test on the CPU")
    return torch.device(name)


def init_linear_layers_(module: torch.nn.Module, *,
                        generator: torch.Generator) -> torch.nn.Module:
    """Re-draw every ``nn.Linear`` weight and bias from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    (PyTorch's default law for ``Linear``) with an explicit generator, so test networks never
    depend on, or change, the global RNG."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                for param in (layer.weight, layer.bias):
                    if param is not None:
                        draw = torch.rand(param.shape, generator=generator, dtype=param.dtype)
                        param.copy_((2.0 * draw - 1.0) * bound)
    return module
