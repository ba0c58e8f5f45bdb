"""Resolve ``MODULE:FUNCTION`` and ``path/to/file.py:FUNCTION`` specs to callables.

The command line (``cspd verify``, ``cspd vectors check``) takes the implementation under test
as a text spec:

* ``package.module:function`` imports the module the way ``python -m`` does: the current
  working directory is importable, so a test helper next to the user's code is found without
  installing it;
* ``path/to/file.py:function`` loads that file as a module (its folder goes first on
  ``sys.path`` while it is imported, so its sibling modules import too);
* ``...:factory()`` calls a zero-argument factory and uses what it returns;
* ``...:Class.attribute`` walks attributes.

Every failure raises ``LoadError`` with a one-line message that names the spec.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


class LoadError(ValueError):
    """A ``MODULE:FUNCTION`` spec could not be resolved to a callable."""


def _import_module(module_part: str, spec: str) -> ModuleType:
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise LoadError(f"{spec}: no such file {str(path)!r}")
        name = f"cspd_loaded_{path.stem}_{abs(hash(str(path.resolve())))}"
        file_spec = importlib.util.spec_from_file_location(name, path)
        if file_spec is None or file_spec.loader is None:
            raise LoadError(f"{spec}: cannot load {str(path)!r} as a Python module")
        module = importlib.util.module_from_spec(file_spec)
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)
        sys.modules[name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise LoadError(f"{spec}: importing {str(path)!r} raised "
                            f"{type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.remove(folder)
        return module
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # what `python -m` does
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        raise LoadError(f"{spec}: cannot import {module_part!r} ({exc})") from exc
    except Exception as exc:
        raise LoadError(f"{spec}: importing {module_part!r} raised "
                        f"{type(exc).__name__}: {exc}") from exc


def load_callable(spec: str) -> Callable[..., Any]:
    """The callable named by ``spec`` (see the module docstring for the forms).

    Raises:
        LoadError: the spec is malformed, the module cannot be imported (or raises while being
            imported), the attribute is missing, the factory raises, or the result is not
            callable.

    Examples:
        >>> load_callable("cspd_ref.samplers:token_sampler").__name__
        'token_sampler'
        >>> load_callable("cspd_ref.samplers:no_such")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cspd_ref.loading.LoadError: cspd_ref.samplers:no_such: module ... has no attribute ...
    """
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise LoadError(f"{spec}: expected MODULE:FUNCTION or path/to/file.py:FUNCTION")
    module_part, attr = spec.rsplit(":", 1)
    if not module_part or not attr:
        raise LoadError(f"{spec}: expected MODULE:FUNCTION or path/to/file.py:FUNCTION")
    call = attr.endswith("()")
    attr = attr.removesuffix("()")
    obj: Any = _import_module(module_part, spec)
    for part in attr.split("."):
        if not part.isidentifier() or not hasattr(obj, part):
            raise LoadError(f"{spec}: module {module_part!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if call:
        try:
            obj = obj()
        except Exception as exc:
            raise LoadError(f"{spec}: the factory raised {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise LoadError(f"{spec}: {type(obj).__name__} object is not callable")
    return obj
