"""One public surface: ``gpu_impl`` mirrors ``cspd_ref`` name for name (issue 11).

Twin modules carry the same public names in the same order, with the same parameters (tensors
instead of arrays, ``generator`` instead of ``rng``, plus device/dtype keywords); the
exception of the residual cap is one class; the adapters return the same kind of result; and
no private module-level name is imported across a module boundary.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import cspd_ref
import gpu_impl
from cspd_ref.cases import demo_case, equal_scale_gaussian_case
from cspd_ref.samplers import token_sampler

ROOT = Path(__file__).resolve().parents[1]
TWINS = [("cspd_ref.speculative", "gpu_impl.speculative"),
         ("cspd_ref.residual", "gpu_impl.residual"),
         ("cspd_ref.ar_steps", "gpu_impl.ar_steps"),
         ("cspd_ref.samplers", "gpu_impl.samplers"),
         ("cspd_ref.ar_model", "gpu_impl.ar_model")]
SAME_NAMES = TWINS[:3]
"""Twins whose public names are the same (the sampler adapters keep their fixed names; the AR
model modules name the schedule `GroupSchedule` / `GroupTable`, the same idea)."""

GPU_ONLY_KEYWORDS = {"device", "dtype", "doubling", "noise_per_proposal"}
RENAMED = {"generator": "rng"}


def module(name: str) -> ModuleType:
    return importlib.import_module(name)


def defined_public_names(mod: ModuleType) -> list[str]:
    """Public module-level names a module defines itself, in source order."""
    tree = ast.parse(Path(mod.__file__ or "").read_text())
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("_")]


@pytest.mark.parametrize(("ref_name", "gpu_name"), TWINS)
def test_twin_modules_have_the_same_file_name(ref_name: str, gpu_name: str) -> None:
    assert Path(module(ref_name).__file__ or "").name == Path(module(gpu_name).__file__ or "").name


@pytest.mark.parametrize(("ref_name", "gpu_name"), SAME_NAMES)
def test_twins_list_the_same_public_names_in_the_same_order(ref_name: str,
                                                            gpu_name: str) -> None:
    ref, gpu = module(ref_name), module(gpu_name)
    assert ref.__all__ == gpu.__all__
    for mod in (ref, gpu):
        defined = defined_public_names(mod)
        # __all__ lists the module's own definitions in source order (then its re-exports).
        assert [n for n in mod.__all__ if n in defined] == defined, mod.__name__
        for name in mod.__all__:
            assert hasattr(mod, name), f"{mod.__name__}.{name}"


@pytest.mark.parametrize(("ref_name", "gpu_name"), SAME_NAMES)
def test_twin_functions_take_the_same_parameters(ref_name: str, gpu_name: str) -> None:
    """Functions, and the constructors of twin classes (``generator`` for ``rng``, keyword-only
    in both but in the fixed ``speculative_sample``, where it is positional in both)."""
    ref, gpu = module(ref_name), module(gpu_name)
    for name in ref.__all__:
        a, b = getattr(ref, name), getattr(gpu, name)
        if a is b or not ((inspect.isfunction(a) and inspect.isfunction(b))
                          or (inspect.isclass(a) and inspect.isclass(b))):
            continue
        pa = list(inspect.signature(a).parameters.values())
        pb = [p for p in inspect.signature(b).parameters.values()
              if p.name not in GPU_ONLY_KEYWORDS]
        assert [(RENAMED.get(p.name, p.name), p.kind) for p in pb] == \
            [(p.name, p.kind) for p in pa], name


def test_verify_draft_from_noise_is_the_same_step_in_both() -> None:
    """Same call, same decisions and values (float64, explicit noise)."""
    case = demo_case()
    rng = np.random.default_rng(7)
    n, m = 300, 64
    u_c, z, u = rng.random(n), rng.standard_normal((n, case.dim)), rng.random(n)
    arrays = (rng.random((n, m)), rng.standard_normal((n, m, case.dim)), rng.random((n, m)))
    x = case.draft.sample_from_noise(u_c, z)
    ref = cspd_ref.speculative.verify_draft_from_noise(
        case.draft, case.target, x, u, cspd_ref.speculative.ResidualNoiseArrays(*arrays),
        method="batched")
    q = gpu_impl.from_reference(case.draft, "cpu", torch.float64)
    p = gpu_impl.from_reference(case.target, "cpu", torch.float64)
    got = gpu_impl.speculative.verify_draft_from_noise(
        q, p, torch.as_tensor(x), torch.as_tensor(u), gpu_impl.ResidualNoiseArrays(*arrays),
        method="batched")
    assert not ref.accepted.all()
    np.testing.assert_array_equal(got.accepted.numpy(), ref.accepted)
    np.testing.assert_array_equal(got.trials.numpy(), ref.trials)
    np.testing.assert_allclose(got.samples.numpy(), ref.samples, rtol=1e-12, atol=1e-12)
    again = gpu_impl.speculative.resample_rejected_from_noise(
        q, p, torch.as_tensor(x), got.accepted, gpu_impl.ResidualNoiseArrays(*arrays),
        method="batched")
    assert torch.equal(again.samples, got.samples) and torch.equal(again.trials, got.trials)


def test_one_budget_exception_in_both_packages() -> None:
    assert gpu_impl.ResidualBudgetExceeded is cspd_ref.ResidualBudgetExceeded
    assert gpu_impl.residual.ResidualBudgetExceeded is cspd_ref.residual.ResidualBudgetExceeded
    q = cspd_ref.GaussianMixture([1.0], [[0.0]], [[1.0]])
    p = cspd_ref.GaussianMixture([1.0], [[1e-3]], [[1.0 + 1e-3]])
    for sample in (lambda: cspd_ref.speculative_sample(q, p, 20000, np.random.default_rng(0),
                                                       residual="batched", max_trials=2),
                   lambda: gpu_impl.speculative_sample(
                       gpu_impl.from_reference(q, "cpu", torch.float64),
                       gpu_impl.from_reference(p, "cpu", torch.float64), 20000,
                       torch.Generator().manual_seed(0), residual="batched", max_trials=2)):
        with pytest.raises(cspd_ref.ResidualBudgetExceeded) as info:
            sample()
        rows = info.value.unfinished_rows
        assert isinstance(rows, np.ndarray) and rows.dtype == np.int64 and rows.size > 0
        assert info.value.max_trials == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_as_sampler_returns_a_speculative_result_like_token_sampler(dtype: torch.dtype) -> None:
    case = equal_scale_gaussian_case(2, 1.5)
    ref = token_sampler("batched")(case, 200, 3)
    out = gpu_impl.as_sampler(dtype=dtype, residual="batched")(case, 200, 3)
    assert isinstance(out, gpu_impl.SpeculativeResult)
    assert type(ref).__name__ == type(out).__name__ == "SpeculativeResult"
    assert out.samples.dtype == dtype and tuple(out.samples.shape) == ref.samples.shape
    assert out.accepted.dtype == torch.bool and tuple(out.accepted.shape) == (200,)
    assert out.trials.dtype == torch.int64 and tuple(out.trials.shape) == (200,)
    assert bool((out.trials[out.accepted] == 0).all())
    assert bool((out.trials[~out.accepted] >= 1).all())
    # Rounded from the float32 computation, exactly as before the adapter returned counts.
    if dtype == torch.bfloat16:
        draft = gpu_impl.from_reference(case.draft, "cpu", torch.float32)
        target = gpu_impl.from_reference(case.target, "cpu", torch.float32)
        full = gpu_impl.speculative_sample(draft, target, 200, torch.Generator().manual_seed(3),
                                           residual="batched")
        assert torch.equal(out.samples, full.samples.to(dtype))
        assert torch.equal(out.accepted, full.accepted) and torch.equal(out.trials, full.trials)


@pytest.mark.parametrize("name", [name for pair in TWINS for name in pair])
def test_docstring_examples_of_the_twins_run(name: str) -> None:
    result = doctest.testmod(module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


OWN_FILES = ["cspd_ref/speculative.py", "cspd_ref/residual.py", "cspd_ref/samplers.py",
             "gpu_impl/speculative.py", "gpu_impl/residual.py", "gpu_impl/samplers.py",
             "cspd_ref/ar.py", "gpu_impl/ar.py", "cspd_ref/ar_steps.py", "gpu_impl/ar_steps.py",
             "cspd_ref/__init__.py", "gpu_impl/__init__.py"]


@pytest.mark.parametrize("path", OWN_FILES)
def test_no_private_name_is_imported_across_modules(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path} imports {private} from {node.module}"
