"""The battery's docstring examples run (so they stay true as the code changes)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["cspd_ref.stats.ks", "cspd_ref.stats.rosenblatt", "cspd_ref.stats.counts",
           "cspd_ref.stats.mmd", "cspd_ref.stats.planning", "cspd_ref.theory", "cspd_ref.verify"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
