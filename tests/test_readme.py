"""The README shows what CI runs: the outside-user test file verbatim, and the test command of
``.ci/run``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OUTSIDE_USER_FILE = ROOT / "examples" / "outside_user" / "test_gate_my_sampler.py"


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_outside_user_test_file_is_shown_verbatim() -> None:
    """CI runs ``examples/outside_user/test_gate_my_sampler.py`` (a testpath); the README shows
    that exact file, so what a user copies is what CI checks."""
    assert OUTSIDE_USER_FILE.read_text(encoding="utf-8") in code_blocks(README, "python")


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" '
               "&& pytest")
    assert any(command in block for block in code_blocks(README, "bash"))
    for step in ("python3 -m venv .venv", ". .venv/bin/activate", 'pip install -e ".[test]"',
                 "pytest"):
        assert re.search(rf"^{re.escape(step)}$", ci, flags=re.M), step
