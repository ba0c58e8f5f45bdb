"""The JAX port (``cspd_jax.py``) checked two ways: sample by sample against the committed
conformance vectors (docs/vectors.md), and in law by the statistical battery.

JAX is a dependency of the project's ``test`` extra, so CI always runs this file; the
``importorskip`` only spares a user without JAX a collection error.

Budget: the two ``assert_equivalent`` calls add 2 x 1e-6 to the run's false-alarm bound
(``cspd_ref.testing``); their seed is ``CSPD_SEED`` (default 0).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

from cspd_ref.cases import demo_case, equal_scale_gaussian_case
from cspd_ref.testing import assert_equivalent
from cspd_ref.vectors import check_vectors, read_manifest
from cspd_ref.vectors.layout import load_role

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VECTORS = ROOT / "reports" / "vectors"
TOKEN_KINDS = ["token_loop", "token_batched", "token_reflection"]
SEED = int(os.environ.get("CSPD_SEED", "0"))

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
cspd_jax = importlib.import_module("cspd_jax")


def vector(name: str) -> tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]:
    [entry] = [v for v in read_manifest(VECTORS).vectors if v.name == name]
    return entry.kind, load_role(VECTORS, entry, "param"), load_role(VECTORS, entry, "noise")


def test_port_matches_every_token_vector() -> None:
    report = check_vectors(VECTORS, cspd_jax.replay, kinds=TOKEN_KINDS, label="cspd_jax")
    assert report.exit_code == 0, "\n".join(report.lines())
    assert len(report.outcomes) == 7
    assert all(len(o.arrays) == 5 and all(a.ok for a in o.arrays) for o in report.outcomes)


def test_command_line_check_of_the_port_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cspd_ref.vectors.cli", "check", str(VECTORS), "--impl",
         f"{HERE / 'cspd_jax.py'}:replay", "--kinds", ",".join(TOKEN_KINDS)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 vectors: 7 match, 0 mismatch, 0 undecided" in done.stdout


def test_diffusion_and_ar_kinds_are_not_implemented() -> None:
    kind, params, noise = vector("diffusion_joint_d1")
    assert cspd_jax.replay(kind, params, noise) is NotImplemented
    report = check_vectors(VECTORS, cspd_jax.replay, kinds=["diffusion_joint", "ar"])
    assert report.exit_code == 2
    assert "does not implement kind 'diffusion_joint'" in report.undecided_reason()


def test_loop_and_batched_residuals_agree_for_any_round_size() -> None:
    _, params, noise = vector("token_batched_d3_mixtures")
    draft = cspd_jax.mixture(params["draft_weights"], params["draft_means"],
                             params["draft_scales"])
    target = cspd_jax.mixture(params["target_weights"], params["target_means"],
                              params["target_scales"])
    stream = [noise[k] for k in ("residual_component_uniforms", "residual_normals",
                                 "residual_accept_uniforms")]
    pending = np.ones(stream[0].shape[0], dtype=bool)
    values, trials, waiting = cspd_jax.residual_loop(draft, target, pending, *stream)
    assert not np.asarray(waiting).any() and np.asarray(trials).max() > 3
    for slots in (1, 3, 4, 8):
        got = cspd_jax.residual_batched(draft, target, pending, *stream, slots=slots)
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(trials))
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(values))


def test_running_out_of_residual_proposals_raises() -> None:
    kind, params, noise = vector("token_loop_d2_mixtures")
    short = {k: (v[:, :1] if k.startswith("residual_") else v) for k, v in noise.items()}
    with pytest.raises(cspd_jax.ResidualExhausted, match="without an accepted residual"):
        cspd_jax.replay(kind, params, short)


def test_sampler_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="^n: "):
        cspd_jax.sampler(demo_case(), -1, 0)
    with pytest.raises(ValueError, match="^seed: "):
        cspd_jax.sampler(demo_case(), 10, 1.5)


@pytest.mark.parametrize("case", [demo_case(), equal_scale_gaussian_case(4, 1.0)],
                         ids=lambda c: c.name)
def test_port_passes_the_battery(case: object) -> None:
    verdict = assert_equivalent(cspd_jax.sampler, case, seed=SEED, alpha=1e-6, tier="quick")
    assert verdict.n > 10_000
