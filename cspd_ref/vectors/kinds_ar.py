"""AR kind ``ar`` (docs/vectors.md; docs/algorithms.md §5, docs/noise.md §3).

MAR-style speculative decoding of ``n`` sequences of ``L`` tokens in ``R^d`` by
``ar_speculative_decode_from_noise`` with the batched residual (the loop gives the same outputs
on the same noise). Draft and target are ``MixtureARModel``\\ s: for position ``i`` with known
tokens ``x_j``, ``c_i = sum_{j known} W[i, j] tanh(x_j)``, ``lambda_i = mean(c_i)``; the
conditional is the diagonal mixture with weights ``softmax(logits[i] + weight_coupling *
lambda_i * (0..K-1))``, means ``base_means[i, k] + mean_coupling[k] * c_i`` and scales
``base_scales[i, k] * exp(scale_coupling * tanh(lambda_i))``.

The schedule is ``schedule_order`` (the positions, group after group) cut into groups of
``schedule_group_sizes``; ``gamma``, ``prefill`` and ``bonus_group`` are 0-d parameters. The
noise is the eight fields of ``cspd_ref.ar_noise.ARNoise``, indexed by place in the decoding
(sequence, position, round, draft step, slot). The outputs are the decoded sequences, the
per-sequence counters and the decode trace (accept decisions and log-ratios per round, step and
slot, NaN where no test was made; residual trials and proposal log-ratios per position).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cspd_ref.ar import (
    GroupSchedule,
    MixtureARModel,
    ar_speculative_decode_from_noise,
    mar_schedule,
)
from cspd_ref.ar_noise import ARNoise
from cspd_ref.validation import FloatArray
from cspd_ref.vectors.kind import (
    Arrays,
    VectorCase,
    VectorKind,
    accept_margins,
    component_margins,
    f32_normals,
    f32_uniforms,
    grid_scales,
    on_grid,
    residual_margins,
)

MODEL_FIELDS = ("logits", "base_means", "base_scales", "context_weights", "mean_coupling",
                "weight_coupling", "scale_coupling")
PARAMS = (*(f"{who}_{f}" for who in ("draft", "target") for f in MODEL_FIELDS),
          "schedule_order", "schedule_group_sizes", "gamma", "prefill", "bonus_group")
PARAM_DTYPES = {"schedule_order": "int64", "schedule_group_sizes": "int64", "gamma": "int64",
                "bonus_group": "bool"}
NOISE = ("target_component_uniforms", "target_normals", "draft_component_uniforms",
         "draft_normals", "accept_uniforms", "residual_component_uniforms", "residual_normals",
         "residual_accept_uniforms")
COUNTERS = ("target_passes", "prefill_passes", "drafted_groups", "accepted_groups",
            "bonus_groups")
TRACE = ("accepted", "accept_log_ratios", "residual_trials", "residual_log_ratios")
OUTPUTS = ("sequences", *COUNTERS, *TRACE)
OUTPUT_DTYPES = {"sequences": "float64", **dict.fromkeys(COUNTERS, "int64"), "accepted": "bool",
                 "accept_log_ratios": "float64", "residual_trials": "int64",
                 "residual_log_ratios": "float64"}


def models(params: Arrays) -> tuple[MixtureARModel, MixtureARModel]:
    """``(draft, target)`` from the parameter arrays."""
    def model(who: str) -> MixtureARModel:
        p = {f: params[f"{who}_{f}"] for f in MODEL_FIELDS}
        return MixtureARModel(p["logits"], p["base_means"], p["base_scales"],
                              p["context_weights"], p["mean_coupling"],
                              float(p["weight_coupling"]), float(p["scale_coupling"]))
    return model("draft"), model("target")


def schedule_of(params: Arrays) -> GroupSchedule:
    """The ``GroupSchedule`` cut from ``schedule_order`` by ``schedule_group_sizes``."""
    cuts = np.cumsum(params["schedule_group_sizes"])[:-1]
    return GroupSchedule(tuple(tuple(int(p) for p in group)
                               for group in np.split(params["schedule_order"], cuts)))


def options(params: Arrays) -> dict[str, Any]:
    """``gamma``, ``prefill`` and ``bonus_group`` as keyword arguments."""
    return {"gamma": int(params["gamma"]), "prefill": float(params["prefill"]),
            "bonus_group": bool(params["bonus_group"])}


def draw_ar_vector_noise(case: VectorCase, m: int, *, rng: np.random.Generator) -> Arrays:
    """``ARNoise`` fields for ``m`` sequences, float32-exact, in the declared field order."""
    L, d = case.params["target_base_means"].shape[0], case.params["target_base_means"].shape[2]
    G = case.params["schedule_group_sizes"].size
    S = int(case.params["schedule_group_sizes"].max())
    gamma, R = int(case.params["gamma"]), case.sizes["R"]
    shapes = {"target_component_uniforms": (m, L), "target_normals": (m, L, d),
              "draft_component_uniforms": (m, G, gamma, S),
              "draft_normals": (m, G, gamma, S, d), "accept_uniforms": (m, G, gamma, S),
              "residual_component_uniforms": (m, L, R), "residual_normals": (m, L, R, d),
              "residual_accept_uniforms": (m, L, R)}
    return {name: (f32_uniforms(shape, rng=rng) if "uniforms" in name
                   else f32_normals(shape, rng=rng))
            for name, shape in shapes.items()}


def reference_replay(params: Arrays, noise: Arrays) -> Arrays:
    """The float64 ``cspd_ref`` replay."""
    draft, target = models(params)
    out = ar_speculative_decode_from_noise(draft, target, schedule_of(params), ARNoise(**noise),
                                           residual="batched", **options(params))
    assert out.trace is not None
    return {"sequences": out.sequences, **{c: getattr(out, c) for c in COUNTERS},
            **{t: getattr(out.trace, t) for t in TRACE}}


def torch_replay(params: Arrays, noise: Arrays, dtype: str, device: str) -> Arrays:
    """The ``gpu_impl`` replay (models, noise and arithmetic in ``dtype`` on ``device``)."""
    import torch

    from gpu_impl.ar import MixtureARModel as TorchModel
    from gpu_impl.ar import ar_speculative_decode_from_noise as torch_decode
    from gpu_impl.ar_noise import ARNoise as TorchNoise

    dt = getattr(torch, dtype)
    draft, target = (TorchModel.from_reference(m, device, dt) for m in models(params))
    tensors = TorchNoise(**{k: torch.as_tensor(v, device=device).to(dt)
                            for k, v in noise.items()})
    out = torch_decode(draft, target, schedule_of(params), tensors, residual="batched",
                       **options(params))
    assert out.trace is not None
    result = {"sequences": out.sequences, **{c: getattr(out, c) for c in COUNTERS},
              **{t: getattr(out.trace, t) for t in TRACE}}
    return {k: np.asarray(v.detach().cpu().numpy()) for k, v in result.items()}


def ar_row_margins(params: Arrays, noise: Arrays, outputs: Arrays) -> FloatArray:
    """Per sequence, the smallest margin of a decision the reference took.

    Walks the rounds as the decoder does (docs/algorithms.md §5.2) using the reference's
    decisions. Every law that matters is conditioned on final tokens (a verified group's
    earlier groups in its round were accepted in full), so the laws are recomputed from the
    decoded sequence: component choices of target-alone tokens (pre-fill, bonus), of the draft
    tokens of verified groups and of examined residual proposals; acceptance tests; examined
    residual tests.
    """
    walk = MarginWalk(params, noise, outputs)
    return np.array([walk.sequence_margin(i) for i in range(outputs["sequences"].shape[0])])


class MarginWalk:
    """The decoder's control flow replayed from the reference outputs (``ar_row_margins``)."""

    def __init__(self, params: Arrays, noise: Arrays, outputs: Arrays) -> None:
        self.draft, self.target = models(params)
        self.schedule = schedule_of(params)
        self.options = options(params)
        self.noise = noise
        self.outputs = outputs

    def laws(self, i: int, g: int) -> tuple[Any, Any, np.ndarray]:
        """Target and draft conditionals of group ``g`` given the final groups ``< g``."""
        known = np.zeros(self.schedule.seq_len, dtype=bool)
        for earlier in range(g):
            known[self.schedule.positions(earlier)] = True
        pos = self.schedule.positions(g)
        tokens = self.outputs["sequences"][i]
        return (self.target.conditionals(tokens, known, pos),
                self.draft.conditionals(tokens, known, pos), pos)

    def target_alone(self, i: int, g: int) -> float:
        """Margin of the component choices of a group sampled from the target alone."""
        p, _, pos = self.laws(i, g)
        return float(component_margins(self.noise["target_component_uniforms"][i, pos],
                                       p.weights).min())

    def verified_group(self, i: int, r: int, j: int, g: int) -> float:
        """Margin of every decision made for group ``g``, verified at round ``r``, step ``j``."""
        noise, outputs = self.noise, self.outputs
        p, q, pos = self.laws(i, g)
        m = pos.size
        found = [component_margins(noise["draft_component_uniforms"][i, r, j, :m],
                                   q.weights).min(),
                 accept_margins(noise["accept_uniforms"][i, r, j, :m],
                                outputs["accept_log_ratios"][i, r, j, :m]).min()]
        for s, position in enumerate(pos):
            t = int(outputs["residual_trials"][i, position])
            if t:
                found.append(residual_margins(
                    noise["residual_accept_uniforms"][i, position, None, :t],
                    -outputs["residual_log_ratios"][i, position, None, :t], np.array([t]))[0])
                found.append(component_margins(
                    noise["residual_component_uniforms"][i, position, :t], p.weights[s]).min())
        return float(min(found))

    def sequence_margin(self, i: int) -> float:
        """The smallest margin over every decision of sequence ``i``.

        Raises:
            RuntimeError: if the walk and the reference's trace disagree on which tests were
                made (the walk would then check the wrong decisions).
        """
        G, gamma = self.schedule.num_groups, self.options["gamma"]
        n_prefill = math.ceil(self.options["prefill"] * G - 1e-12)
        found = [math.inf]
        tested = 0
        g = 0
        while g < min(n_prefill, G):
            found.append(self.target_alone(i, g))
            g += 1
        r = 0
        while g < G:
            k = min(gamma, G - g)
            for j in range(k):
                found.append(self.verified_group(i, r, j, g + j))
                m = self.schedule.positions(g + j).size
                tested += m
                if not self.outputs["accepted"][i, r, j, :m].all():
                    g += j + 1
                    break
            else:
                g += k
                if self.options["bonus_group"] and g < G:
                    found.append(self.target_alone(i, g))
                    g += 1
            r += 1
        if tested != np.count_nonzero(~np.isnan(self.outputs["accept_log_ratios"][i])):
            raise RuntimeError(f"sequence {i}: the margin walk and the decode trace disagree on "
                               "the acceptance tests made")
        return min(found)


