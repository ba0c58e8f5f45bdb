"""The AR model interface, the group schedule and the test model of ``cspd_ref.ar``
(docs/algorithms.md §5.1), float64.

``ARModel`` is what the decoder needs from a model (the conditionals of one sequence's next
group given its known tokens); ``GroupSchedule`` / ``mar_schedule`` is the generation order;
``MixtureARModel`` is the deterministic test model. All are re-exported by ``cspd_ref.ar``.
Twin of ``gpu_impl.ar_model`` (same order): there ``ARModel`` is batched over sequences and
``GroupTable`` is the padded table built from a ``GroupSchedule`` (the same idea, as tensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from cspd_ref.distributions import GaussianMixture
from cspd_ref.validation import (
    BoolArray,
    FloatArray,
    IntArray,
    as_float64,
    require_finite_float,
    require_generator,
    require_int,
)

__all__ = ["ARModel", "GroupSchedule", "MixtureARModel", "check_model", "mar_schedule"]


@runtime_checkable
class ARModel(Protocol):
    """A MAR-style model: conditionals of the next group's tokens given the known ones.

    ``conditionals(tokens, known, positions)``: ``tokens`` ``(L, d)`` (entries at unknown
    positions are meaningless and must not be read), ``known`` ``(L,)`` bool, ``positions``
    ``(m,)`` int (all unknown). Returns a ``GaussianMixture`` with batch shape ``(m,)``: the
    conditional law of each listed token, the tokens conditionally independent.
    """

    seq_len: int
    dim: int

    def conditionals(self, tokens: FloatArray, known: BoolArray,
                     positions: IntArray) -> GaussianMixture: ...


def check_model(model: object, name: str, schedule: GroupSchedule) -> ARModel:
    """Raise ``ValueError`` naming ``name`` unless ``model`` is an ``ARModel`` for ``schedule``."""
    if not isinstance(model, ARModel):
        raise ValueError(f"{name}: expected an ARModel (seq_len, dim, conditionals), got "
                         f"{type(model).__name__}")
    if model.seq_len != schedule.seq_len:
        raise ValueError(f"schedule: seq_len {schedule.seq_len} differs from the {name}'s "
                         f"{model.seq_len}")
    return model


@dataclass(frozen=True)
class GroupSchedule:
    """The generation order: ``groups[i]`` are the positions generated at step ``i``.

    The groups partition ``range(seq_len)`` and none is empty.
    """

    groups: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        flat = [p for group in self.groups for p in group]
        if any(isinstance(p, bool) or not isinstance(p, int | np.integer) for p in flat):
            raise ValueError("groups: positions must be integers")
        if not self.groups or any(len(g) == 0 for g in self.groups):
            raise ValueError("groups: must be a non-empty sequence of non-empty groups")
        if sorted(flat) != list(range(len(flat))):
            raise ValueError("groups: must partition range(seq_len) (each position exactly once)")

    @property
    def seq_len(self) -> int:
        """Number of tokens L."""
        return sum(len(g) for g in self.groups)

    @property
    def num_groups(self) -> int:
        """Number of groups G."""
        return len(self.groups)

    def positions(self, i: int) -> IntArray:
        """Positions of group ``i`` as an int array."""
        return np.asarray(self.groups[i], dtype=np.int64)


def mar_schedule(seq_len: int, num_steps: int, *, rng: np.random.Generator) -> GroupSchedule:
    """MAR's schedule: a uniformly random order and a cosine mask schedule.

    After step ``i`` (0-based) ``floor(L cos(pi/2 (i+1)/S))`` tokens stay masked, clamped so that
    every step generates at least one token and the last step generates the rest.
    """
    seq_len = require_int(seq_len, "seq_len", minimum=1)
    num_steps = require_int(num_steps, "num_steps", minimum=1)
    if num_steps > seq_len:
        raise ValueError(f"num_steps: must be <= seq_len={seq_len}, got {num_steps}")
    rng = require_generator(rng)
    order = rng.permutation(seq_len)
    groups: list[tuple[int, ...]] = []
    masked = seq_len
    for step in range(num_steps):
        steps_left = num_steps - step - 1
        target_masked = math.floor(seq_len * math.cos(math.pi / 2 * (step + 1) / num_steps))
        target_masked = max(steps_left, min(masked - 1, target_masked)) if steps_left else 0
        start = seq_len - masked
        groups.append(tuple(int(p) for p in order[start:start + masked - target_masked]))
        masked = target_masked
    return GroupSchedule(tuple(groups))


class MixtureARModel:
    """A deterministic AR test model with diagonal-mixture conditionals (docs/contract.md §2).

    For position ``i`` with known tokens ``x_j``, the context is
    ``c_i = sum_{j known} W[i, j] tanh(x_j)`` (a d-vector) and the conditional is the mixture

    * weights ``softmax(logits[i] + weight_coupling * mean(c_i) * (0..K-1))``,
    * means ``base_means[i, k] + mean_coupling[k] * c_i``,
    * scales ``base_scales[i, k] * exp(scale_coupling * tanh(mean(c_i)))``.

    Every conditional is a closed-form mixture, so the Rosenblatt transform is exact.
    """

    def __init__(self, logits: ArrayLike, base_means: ArrayLike, base_scales: ArrayLike,
                 context_weights: ArrayLike, mean_coupling: ArrayLike,
                 weight_coupling: float = 0.0, scale_coupling: float = 0.0) -> None:
        self.logits = as_float64(logits, "logits", ndim=2)
        self.seq_len, self.n_components = self.logits.shape
        self.base_means = as_float64(base_means, "base_means", ndim=3)
        self.dim = int(self.base_means.shape[2])
        if self.base_means.shape[:2] != self.logits.shape:
            raise ValueError(f"base_means: expected ({self.seq_len}, {self.n_components}, d), "
                             f"got {self.base_means.shape}")
        self.base_scales = as_float64(base_scales, "base_scales", ndim=3)
        if self.base_scales.shape != self.base_means.shape or np.any(self.base_scales <= 0):
            raise ValueError("base_scales: must be positive with the shape of base_means")
        self.context_weights = as_float64(context_weights, "context_weights", ndim=2)
        if self.context_weights.shape != (self.seq_len, self.seq_len):
            raise ValueError(f"context_weights: expected ({self.seq_len}, {self.seq_len}), got "
                             f"{self.context_weights.shape}")
        self.mean_coupling = as_float64(mean_coupling, "mean_coupling", ndim=1)
        if self.mean_coupling.shape != (self.n_components,):
            raise ValueError(f"mean_coupling: expected ({self.n_components},), got "
                             f"{self.mean_coupling.shape}")
        self.weight_coupling = require_finite_float(weight_coupling, "weight_coupling")
        self.scale_coupling = require_finite_float(scale_coupling, "scale_coupling")

    def conditionals(self, tokens: FloatArray, known: BoolArray,
                     positions: IntArray) -> GaussianMixture:
        """The conditional mixtures of the tokens at ``positions`` (batch ``(m,)``)."""
        features = np.tanh(np.where(known[:, None], tokens, 0.0))           # (L, d)
        context = self.context_weights[positions] @ features                 # (m, d)
        level = context.mean(axis=1)                                         # (m,)
        k = np.arange(self.n_components)
        logits = self.logits[positions] + self.weight_coupling * level[:, None] * k
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        means = self.base_means[positions] + self.mean_coupling[None, :, None] * context[:, None]
        scales = self.base_scales[positions] * np.exp(
            self.scale_coupling * np.tanh(level))[:, None, None]
        return GaussianMixture(weights, means, scales, validate_args=False)

    @classmethod
    def random(cls, seq_len: int, dim: int, n_components: int, *, rng: np.random.Generator,
               coupling: float = 0.8) -> MixtureARModel:
        """A random target model: component means N(0, 1.5^2), scales in [0.4, 1.2], a dense
        (L, L) context-weight matrix of scale ``coupling / sqrt(L)`` (only known positions are
        ever read, so its diagonal never matters)."""
        rng = require_generator(rng)
        L, d, K = (require_int(seq_len, "seq_len", minimum=1), require_int(dim, "dim", minimum=1),
                   require_int(n_components, "n_components", minimum=1))
        return cls(
            logits=rng.normal(0.0, 0.5, (L, K)),
            base_means=rng.normal(0.0, 1.5, (L, K, d)),
            base_scales=rng.uniform(0.4, 1.2, (L, K, d)),
            context_weights=coupling * rng.normal(0.0, 1.0, (L, L)) / np.sqrt(L),
            mean_coupling=rng.uniform(0.5, 1.5, K),
            weight_coupling=0.5,
            scale_coupling=0.3,
        )

    def perturbed(self, size: float, *, rng: np.random.Generator) -> MixtureARModel:
        """A draft: every parameter moved by ``size`` times standard normal noise (scales and
        weights multiplicatively); ``size = 0`` returns an identical copy."""
        rng = require_generator(rng)
        s = float(size)
        return MixtureARModel(
            logits=self.logits + s * rng.normal(size=self.logits.shape),
            base_means=self.base_means + s * rng.normal(size=self.base_means.shape),
            base_scales=self.base_scales * np.exp(
                0.5 * s * rng.normal(size=self.base_scales.shape)),
            context_weights=self.context_weights + 0.3 * s * rng.normal(
                size=self.context_weights.shape),
            mean_coupling=self.mean_coupling + 0.3 * s * rng.normal(size=self.mean_coupling.shape),
            weight_coupling=self.weight_coupling,
            scale_coupling=self.scale_coupling,
        )
