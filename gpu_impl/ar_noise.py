"""Explicit noise for batched AR speculative decoding (docs/algorithms.md §5).

The tensor counterpart of ``cspd_ref.ar_noise``: the same eight fields, shapes and reading rules
(that module's docstring is the specification), held as tensors on one device.
``gpu_impl.ar.ar_speculative_decode_from_noise`` reads, for sequence ``i``, position ``l``,
speculative round ``r``, draft step ``j`` and slot ``s``:

* ``target_component_uniforms[i, l]``, ``target_normals[i, l]``: the token at ``l`` when the
  target alone samples it (pre-fill and bonus groups);
* ``draft_component_uniforms[i, r, j, s]``, ``draft_normals[i, r, j, s]``: the draft token of
  round ``r``, step ``j`` (group ``g + j``), at the group's ``s``-th position;
  ``accept_uniforms[i, r, j, s]``: its acceptance test ``log u < log p(x) - log q(x)``;
* ``residual_*[i, l, t]``: proposal ``t`` of the residual ``(p - q)^+ / TV`` for a rejected
  token at ``l`` (``R`` proposals without success raise ``ResidualBudgetExceeded``, rows
  ``i * L + l``).

Every active sequence makes one target pass per round of the batched decoder, so a sequence's
round number is the batch's round number: the batched decoder and the per-sequence reference
read the same entries. Noise is cast to the models' ``compute_dtype`` before use (float64 noise
can drive float32 models; its ranges are checked before the cast).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor

from cspd_ref.ar_noise import (
    DEFAULT_RESIDUAL_TRIALS,
    FIELD_NDIMS,
    UNIFORM_FIELDS,
    expected_shapes,
)
from gpu_impl.ar_model import GroupTable
from gpu_impl.distributions import GaussianMixture
from gpu_impl.speculative import (
    ResidualNoise,
    ResidualNoiseArrays,
    ResidualNoiseGenerator,
    RowSubsetNoise,
    rows_of,
)
from gpu_impl.validation import (
    as_tensor,
    require_device,
    require_floating_dtype,
    require_half_open_unit_interval,
    require_int,
)

__all__ = ["DEFAULT_RESIDUAL_TRIALS", "ARDecodeTrace", "ARNoise", "DecodeNoise", "draw_ar_noise"]


@dataclass(frozen=True, kw_only=True)
class ARNoise:
    """Every random number of one AR speculative decode, indexed by where it is used
    (``cspd_ref.ar_noise`` has the layout; the field names and shapes are the same; the fields
    are keyword-only, as there).

    Attributes:
        target_component_uniforms: ``(n, L)`` in [0, 1).
        target_normals: ``(n, L, d)``.
        draft_component_uniforms: ``(n, G, gamma, S)`` in [0, 1).
        draft_normals: ``(n, G, gamma, S, d)``.
        accept_uniforms: ``(n, G, gamma, S)`` in [0, 1).
        residual_component_uniforms: ``(n, L, R)`` in [0, 1).
        residual_normals: ``(n, L, R, d)``.
        residual_accept_uniforms: ``(n, L, R)`` in [0, 1).

    All fields are floating tensors of one dtype on one device (arrays are converted; tensors
    on another device than the first field's are refused).

    Raises:
        ValueError: naming the field, for a wrong number of dimensions, mixed dtypes or
            devices, shapes that disagree between fields, NaN/inf, or uniforms outside [0, 1).
    """

    target_component_uniforms: Tensor
    target_normals: Tensor
    draft_component_uniforms: Tensor
    draft_normals: Tensor
    accept_uniforms: Tensor
    residual_component_uniforms: Tensor
    residual_normals: Tensor
    residual_accept_uniforms: Tensor

    def __post_init__(self) -> None:
        device: torch.device | None = None
        dtype: torch.dtype | None = None
        for f in fields(self):
            tensor = as_tensor(getattr(self, f.name), f.name, ndim=FIELD_NDIMS[f.name],
                               device=device)
            if dtype is not None and tensor.dtype != dtype:
                raise ValueError(f"{f.name}: dtype {tensor.dtype} differs from "
                                 f"target_component_uniforms' {dtype}")
            device, dtype = tensor.device, tensor.dtype
            if f.name in UNIFORM_FIELDS:
                require_half_open_unit_interval(tensor, f.name)
            object.__setattr__(self, f.name, tensor)
        n, L, d = (int(s) for s in self.target_normals.shape)
        P, gamma, S = (int(s) for s in self.draft_component_uniforms.shape[1:])
        R = int(self.residual_component_uniforms.shape[2])
        for name, shape in expected_shapes(n, L, d, P, gamma, S, R).items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name}: expected shape {shape} (n={n}, L={L}, d={d}, "
                                 f"G={P}, gamma={gamma}, S={S}, R={R} from the other fields), "
                                 f"got {got}")

    @property
    def n(self) -> int:
        """Number of sequences."""
        return int(self.target_normals.shape[0])

    @property
    def seq_len(self) -> int:
        """Tokens per sequence L."""
        return int(self.target_normals.shape[1])

    @property
    def dim(self) -> int:
        """Token dimension d."""
        return int(self.target_normals.shape[2])

    @property
    def num_rounds(self) -> int:
        """Rounds provided per sequence (the ``G`` axis)."""
        return int(self.draft_component_uniforms.shape[1])

    @property
    def gamma(self) -> int:
        """Draft steps per round."""
        return int(self.draft_component_uniforms.shape[2])

    @property
    def group_width(self) -> int:
        """Slots per draft step S (the largest group size)."""
        return int(self.draft_component_uniforms.shape[3])

    @property
    def residual_trials(self) -> int:
        """Residual proposals per position R."""
        return int(self.residual_component_uniforms.shape[2])

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.target_normals.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the tensors."""
        return self.target_normals.dtype

    def require_layout(self, seq_len: int, num_groups: int, group_width: int, dim: int,
                       gamma: int, name: str = "noise") -> None:
        """Raise ``ValueError`` naming ``name.<field>`` unless the shapes are those of a decode
        with these ``L, G, S, d, gamma`` (any ``n`` and ``R``)."""
        shapes = expected_shapes(self.n, seq_len, dim, num_groups, gamma, group_width,
                                 self.residual_trials)
        for field_name, shape in shapes.items():
            got = tuple(getattr(self, field_name).shape)
            if got != shape:
                raise ValueError(f"{name}.{field_name}: expected shape {shape} for n={self.n}, "
                                 f"L={seq_len}, d={dim}, G={num_groups}, gamma={gamma}, "
                                 f"S={group_width}, R={self.residual_trials}; got {got}")

    @classmethod
    def from_reference(cls, noise: Any, device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float64) -> ARNoise:
        """The tensors of a ``cspd_ref.ar_noise.ARNoise`` on ``device`` (default cpu), cast to
        ``dtype`` (float64 by default: no rounding)."""
        from cspd_ref.ar_noise import ARNoise as RefNoise

        if not isinstance(noise, RefNoise):
            raise ValueError(f"noise: expected a cspd_ref.ar_noise.ARNoise, got "
                             f"{type(noise).__name__}")
        dev = require_device("cpu" if device is None else device)
        dt = require_floating_dtype(dtype)
        return cls(**{f.name: torch.as_tensor(getattr(noise, f.name), device=dev).to(dt)
                      for f in fields(cls)})

    def to_reference(self) -> Any:
        """The float64 ``cspd_ref.ar_noise.ARNoise`` with these values (host copy)."""
        from cspd_ref.ar_noise import ARNoise as RefNoise

        return RefNoise(**{f.name: getattr(self, f.name).detach().to("cpu", torch.float64)
                           .numpy() for f in fields(self)})


def require_ar_noise(noise: Any, name: str = "noise") -> ARNoise:
    """Raise ``ValueError`` naming ``name`` unless ``noise`` is a ``gpu_impl`` ``ARNoise``."""
    if not isinstance(noise, ARNoise):
        hint = (" (convert a cspd_ref one with gpu_impl.ar_noise.ARNoise.from_reference)"
                if type(noise).__name__ == "ARNoise" else "")
        raise ValueError(f"{name}: expected a gpu_impl.ar_noise.ARNoise, got "
                         f"{type(noise).__name__}{hint}")
    return noise


def draw_ar_noise(n: int, schedule: Any, dim: int, *, generator: torch.Generator,
                  gamma: int = 2, residual_trials: int = DEFAULT_RESIDUAL_TRIALS,
                  dtype: torch.dtype = torch.float32) -> ARNoise:
    """Draw an ``ARNoise`` on the generator's device: every entry independent, uniforms
    ``U[0, 1)`` (``torch.rand``), normals ``N(0, 1)`` (``torch.randn``), in ``dtype``, the
    fields drawn in declaration order.

    Args:
        n: number of sequences.
        schedule: a ``cspd_ref.ar.GroupSchedule`` or a ``gpu_impl.ar.GroupTable``.
        dim: token dimension d.
        generator: a ``torch.Generator`` (required: randomness is explicit).
        gamma: draft steps per round.
        residual_trials: residual proposals per position ``R`` (a rejected token needing more
            raises in the decoder).
        dtype: floating dtype of the noise.
    """
    from cspd_ref.ar_model import GroupSchedule

    if isinstance(schedule, GroupSchedule):
        L, G = schedule.seq_len, schedule.num_groups
        S = max(len(group) for group in schedule.groups)
    elif isinstance(schedule, GroupTable):
        L, G, S = schedule.seq_len, schedule.num_groups, schedule.max_group_size
    else:
        raise ValueError(f"schedule: expected a cspd_ref.ar.GroupSchedule or a GroupTable, got "
                         f"{type(schedule).__name__}")
    n = require_int(n, "n")
    dim = require_int(dim, "dim", minimum=1)
    gamma = require_int(gamma, "gamma", minimum=1)
    R = require_int(residual_trials, "residual_trials")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    dt = require_floating_dtype(dtype)
    dev = generator.device
    tensors = {}
    for name, shape in expected_shapes(n, L, dim, G, gamma, S, R).items():
        draw = torch.rand if name in UNIFORM_FIELDS else torch.randn
        tensors[name] = draw(shape, generator=generator, device=dev, dtype=dt)
    return ARNoise(**tensors)


@dataclass(frozen=True)
class ARDecodeTrace:
    """What the from-noise decoder decided, in the noise's layout (as
    ``cspd_ref.ar_noise.ARDecodeTrace``; log-ratios in the models' ``compute_dtype``).

    Attributes:
        accepted: ``(n, G, gamma, S)`` bool, True where the token of round ``r``, step ``j``,
            slot ``s`` passed its acceptance test.
        accept_log_ratios: ``(n, G, gamma, S)``, ``log p(x) - log q(x)`` of every token whose
            group was verified (every earlier group of its round passed), NaN elsewhere.
        residual_trials: ``(n, L)`` int64, residual proposals examined at that position.
        residual_log_ratios: ``(n, L, R)``, ``log p(y_t) - log q(y_t)`` of the examined residual
            proposals ``t < residual_trials[i, l]``, NaN elsewhere.
    """

    accepted: Tensor
    accept_log_ratios: Tensor
    residual_trials: Tensor
    residual_log_ratios: Tensor


# --------------------------------------------------------------------- noise sources
def sample_law(law: GaussianMixture, *, generator: torch.Generator) -> Tensor:
    """One draw per batch element of ``law`` (component uniforms first, then normals)."""
    shape = tuple(law.batch_shape)
    ct = law.compute_dtype
    u = torch.rand(shape, generator=generator, device=law.device, dtype=ct)
    z = torch.randn((*shape, law.dim), generator=generator, device=law.device, dtype=ct)
    return law.sample_from_noise_unchecked(u, z)


class DecodeNoise(Protocol):
    """Where the batched decoder of ``gpu_impl.ar`` gets its randomness. ``rows`` are sequence
    indices of the whole batch, ``pos`` ``(B, P)`` padded group positions, ``r`` the round."""

    max_trials: int

    def target_sample(self, law: GaussianMixture, rows: Tensor, pos: Tensor) -> Tensor: ...

    def draft_sample(self, law: GaussianMixture, rows: Tensor, r: int, j: int) -> Tensor: ...

    def accept_uniforms(self, rows: Tensor, r: int, steps: Tensor, slots: Tensor) -> Tensor: ...

    def residual(self, rows: Tensor, pos: Tensor) -> tuple[ResidualNoise, Tensor | None]: ...


class GeneratorDecodeNoise:
    """The randomness of ``ar_speculative_decode``: fresh draws from a ``torch.Generator`` in the
    order the decoder asks (``sample_law`` per group batch, ``torch.rand`` for the acceptance
    tests, one ``ResidualNoiseGenerator``)."""

    def __init__(self, dim: int, *, generator: torch.Generator, device: torch.device,
                 dtype: torch.dtype, max_trials: int) -> None:
        self.generator = generator
        self.device = device
        self.dtype = dtype
        self.stream = ResidualNoiseGenerator(dim, generator=generator, device=device, dtype=dtype)
        self.max_trials = max_trials

    def target_sample(self, law: GaussianMixture, rows: Tensor, pos: Tensor) -> Tensor:
        """Target-alone tokens ``(B, P, d)``."""
        return sample_law(law, generator=self.generator)

    def draft_sample(self, law: GaussianMixture, rows: Tensor, r: int, j: int) -> Tensor:
        """Draft tokens ``(B, P, d)`` of round ``r``, step ``j``."""
        return sample_law(law, generator=self.generator)

    def accept_uniforms(self, rows: Tensor, r: int, steps: Tensor, slots: Tensor) -> Tensor:
        """One acceptance uniform per listed token."""
        return torch.rand(int(rows.numel()), generator=self.generator, device=self.device,
                          dtype=self.dtype)

    def residual(self, rows: Tensor, pos: Tensor) -> tuple[ResidualNoise, Tensor | None]:
        """The residual stream (fresh draws) and no row renumbering."""
        return self.stream, None


class ArrayDecodeNoise:
    """The randomness of ``ar_speculative_decode_from_noise``: an ``ARNoise`` read by place,
    cast to ``dtype`` (the models' compute dtype)."""

    def __init__(self, noise: ARNoise, dtype: torch.dtype) -> None:
        self.noise = noise
        self.target_u = noise.target_component_uniforms.to(dtype)
        self.target_z = noise.target_normals.to(dtype)
        self.draft_u = noise.draft_component_uniforms.to(dtype)
        self.draft_z = noise.draft_normals.to(dtype)
        self.accept_u = noise.accept_uniforms.to(dtype)
        self.residual_u = noise.residual_component_uniforms.to(dtype)
        self.residual_z = noise.residual_normals.to(dtype)
        n, L, R, d = noise.n, noise.seq_len, noise.residual_trials, noise.dim
        self.stream = ResidualNoiseArrays(
            noise.residual_component_uniforms.reshape(n * L, R),
            noise.residual_normals.reshape(n * L, R, d),
            noise.residual_accept_uniforms.reshape(n * L, R), dtype=dtype)
        self.max_trials = max(1, R)

    def target_sample(self, law: GaussianMixture, rows: Tensor, pos: Tensor) -> Tensor:
        """Target-alone tokens ``(B, P, d)`` from ``target_*[rows, pos]``."""
        r = rows[:, None]
        return law.sample_from_noise_unchecked(self.target_u[r, pos], self.target_z[r, pos])

    def draft_sample(self, law: GaussianMixture, rows: Tensor, r: int, j: int) -> Tensor:
        """Draft tokens ``(B, S, d)`` of round ``r``, step ``j`` from ``draft_*[rows, r, j]``."""
        return law.sample_from_noise_unchecked(self.draft_u[rows, r, j], self.draft_z[rows, r, j])

    def accept_uniforms(self, rows: Tensor, r: int, steps: Tensor, slots: Tensor) -> Tensor:
        """``accept_uniforms[rows, r, steps, slots]``."""
        return self.accept_u[rows, r, steps, slots]

    def residual(self, rows: Tensor, pos: Tensor) -> tuple[ResidualNoise, Tensor | None]:
        """The residual rows ``rows * L + pos`` of the listed tokens, and those row numbers."""
        flat = rows * self.noise.seq_len + pos
        return RowSubsetNoise(self.stream, flat), flat


class TraceRecorder:
    """Collects an ``ARDecodeTrace`` while a from-noise decode runs."""

    def __init__(self, source: ArrayDecodeNoise) -> None:
        self.source = source
        noise = source.noise
        ct, dev = source.accept_u.dtype, noise.device
        shape = tuple(noise.accept_uniforms.shape)
        self.accepted = torch.zeros(shape, dtype=torch.bool, device=dev)
        self.accept_log_ratios = torch.full(shape, float("nan"), dtype=ct, device=dev)
        self.residual_trials = torch.zeros((noise.n, noise.seq_len), dtype=torch.int64,
                                           device=dev)
        self.residual_log_ratios = torch.full(tuple(noise.residual_accept_uniforms.shape),
                                              float("nan"), dtype=ct, device=dev)

    def record_round(self, rows: Tensor, r: int, steps: Tensor, slots: Tensor, pos: Tensor,
                     accepted: Tensor, log_ratios: Tensor, draft: GaussianMixture,
                     target: GaussianMixture, trials: Tensor) -> None:
        """Record the verified tokens of round ``r`` (all arguments flat over those tokens;
        ``draft``, ``target`` of batch shape ``(N,)``)."""
        dev = self.accepted.device
        rows, steps, slots, pos = (t.to(dev) for t in (rows, steps, slots, pos))
        self.accepted[rows, r, steps, slots] = accepted.to(dev)
        self.accept_log_ratios[rows, r, steps, slots] = log_ratios.to(self.accept_log_ratios)
        self.residual_trials[rows, pos] = trials.to(dev)
        rejected = torch.nonzero(trials > 0).squeeze(1)
        if int(rejected.numel()) == 0:
            return
        used = trials[rejected]
        t_max = int(used.max())
        seq, at = rows[rejected], pos[rejected]
        u = self.source.residual_u[seq, at, :t_max].to(target.device)
        z = self.source.residual_z[seq, at, :t_max].to(target.device)
        p, q = rows_of(target, rejected), rows_of(draft, rejected)
        y = p.sample_from_noise_unchecked(u, z)
        ratios = p.log_prob_unchecked(y) - q.log_prob_unchecked(y)           # (m, t_max)
        examined = torch.arange(t_max, device=ratios.device)[None, :] < used[:, None]
        self.residual_log_ratios[seq, at, :t_max] = torch.where(
            examined, ratios, float("nan")).to(self.residual_log_ratios)

    def result(self) -> ARDecodeTrace:
        """The collected trace."""
        return ARDecodeTrace(accepted=self.accepted, accept_log_ratios=self.accept_log_ratios,
                             residual_trials=self.residual_trials,
                             residual_log_ratios=self.residual_log_ratios)
