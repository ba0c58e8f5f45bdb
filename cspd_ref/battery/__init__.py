"""The parts of ``cspd_ref.verify`` (docs/battery.md): one job per module.

* ``output``: the sampler-output contract of docs/contract.md (``normalise_output``,
  ``SamplerOutput``, ``SamplerOutputError``);
* ``plan``: tiers, the number of checks a call runs, the planned and minimum sample sizes and
  the effects a call can detect (``plan_for``, ``planned_sample_size``, ``detectable_effects``);
* ``checks``: the checks assembled per case type from ``cspd_ref.stats`` (closed-form mixture
  targets, counts, sequences, two-sample).

``cspd_ref.verify`` runs them (``verify``, ``iter_verify``, ``verify_many``, ``Verdict``) and
re-exports the names callers use.
"""
