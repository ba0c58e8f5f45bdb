"""The result object every check of the statistical battery returns (docs/battery.md).

Modelled on ``scipy.stats`` results: a statistic, a p-value, the sample size, and two
human-readable strings saying what was compared and what the null hypothesis was, so that a
report can be written from the result alone. The extra numbers a check reports are typed
(``cspd_ref.stats.details``), and so is the direction a projection check tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cspd_ref.stats.details import CheckDetails


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
        details: extra numbers, typed per check (``KSDetails``, ``AcceptanceDetails``, ...;
            never needed to interpret ``pvalue``); excluded from comparison and hashing.
        direction: the direction ``a`` the samples were projected on (projection checks:
            ``ks_projections``, ``ks_two_sample_projections``), else None; excluded from
            comparison and hashing.

    Examples:
        >>> r = CheckResult(name="ks_axis[1]", statistic=0.01, pvalue=0.3, n=1000,
        ...                 compared="axis 1 vs its exact CDF", null="iid from the target",
        ...                 min_pvalue=0.0, direction=(0.0, 1.0))
        >>> r.family, r.rejects(0.05), r.details_dict()
        ('ks_axis', False, {'direction': [0.0, 1.0]})
    """

    name: str
    statistic: float
    pvalue: float
    n: int
    compared: str
    null: str
    min_pvalue: float
    details: CheckDetails = field(default_factory=CheckDetails, hash=False, compare=False)
    direction: tuple[float, ...] | None = field(default=None, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not (0.0 <= self.pvalue <= 1.0) or math.isnan(self.pvalue):
            raise ValueError(f"pvalue: must lie in [0, 1], got {self.pvalue}")
        if not (0.0 <= self.min_pvalue <= self.pvalue) or math.isnan(self.min_pvalue):
            raise ValueError(f"min_pvalue: must lie in [0, pvalue], got {self.min_pvalue}")

    @property
    def family(self) -> str:
        """The check's family: its name without a ``[...]`` index (``"ks_projection"``).

        Examples:
            >>> CheckResult("pit_independence[1]", 0.0, 1.0, 10, "", "", 0.0).family
            'pit_independence'
        """
        return self.name.split("[", 1)[0]

    def can_reject(self, alpha: float) -> bool:
        """True when this check's floor lies below ``alpha`` (it is alive at that level).

        Examples:
            >>> CheckResult("x", 0.0, 1.0, 10, "", "", min_pvalue=1e-3).can_reject(1e-4)
            False
        """
        return self.min_pvalue < alpha

    def rejects(self, alpha: float) -> bool:
        """True when ``pvalue <= alpha`` (the null is rejected at level ``alpha``).

        Examples:
            >>> CheckResult("x", 0.0, 1e-5, 10, "", "", min_pvalue=0.0).rejects(1e-4)
            True
        """
        return self.pvalue <= alpha

    def details_dict(self) -> dict[str, Any]:
        """The check's ``details`` object in ``report.json``: ``details.as_dict()``, then
        ``direction`` (as a list) when the check has one.

        Examples:
            >>> from cspd_ref.stats.details import TwoSampleKSDetails
            >>> CheckResult("ks2_axis[0]", 0.1, 0.5, 20, "", "", 0.0,
            ...             details=TwoSampleKSDetails(n_x=10, n_y=10, statistic_location=0.0,
            ...                                        method="exact"),
            ...             direction=(1.0, 0.0)).details_dict()["direction"]
            [1.0, 0.0]
        """
        out = self.details.as_dict()
        if self.direction is not None:
            out["direction"] = list(self.direction)
        return out
