"""Root pytest configuration: applies to ``tests/``, ``proofs/`` and ``property_tests/``.

* ``property_tests.budget_plugin`` counts every exact-sampler statistical assertion of the run
  (in every pytest-xdist worker) and enforces the single false-alarm budget of
  ``property_tests/budget.py``: ``count x CALL_ALPHA <= GATE_ALPHA = 1e-4``.
* ``pytester`` lets ``tests/test_budget_count.py`` run small pytest sessions of its own.
"""

pytest_plugins = ["pytester", "property_tests.budget_plugin"]
