"""The shared validators (cspd_ref.validation, gpu_impl.validation) and the twin modules of the
two packages (docs/contract.md §4): one check per rule, same names in both packages, messages
that start with the argument's name."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cspd_ref
import cspd_ref.validation as ref_validation
import gpu_impl
import gpu_impl.validation as gpu_validation

ROOT = Path(__file__).resolve().parent.parent

#: Twin modules and the names only one package defines (array types, torch-only helpers).
TWINS: dict[str, tuple[set[str], set[str]]] = {
    "validation": ({"BoolArray", "FloatArray", "IntArray", "as_float64"},
                   {"as_tensor", "LOW_PRECISION_DTYPES", "compute_dtype", "same_device",
                    "require_floating_dtype", "require_device", "require_event_tensor"}),
    "distributions": (set(), {"VALIDATE_ARGS_DEFAULT", "from_reference"}),
    "diffusion": (set(), {"gaussian_log_ratio"}),
    "diffusion_sampling": (set(), {"LastSteps", "aligned_denoise", "joint_draft_pass",
                                   "joint_target_pass"}),
}


def defined_names(package: str, module: str) -> list[str]:
    """The public names of ``package.module``'s ``__all__``, in the order the module defines
    them (imports, i.e. re-exports, are left out)."""
    public = set(importlib.import_module(f"{package}.{module}").__all__)
    tree = ast.parse((ROOT / package / f"{module}.py").read_text())
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if n in public]


@pytest.mark.parametrize("module", sorted(TWINS))
def test_twin_modules_define_the_same_public_names_in_the_same_order(module: str) -> None:
    ref_only, gpu_only = TWINS[module]
    ref = defined_names("cspd_ref", module)
    gpu = defined_names("gpu_impl", module)
    ref_all = set(importlib.import_module(f"cspd_ref.{module}").__all__)
    gpu_all = set(importlib.import_module(f"gpu_impl.{module}").__all__)
    assert ref_all - ref_only == gpu_all - gpu_only
    assert [n for n in ref if n in gpu] == [n for n in gpu if n in ref]
    assert set(ref) - set(gpu) <= ref_only | {n for n in ref if n in gpu_all}  # re-exported
    assert set(gpu) - set(ref) <= gpu_only


def test_type_independent_validators_are_one_definition() -> None:
    for name in ("require_int", "require_finite_float", "require_closed_unit_interval",
                 "require_batch_shape"):
        assert getattr(gpu_validation, name) is getattr(ref_validation, name)


@pytest.mark.parametrize("shape,n", [((), 3), ((3,), 3), ((), None), ((5,), None)])
def test_require_batch_shape_accepts_scalar_or_one_per_row(shape: tuple[int, ...],
                                                           n: int | None) -> None:
    assert ref_validation.require_batch_shape(torch.Size(shape), "draft", n) == shape


def test_require_batch_shape_names_the_argument_and_the_rows() -> None:
    with pytest.raises(ValueError, match=r"^target: batch shape must be \(\) or \(3,\), got "
                                         r"\(4,\)"):
        ref_validation.require_batch_shape((4,), "target", 3)
    with pytest.raises(ValueError, match=r"^draft: batch shape must be \(\) or \(n,\), got "
                                         r"\(2, 2\)"):
        ref_validation.require_batch_shape(torch.Size((2, 2)), "draft")
    q = cspd_ref.GaussianMixture(np.ones((2, 2, 1)), np.zeros((2, 2, 1, 1)), np.ones((2, 2, 1, 1)))
    with pytest.raises(ValueError, match=r"^draft: batch shape must be"):
        cspd_ref.speculative_sample(q, q, 4, np.random.default_rng(0))
    g = gpu_impl.GaussianMixture(torch.ones(2, 1), torch.zeros(2, 1, 1), torch.ones(2, 1, 1))
    with pytest.raises(ValueError, match=r"^draft: batch shape must be \(\) or \(3,\), got \(2,\)"):
        gpu_impl.speculative_sample(g, g, 3, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("value", [0.5, 2, np.float32(1.5), np.int64(3), np.array(0.25),
                                   torch.tensor(-1.0)])
def test_require_finite_float_accepts_real_scalars(value: Any) -> None:
    assert ref_validation.require_finite_float(value, "x") == float(value)


@pytest.mark.parametrize("value,message", [
    (True, "expected a real number, got bool"), ("1.0", "expected a real number, got str"),
    (1 + 2j, "expected a real number, got complex"), (np.array([1.0]), "expected a real number"),
    (float("nan"), "must be finite"), (np.inf, "must be finite"),
    (torch.tensor(True), "expected a real number, got bool")])
def test_require_finite_float_refuses_the_rest(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^coupling: {message}"):
        ref_validation.require_finite_float(value, "coupling")


def test_interval_checks_say_their_interval() -> None:
    assert ref_validation.require_closed_unit_interval(0, "prefill") == 0.0
    assert ref_validation.require_closed_unit_interval(1.0, "prefill") == 1.0
    for bad in (-1e-12, 1.0 + 1e-12, float("nan")):
        with pytest.raises(ValueError, match=r"^prefill: must"):
            ref_validation.require_closed_unit_interval(bad, "prefill")
    ok = np.array([0.0, 0.5, np.nextafter(1.0, 0.0)])
    assert ref_validation.require_half_open_unit_interval(ok, "u") is ok
    t = torch.tensor(ok)
    assert gpu_validation.require_half_open_unit_interval(t, "u") is t
    for bad in (np.array([1.0]), np.array([-1e-300])):
        with pytest.raises(ValueError, match=r"^u: uniforms must lie in \[0, 1\)"):
            ref_validation.require_half_open_unit_interval(bad, "u")
        with pytest.raises(ValueError, match=r"^u: uniforms must lie in \[0, 1\)"):
            gpu_validation.require_half_open_unit_interval(torch.tensor(bad), "u")


def test_gpu_mixture_declares_no_torch_constraints_and_names_the_argument() -> None:
    assert gpu_impl.GaussianMixture.arg_constraints == {}
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(True)
    try:
        with pytest.raises(ValueError, match="^weights: must sum to 1"):
            gpu_impl.GaussianMixture([0.5, 0.6], [[0.0], [1.0]], [[1.0], [1.0]])
        with pytest.raises(ValueError, match="^scales: must be strictly positive"):
            gpu_impl.GaussianMixture([1.0], [[0.0]], [[0.0]])
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)
