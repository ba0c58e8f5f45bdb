"""The false-alarm budget of a whole ``pytest`` run, and its seeds (docs/battery.md §6).

**One budget for the run.** ``pytest`` (the README's command: testpaths ``tests/``, ``proofs/``,
``property_tests/``, any subset of them, with or without ``pytest-xdist``) may flag an exact
sampler with probability at most ``GATE_ALPHA = 1e-4``. Every statistical assertion about an
exact sampler — a ``verify`` call of the gate (``property_tests/gate.py``), the exact pass-count
test of ``property_tests/test_ar_decoding.py``, each statistical test function of
``tests/test_gpu_distribution.py`` — is ONE unit of the budget:

* it is made at level ``CALL_ALPHA = GATE_ALPHA / PLANNED_EXACT_CALLS = 1e-4 / 200 = 5e-7``:
  if the sampler is exact, ``P(this assertion fails) <= CALL_ALPHA``. Inside a unit the level is
  kept by Holm's procedure (``verify``) or Bonferroni (``test_gpu_distribution``: ``m`` p-values
  each compared with ``CALL_ALPHA / m``), both valid under any dependence between the checks,
  given p-values that are valid (super-uniform) under the null;
* it calls ``record_exact_call()`` once, before it draws its samples;
* across units the union (Bonferroni) bound gives, whatever the dependence between them,

      P(the run flags an exact sampler) <= sum over units of CALL_ALPHA
                                        = (count) * CALL_ALPHA
                                        <= PLANNED_EXACT_CALLS * CALL_ALPHA = GATE_ALPHA.

The arithmetic holds only while ``count <= PLANNED_EXACT_CALLS``. The cspd pytest plugin
(``cspd_ref/pytest_plugin.py``, installed with the package) adds up the levels of the
assertions the run really makes (``record_exact_call`` records ``CALL_ALPHA`` with
``cspd_ref.testing.record_statistical_assertion``, as ``cspd_ref.testing.assert_equivalent``
does for users), prints the count and the bound, and fails the run (exit status 1) if the bound
exceeds ``GATE_ALPHA`` — the ``cspd_false_alarm_budget`` set in ``pyproject.toml`` — then raise
``PLANNED_EXACT_CALLS``, which lowers ``CALL_ALPHA`` for every unit and keeps the total at
``GATE_ALPHA``. Counting is per process (``record_exact_call`` below); under ``pytest -n N``
each xdist worker sends its count to the controller, which sums them, so the total is the same
as in a single-process run. Today's ``pytest``: in ``property_tests/``, 134 quick-tier and
4 full-tier ``verify`` calls and 1 pass-count test; in ``tests/``, 7 units of
``test_gpu_distribution.py`` (5 float32/float64 test functions, 2 half-precision tests) and 4 of
``test_gpu_ar.py`` (3 ``verify`` calls and the exact pass-count test), 1 of
``test_ar_from_noise.py`` (the from-noise AR decoder), 1 of ``test_fused.py`` (the compiled
fused reflection sampler) and 1 of ``test_mar_toy.py`` (the MAR toy's two-sample battery): 153
units, 153 x 5e-7 = 7.65e-5.
``examples/`` and the ``cspd_ref.testing`` doctest add 9 assertions at 1e-6 of their own
(``cspd_ref.testing.assert_equivalent``: 6 in the outside-user test file, 2 in the JAX port, 1
in the doctest), so a whole run measured 162 assertions and a bound of 7.65e-5 + 9e-6 =
8.55e-5 <= 1e-4, with ``pytest`` and ``pytest -n 2`` alike (the plugin prints the exact figure
at the end of every run, since Hypothesis-driven tests may make a data-dependent number of calls).

Not units of the budget: power assertions ("this known-bad sampler is flagged", ``assert_flagged``
and the mutants), which use the same ``CALL_ALPHA`` — the level the gate applies to every
implementation — and can only fail when the gate lacks power, not by a false alarm. Tests with
fixed seeds that do not read ``CSPD_SEED`` (the calibration bands of ``tests/test_stats.py``,
the validity and power checks of ``tests/test_verify.py``, the Monte Carlo TV check of
``tests/test_speculative.py``) are deterministic: they pass or fail the same way on every run.

Seeds: every statistical seed derives from the single environment variable ``CSPD_SEED``
(default ``DEFAULT_SEED``) and the test's own label, so a run is reproducible and a new seed is
one variable: ``CSPD_SEED=7 pytest``. The seeds do not depend on which process runs a test, so
``pytest`` and ``pytest -n 2`` draw the same samples.
"""

from __future__ import annotations

import hashlib
import os

from cspd_ref.testing import record_statistical_assertion

GATE_ALPHA = 1e-4
PLANNED_EXACT_CALLS = 200
CALL_ALPHA = GATE_ALPHA / PLANNED_EXACT_CALLS
DEFAULT_SEED = 20241118
"""The paper's date (arXiv 2411.11925); any integer works."""

def cspd_seed() -> int:
    """The run's master seed: ``CSPD_SEED`` from the environment, else ``DEFAULT_SEED``."""
    raw = os.environ.get("CSPD_SEED", "")
    if raw == "":
        return DEFAULT_SEED
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"CSPD_SEED: expected an integer, got {raw!r}") from exc


def statistical_seed(*labels: object) -> int:
    """A 63-bit seed derived from ``CSPD_SEED`` and ``labels`` (test name, case repr, ...)."""
    text = "|".join([str(cspd_seed()), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def record_exact_call() -> None:
    """Count one exact-sampler statistical assertion (one unit of ``CALL_ALPHA``) in this
    process, in the ledger of ``cspd_ref.testing`` that the cspd pytest plugin adds up."""
    record_statistical_assertion(CALL_ALPHA)
