"""The statistical battery of cspd_ref (SPEC §5).

Every check returns a ``CheckResult`` (statistic, p-value, n, what was compared, the null):

* ``ks``: exact one-sample KS, KS on random projections against a mixture target, two-sample KS;
* ``rosenblatt``: uniformity and lag-1 independence of Rosenblatt/PIT values;
* ``mmd``: Gaussian-kernel MMD² with a permutation null;
* ``counts``: acceptance count ~ Binomial(n, 1 - TV), residual trials ~ Geometric(TV);
* ``atoms``: repeated values beyond the dtype's resolution;
* ``fwer``: Holm / Bonferroni family-wise control;
* ``planning``: DKW and binomial sample-size planning.
"""

from cspd_ref.stats.atoms import atom_check
from cspd_ref.stats.counts import acceptance_binomial_test, geometric_trials_test
from cspd_ref.stats.fwer import bonferroni, familywise_reject, holm
from cspd_ref.stats.ks import (
    ks_one_sample,
    ks_projections,
    ks_two_sample_projections,
    random_unit_directions,
)
from cspd_ref.stats.mmd import mmd_permutation_test
from cspd_ref.stats.planning import (
    binomial_detectable_difference,
    dkw_detectable_distance,
    dkw_sample_size,
)
from cspd_ref.stats.result import CheckResult
from cspd_ref.stats.rosenblatt import pit_independence, pit_uniformity

__all__ = [
    "CheckResult",
    "acceptance_binomial_test",
    "atom_check",
    "binomial_detectable_difference",
    "bonferroni",
    "dkw_detectable_distance",
    "dkw_sample_size",
    "familywise_reject",
    "geometric_trials_test",
    "holm",
    "ks_one_sample",
    "ks_projections",
    "ks_two_sample_projections",
    "mmd_permutation_test",
    "pit_independence",
    "pit_uniformity",
    "random_unit_directions",
]
