"""The result object every check of the statistical battery returns (docs/battery.md).

Modelled on ``scipy.stats`` results: a statistic, a p-value, the sample size, and two
human-readable strings saying what was compared and what the null hypothesis was, so that a
report can be written from the result alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one statistical check.

    Attributes:
        name: short identifier, e.g. ``"ks_projection[3]"``.
        statistic: the test statistic (its meaning is given by the producing function).
        pvalue: p-value in [0, 1]; small values are evidence against ``null``.
        n: sample size the check used.
        compared: what was compared with what, human-readable.
        null: the null hypothesis, one sentence.
        min_pvalue: the smallest p-value this check could have returned at this ``n`` (its
            floor): a check used at a level below its floor can never reject (docs/battery.md §3).
        details: extra numbers (never needed to interpret ``pvalue``); excluded from hashing.
    """

    name: str
    statistic: float
    pvalue: float
    n: int
    compared: str
    null: str
    min_pvalue: float
    details: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not (0.0 <= self.pvalue <= 1.0) or math.isnan(self.pvalue):
            raise ValueError(f"pvalue: must lie in [0, 1], got {self.pvalue}")
        if not (0.0 <= self.min_pvalue <= self.pvalue) or math.isnan(self.min_pvalue):
            raise ValueError(f"min_pvalue: must lie in [0, pvalue], got {self.min_pvalue}")

    @property
    def family(self) -> str:
        """The check's family: its name without a ``[...]`` index (``"ks_projection"``)."""
        return self.name.split("[", 1)[0]

    def can_reject(self, alpha: float) -> bool:
        """True when this check's floor lies below ``alpha`` (it is alive at that level)."""
        return self.min_pvalue < alpha

    def rejects(self, alpha: float) -> bool:
        """True when ``pvalue <= alpha`` (the null is rejected at level ``alpha``)."""
        return self.pvalue <= alpha