def sequences_of_flat_rows(params: Arrays, rows: np.ndarray) -> np.ndarray:
    """``ResidualBudgetExceeded`` rows ``i * L + l`` -> sequences ``i``."""
    return np.asarray(rows // params["target_logits"].shape[0])


# --------------------------------------------------------------------- committed cases
def grid_model(model: MixtureARModel, who: str) -> Arrays:
    """A model's parameters rounded to the grid, as ``<who>_<field>`` arrays."""
    return {f"{who}_logits": on_grid(model.logits),
            f"{who}_base_means": on_grid(model.base_means),
            f"{who}_base_scales": grid_scales(model.base_scales),
            f"{who}_context_weights": on_grid(model.context_weights),
            f"{who}_mean_coupling": on_grid(model.mean_coupling),
            f"{who}_weight_coupling": on_grid(np.array(model.weight_coupling)),
            f"{who}_scale_coupling": on_grid(np.array(model.scale_coupling))}


def ar_params(seed: int, L: int, d: int, K: int, G: int, *, gamma: int, prefill: float,
              bonus_group: bool, draft_distance: float) -> Arrays:
    """A random target (``MixtureARModel.random``), a draft ``perturbed`` by
    ``draft_distance``, a MAR schedule of ``G`` groups, all on the parameter grid."""
    rng = np.random.default_rng(seed)
    target = MixtureARModel.random(L, d, K, rng=rng)
    draft = target.perturbed(draft_distance, rng=rng)
    schedule = mar_schedule(L, G, rng=rng)
    return {**grid_model(draft, "draft"), **grid_model(target, "target"),
            "schedule_order": np.array([p for g in schedule.groups for p in g], dtype=np.int64),
            "schedule_group_sizes": np.array([len(g) for g in schedule.groups], dtype=np.int64),
            "gamma": np.array(gamma, dtype=np.int64), "prefill": on_grid(np.array(prefill)),
            "bonus_group": np.array(bonus_group)}


def ar_sizes(params: Arrays, n: int, R: int) -> dict[str, int]:
    """``n``, ``R`` (residual proposals per position) and the decode's ``L, d, K, G, S, gamma``."""
    L, K, d = params["target_base_means"].shape
    return {"n": n, "R": R, "L": int(L), "d": int(d), "K_target": int(K),
            "K_draft": int(params["draft_logits"].shape[1]),
            "G": int(params["schedule_group_sizes"].size),
            "S": int(params["schedule_group_sizes"].max()), "gamma": int(params["gamma"])}


def ar_cases() -> list[VectorCase]:
    """The committed AR vectors."""
    first = ar_params(301, 8, 2, 2, 4, gamma=2, prefill=0.0, bonus_group=True,
                      draft_distance=0.3)
    second = ar_params(302, 6, 1, 3, 3, gamma=3, prefill=0.25, bonus_group=False,
                       draft_distance=0.4)
    return [
        VectorCase("ar_d2_gamma2_bonus", "ar",
                   "L=8, d=2, K=2, 4 groups, gamma=2, bonus group, no pre-fill",
                   first, ar_sizes(first, 12, 8), 311),
        VectorCase("ar_d1_gamma3_prefill", "ar",
                   "L=6, d=1, K=3, 3 groups, gamma=3, pre-fill 1 group, no bonus group",
                   second, ar_sizes(second, 12, 8), 312),
    ]


KINDS = (VectorKind(name="ar", summary="MAR-style AR speculative decoding, batched residual",
                    params=PARAMS, noise=NOISE, outputs=OUTPUTS, output_dtypes=OUTPUT_DTYPES,
                    draw_noise=draw_ar_vector_noise, reference=reference_replay,
                    torch=torch_replay, row_margins=ar_row_margins, cases=ar_cases,
                    param_dtypes=PARAM_DTYPES, budget_rows=sequences_of_flat_rows),)
