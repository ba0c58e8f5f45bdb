"""Device selection shared by the test suites and the GPU check (``CSPD_TEST_DEVICE``)."""

from __future__ import annotations

import os

import pytest
import torch

DEVICE_VARIABLE = "CSPD_TEST_DEVICE"


def device_under_test() -> torch.device:
    """``CSPD_TEST_DEVICE`` (default ``cpu``); skip the calling module when CUDA is asked for but
    absent."""
    name = os.environ.get(DEVICE_VARIABLE, "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CSPD_TEST_DEVICE=cuda but CUDA is not available", allow_module_level=True)
    return torch.device(name)
