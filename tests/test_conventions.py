"""One calling convention across ``cspd_ref`` and ``gpu_impl`` (issue 11).

* **Randomness.** A function, method or constructor that draws takes its generator as the
  keyword-only ``rng`` (a ``numpy.random.Generator``) in ``cspd_ref`` and ``generator`` (a
  ``torch.Generator``) in ``gpu_impl``. The one exception is ``speculative_sample(draft, target,
  n, rng, ...)``, whose positional generator is fixed by users' scripts, and its ``gpu_impl`` twin
  (same positional shape).
* **Draft before target.** No signature names a target-side parameter before its draft-side
  counterpart (``target_x`` / ``draft_x``, ``x_p`` / ``x_q`` with ``p`` the target and ``q`` the
  draft). Keyword-only parameters are exempt: their order is not part of a call (``ARNoise``
  declares its fields in the documented draw order and takes them by keyword only).

The walk covers every public module of both packages (``inspect``): public functions, and the
public methods, class methods, static methods and ``__init__`` of public classes.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import cspd_ref
import gpu_impl

PACKAGES = (cspd_ref, gpu_impl)
GENERATOR_NAMES = {"cspd_ref": "rng", "gpu_impl": "generator"}
POSITIONAL_GENERATOR_EXCEPTIONS = {"cspd_ref.speculative.speculative_sample": 3,
                                   "gpu_impl.speculative.speculative_sample": 3}
"""Qualified name -> the position of its generator (the fixed public ``speculative_sample``)."""

GENERATOR_TYPES = {"np.random.Generator", "numpy.random.Generator", "torch.Generator"}
"""Annotations of a generator parameter (the packages annotate with these spellings)."""

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
SIDE_SWAP = {"target": "draft", "p": "q"}
"""Name tokens of the target side and their draft-side counterparts."""


def public_modules(package: ModuleType) -> Iterator[ModuleType]:
    yield package
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


def public_callables(mod: ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    """``(qualified name, function)`` of what ``mod`` defines publicly."""
    for name, obj in vars(mod).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{mod.__name__}.{name}", obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__", "__call__"):
                    continue
                if isinstance(member, classmethod | staticmethod):
                    member = member.__func__
                if inspect.isfunction(member):
                    yield f"{mod.__name__}.{name}.{attr}", member


def all_callables() -> list[tuple[str, Callable[..., Any]]]:
    seen: set[int] = set()
    out = []
    for package in PACKAGES:
        for mod in public_modules(package):
            for qualname, func in public_callables(mod):
                if id(func) not in seen:
                    seen.add(id(func))
                    out.append((qualname, func))
    return out


def parameters(func: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(func).parameters.values() if p.name not in ("self", "cls")]


def generator_violations(qualname: str, params: list[inspect.Parameter]) -> list[str]:
    """Why ``params`` break the randomness rule (empty if they keep it)."""
    package = qualname.split(".")[0]
    out = []
    for i, p in enumerate(params):
        annotation = str(p.annotation).removesuffix(" | None")
        if p.name in ("rng", "generator"):
            if p.name != GENERATOR_NAMES[package]:
                out.append(f"{qualname}: {package} names its generator "
                           f"{GENERATOR_NAMES[package]!r}, not {p.name!r}")
            if p.kind is not inspect.Parameter.KEYWORD_ONLY and \
                    POSITIONAL_GENERATOR_EXCEPTIONS.get(qualname) != i:
                out.append(f"{qualname}: {p.name!r} must be keyword-only")
        elif annotation in GENERATOR_TYPES:
            out.append(f"{qualname}: the generator parameter {p.name!r} must be named "
                       f"{GENERATOR_NAMES[package]!r}")
    return out


def counterpart(name: str) -> str | None:
    """The draft-side name of a target-side parameter name (``None`` if not target-side)."""
    tokens = name.split("_")
    swapped = [SIDE_SWAP.get(t, t) for t in tokens]
    return "_".join(swapped) if swapped != tokens else None


def order_violations(qualname: str, params: list[inspect.Parameter]) -> list[str]:
    """Target-side positional parameters named before their draft-side counterparts."""
    names = [p.name for p in params if p.kind in POSITIONAL]
    out = []
    for i, name in enumerate(names):
        other = counterpart(name)
        if other is not None and other in names[i + 1:]:
            out.append(f"{qualname}: {name!r} comes before its draft-side {other!r}")
    return out


CALLABLES = all_callables()


def test_the_walk_sees_both_packages() -> None:
    names = {q for q, _ in CALLABLES}
    for expected in ("cspd_ref.distributions.GaussianMixture.sample",
                     "cspd_ref.residual.ResidualNoiseGenerator.__init__",
                     "cspd_ref.ar_model.MixtureARModel.random",
                     "cspd_ref.vectors.kind.f32_uniforms",
                     "gpu_impl.distributions.GaussianMixture.sample",
                     "gpu_impl.diffusion.gaussian_log_ratio",
                     *POSITIONAL_GENERATOR_EXCEPTIONS):
        assert expected in names
    assert len(CALLABLES) > 300


def test_generators_are_keyword_only() -> None:
    problems = [msg for q, f in CALLABLES for msg in generator_violations(q, parameters(f))]
    assert not problems, "\n".join(problems)


def test_the_fixed_speculative_sample_keeps_its_positional_generator() -> None:
    for qualname, position in POSITIONAL_GENERATOR_EXCEPTIONS.items():
        module_name, name = qualname.rsplit(".", 1)
        params = parameters(getattr(importlib.import_module(module_name), name))
        assert [p.name for p in params[:position]] == ["draft", "target", "n"]
        assert params[position].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert cspd_ref.speculative_sample is cspd_ref.speculative.speculative_sample
    assert gpu_impl.speculative_sample is gpu_impl.speculative.speculative_sample


def test_draft_comes_before_target() -> None:
    problems = [msg for q, f in CALLABLES for msg in order_violations(q, parameters(f))]
    assert not problems, "\n".join(problems)


def _bad_rng(n: int, rng: Any) -> None: ...


def _bad_generator(n: int, *, generator: Any) -> None: ...


def _bad_name(n: int, *, seed_source: np.random.Generator) -> None: ...


def _target_first(x: Any, mean_p: Any, scale_p: Any, mean_q: Any, scale_q: Any) -> None: ...


def _target_chain_first(target_chain: Any, draft_chain: Any) -> None: ...


def _keyword_records(*, target_normals: Any, draft_normals: Any) -> None: ...



@pytest.mark.parametrize(("qualname", "func", "expected"), [
    ("cspd_ref.x.f", _bad_rng, "keyword-only"),
    ("cspd_ref.x.f", _bad_generator, "names its generator 'rng'"),
    ("cspd_ref.x.f", _bad_name, "must be named 'rng'"),
])
def test_the_generator_rule_catches(qualname: str, func: Callable[..., Any],
                                    expected: str) -> None:
    problems = generator_violations(qualname, parameters(func))
    assert problems and expected in problems[0]


def test_the_order_rule_catches_target_first_pairs() -> None:
    assert len(order_violations("f", parameters(_target_first))) == 2
    assert order_violations("f", parameters(_target_chain_first))
    assert not order_violations("f", parameters(_keyword_records))
    assert counterpart("target") == "draft" and counterpart("log_p") == "log_q"
    assert counterpart("draft") is None and counterpart("prefill") is None
