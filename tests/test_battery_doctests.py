"""The battery's docstring examples run (so they stay true as the code changes)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cspd_ref.battery
import cspd_ref.stats

MODULES = sorted(
    [f"cspd_ref.stats.{m.name}" for m in pkgutil.iter_modules(cspd_ref.stats.__path__)]
    + [f"cspd_ref.battery.{m.name}" for m in pkgutil.iter_modules(cspd_ref.battery.__path__)]
    + ["cspd_ref.theory", "cspd_ref.verify"])


def test_every_module_of_the_battery_is_listed() -> None:
    for name in ("cspd_ref.stats.ks", "cspd_ref.stats.arguments", "cspd_ref.stats.details",
                 "cspd_ref.battery.plan", "cspd_ref.battery.output", "cspd_ref.battery.checks"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_has_an_example(name: str) -> None:
    """Every public function and class defined in the module has an ``Examples`` section."""
    module = importlib.import_module(name)
    missing = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or getattr(value, "__module__", None) != name:
            continue
        if not (callable(value) or isinstance(value, type)):
            continue
        if ">>>" not in (value.__doc__ or ""):
            missing.append(attr)
    assert not missing, f"{name}: no Examples in {missing}"
