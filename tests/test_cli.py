"""The ``cspd`` command line."""

from __future__ import annotations

import re

import pytest

from cspd_ref.cli import main


def test_demo_prints_acceptance_within_three_standard_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--n", "20000", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "within 3 SE" in out
    assert re.search(r"KS vs exact target\s+: statistic [0-9.]+, p-value [0-9.]+", out)
