"""The statistical battery of cspd_ref (docs/battery.md).

Every check returns a ``CheckResult`` (statistic, p-value, n, what was compared, the null):

* ``ks``: exact one-sample KS (allowing the output's rounding), KS on projections against a
  mixture target, exact two-sample KS;
* ``directions``: the projection directions a case determines (axes, draft–target);
* ``rosenblatt``: uniformity and consecutive-column independence of Rosenblatt/PIT values;
* ``mmd``: the kernel two-sample test by betting (and a permutation MMD for exploratory use);
* ``counts``: acceptance count ~ Binomial(n, 1 - TV), residual trials ~ Geometric(TV);
* ``atoms``: repeated values beyond the output format's resolution;
* ``precision``: floating formats (float64 … bfloat16), their spacing and rounding;
* ``fwer``: Holm / Bonferroni family-wise control;
* ``planning``: sample sizes and detectable effects (DKW, exact binomial);
* ``result``, ``details``: the ``CheckResult`` every check returns and its typed details;
* ``arguments``: the argument checks these functions share.

Conventions: a random generator is keyword-only (``rng=``); a function that takes a draft and a
target takes the draft first.

Every check's p-value is exact, a bound, or valid by construction at every level (the argument is
in its docstring), and every ``CheckResult`` reports its floor ``min_pvalue``.
"""

from cspd_ref.stats.atoms import atom_check
from cspd_ref.stats.counts import acceptance_binomial_test, geometric_trials_test
from cspd_ref.stats.fwer import bonferroni, familywise_reject, holm
from cspd_ref.stats.ks import (
    ks_one_sample,
    ks_projections,
    ks_two_sample,
    ks_two_sample_projections,
    random_unit_directions,
)
from cspd_ref.stats.mmd import mmd_betting_test, mmd_permutation_test
from cspd_ref.stats.planning import (
    binomial_detectable_deviation,
    dkw_detectable_distance,
    dkw_sample_size,
    ks2_detectable_distance,
    ks_detectable_distance,
    ks_sample_size,
)
from cspd_ref.stats.result import CheckResult
from cspd_ref.stats.rosenblatt import pit_independence, pit_uniformity

__all__ = [
    "CheckResult",
    "acceptance_binomial_test",
    "atom_check",
    "binomial_detectable_deviation",
    "bonferroni",
    "dkw_detectable_distance",
    "dkw_sample_size",
    "familywise_reject",
    "geometric_trials_test",
    "holm",
    "ks2_detectable_distance",
    "ks_detectable_distance",
    "ks_one_sample",
    "ks_projections",
    "ks_sample_size",
    "ks_two_sample",
    "ks_two_sample_projections",
    "mmd_betting_test",
    "mmd_permutation_test",
    "pit_independence",
    "pit_uniformity",
    "random_unit_directions",
]
