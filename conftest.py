"""Root pytest configuration: applies to ``tests/``, ``proofs/``, ``property_tests/`` and
``examples/``.

* The cspd plugin (``cspd_ref/pytest_plugin.py``, installed with the package as a ``pytest11``
  entry point) adds up the levels of every statistical assertion about an exact sampler in the
  run — in every pytest-xdist worker — and fails the run when the sum exceeds the
  ``cspd_false_alarm_budget`` of ``pyproject.toml`` (``property_tests/budget.py`` explains the
  plan). Where the package is only on ``PYTHONPATH`` (not installed), run
  ``pytest -p cspd_ref.pytest_plugin``.
* ``pytester`` lets ``tests/test_budget_count.py`` run small pytest sessions of its own.
"""

pytest_plugins = ["pytester"]
