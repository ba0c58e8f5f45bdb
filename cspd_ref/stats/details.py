"""Typed details of the battery's checks: the extra numbers a ``CheckResult`` carries.

Every check fills ``CheckResult.details`` with one of these frozen dataclasses (the base class
``CheckDetails`` when it has nothing to add). None of them is needed to interpret the p-value;
they are what a report prints next to it. ``as_dict()`` is the JSON form written in
``report.json`` (schema ``cspd-report/1``): the fields in declaration order, the optional
fields (declared with ``optional()``) left out when they are None.

Examples:
    >>> AcceptanceDetails(expected_rate=0.7, rate_interval=(0.7, 0.7), rate_at_max=0.7, z=0.0,
    ...                   tv_interval=(0.3, 0.3), miss_probability=0.0).as_dict()["rate_interval"]
    (0.7, 0.7)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

OMIT_IF_NONE = "omit_if_none"
"""Field metadata key: the field is left out of ``as_dict()`` when its value is None."""


def optional() -> Any:
    """A field that defaults to None and is left out of ``as_dict()`` when None.

    Examples:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True, kw_only=True)
        ... class Extra(CheckDetails):
        ...     a: int
        ...     b: int | None = optional()
        >>> Extra(a=1).as_dict(), Extra(a=1, b=2).as_dict()
        ({'a': 1}, {'a': 1, 'b': 2})
    """
    return field(default=None, metadata={OMIT_IF_NONE: True})


@dataclass(frozen=True, kw_only=True)
class CheckDetails:
    """Details of a check that reports nothing beyond its statistic and p-value (the base class).

    Examples:
        >>> CheckDetails().as_dict()
        {}
    """

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: ``{field: value}`` in declaration order, optional Nones left out.

        Examples:
            >>> KSDetails(d_plus=0.1, d_minus=0.2, statistic_location=0.5,
            ...           max_tolerance=0.0).as_dict()
            {'d_plus': 0.1, 'd_minus': 0.2, 'statistic_location': 0.5, 'max_tolerance': 0.0}
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get(OMIT_IF_NONE, False):
                continue
            out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class KSDetails(CheckDetails):
    """One-sample KS (``ks_one_sample``).

    Attributes:
        d_plus: ``max_i (i/n - F(hi_(i)))``, the upper one-sided statistic.
        d_minus: ``max_i (F(lo_(i)) - (i-1)/n)``, the lower one.
        statistic_location: the value at which the larger of the two is attained.
        max_tolerance: the largest rounding allowance of a value (0: the classical test).

    Examples:
        >>> KSDetails(d_plus=0.1, d_minus=0.2, statistic_location=0.5, max_tolerance=0.0).d_minus
        0.2
    """

    d_plus: float
    d_minus: float
    statistic_location: float
    max_tolerance: float


@dataclass(frozen=True, kw_only=True)
class PooledKSDetails(KSDetails):
    """KS of pooled PIT values (``pit_uniformity``): ``KSDetails`` plus the array's shape.

    Attributes:
        rows: rows of the PIT array (samples or sequences).
        columns: its columns (coordinates or positions).

    Examples:
        >>> PooledKSDetails(d_plus=0.0, d_minus=0.0, statistic_location=0.5, max_tolerance=0.0,
        ...                 rows=10, columns=3).columns
        3
    """

    rows: int
    columns: int


@dataclass(frozen=True, kw_only=True)
class TwoSampleKSDetails(CheckDetails):
    """Two-sample KS (``ks_two_sample``).

    Attributes:
        n_x, n_y: the two sample sizes.
        statistic_location: where ``|F_x - F_y|`` is largest.
        method: ``"exact"`` or ``"dkw_bound"`` (how the p-value was computed).

    Examples:
        >>> TwoSampleKSDetails(n_x=5, n_y=5, statistic_location=0.0, method="exact").method
        'exact'
    """

    n_x: int
    n_y: int
    statistic_location: float
    method: str


@dataclass(frozen=True, kw_only=True)
class AcceptanceDetails(CheckDetails):
    """Binomial test of the acceptance count (``acceptance_binomial_test``).

    Attributes:
        expected_rate: ``1 - TV`` at the reported TV value.
        rate_interval: ``(1 - tv_hi, 1 - tv_lo)``, the acceptance rates the null allows.
        rate_at_max: the rate of that interval at which the p-value is taken (closest to k/n).
        z: normal-approximation z-score of the count at ``expected_rate`` (for reports).
        tv_interval: ``(tv_lo, tv_hi)``, the guaranteed TV interval.
        miss_probability: probability that the interval misses the true TV (in the p-value).

    Examples:
        >>> AcceptanceDetails(expected_rate=0.7, rate_interval=(0.69, 0.71), rate_at_max=0.7,
        ...                   z=0.0, tv_interval=(0.29, 0.31), miss_probability=1e-6).z
        0.0
    """

    expected_rate: float
    rate_interval: tuple[float, float]
    rate_at_max: float
    z: float
    tv_interval: tuple[float, float]
    miss_probability: float


@dataclass(frozen=True, kw_only=True)
class TrialsDetails(CheckDetails):
    """Geometric test of the residual trial counts (``geometric_trials_test``).

    Attributes:
        tv_interval: ``(tv_lo, tv_hi)``, the guaranteed TV interval.
        mean_trials: the mean trial count of the rejected rows.
        miss_probability: probability that the interval misses the true TV (in the p-value).
        note: why the data are impossible under the null (TV = 0 or 1), else None.
        d_plus: the KS statistic's upper part at ``tv_hi`` (None with a ``note``).
        d_minus: its lower part at ``tv_lo`` (None with a ``note``).

    Examples:
        >>> TrialsDetails(tv_interval=(0.3, 0.3), mean_trials=3.2,
        ...               miss_probability=0.0).as_dict()
        {'tv_interval': (0.3, 0.3), 'mean_trials': 3.2, 'miss_probability': 0.0}
    """

    tv_interval: tuple[float, float]
    mean_trials: float
    miss_probability: float
    note: str | None = optional()
    d_plus: float | None = optional()
    d_minus: float | None = optional()


@dataclass(frozen=True, kw_only=True)
class AtomDetails(CheckDetails):
    """The atom check (``atom_check``).

    Attributes:
        dtype: the resolution the cells are measured at (the sampler's native format).
        n_distinct: distinct rows of the samples.
        density_source: ``"data"`` or ``"target and data"`` (what bounds the cell probability).
        max_multiplicity: the largest multiplicity of a row (1: no repeats).
        repeated_value: the row with that multiplicity (None when no row repeats).
        n_repeated_rows: rows that occur at least twice.
        most_significant_value: the repeated row with the smallest p-value (None: no repeats).
        most_significant_count: its multiplicity (None: no repeats).
        cell_probability: the bound on its rounding cell's probability (None: no repeats).
        log10_pvalue: ``log10`` of the p-value (kept when the p-value underflows to 0).

    Examples:
        >>> AtomDetails(dtype="float32", n_distinct=100, density_source="data",
        ...             max_multiplicity=1, repeated_value=None, n_repeated_rows=0,
        ...             log10_pvalue=0.0).as_dict()["repeated_value"] is None
        True
    """

    dtype: str
    n_distinct: int
    density_source: str
    max_multiplicity: int
    repeated_value: tuple[float, ...] | None
    n_repeated_rows: int
    most_significant_value: tuple[float, ...] | None = optional()
    most_significant_count: int | None = optional()
    cell_probability: float | None = optional()
    log10_pvalue: float


@dataclass(frozen=True, kw_only=True)
class IndependenceDetails(CheckDetails):
    """Consecutive-column independence of PIT values (``pit_independence``).

    Attributes:
        pairs: the column pairs ``(j, j + 1)`` tested.
        means: ``T_kl``, the mean Legendre product per degree pair ``"k,l"``.
        worst: the degree pair ``"k,l"`` with the smallest p-value.

    Examples:
        >>> IndependenceDetails(pairs=((0, 1),), means={"1,1": 0.01}, worst="1,1").worst
        '1,1'
    """

    pairs: tuple[tuple[int, int], ...]
    means: dict[str, float]
    worst: str


@dataclass(frozen=True, kw_only=True)
class MMDPermutationDetails(CheckDetails):
    """The permutation MMD test (``mmd_permutation_test``).

    Attributes:
        bandwidth: the Gaussian kernel's bandwidth ``h``.
        bandwidth_rule: ``"median"`` (the median heuristic) or ``"given"``.
        n_permutations: permutations drawn.
        n_x, n_y: the two sample sizes.
        n_exceed: permutations whose statistic reached the observed one.

    Examples:
        >>> MMDPermutationDetails(bandwidth=1.0, bandwidth_rule="given", n_permutations=99,
        ...                       n_x=50, n_y=50, n_exceed=3).n_exceed
        3
    """

    bandwidth: float
    bandwidth_rule: str
    n_permutations: int
    n_x: int
    n_y: int
    n_exceed: int


@dataclass(frozen=True, kw_only=True)
class MMDBettingDetails(CheckDetails):
    """The MMD test by betting (``mmd_betting_test``).

    Attributes:
        bandwidth: the Gaussian kernel's bandwidth ``h``.
        pairs: held-out pairs bet on.
        witness_points: training rows per sample for the witness.
        mean_payoff: the mean payoff of the bets.
        final_log_wealth: the log-wealth after the last bet.

    Examples:
        >>> MMDBettingDetails(bandwidth=1.0, pairs=100, witness_points=25, mean_payoff=0.0,
        ...                   final_log_wealth=0.0).pairs
        100
    """

    bandwidth: float
    pairs: int
    witness_points: int
    mean_payoff: float
    final_log_wealth: float
