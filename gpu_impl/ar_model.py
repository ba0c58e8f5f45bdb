"""The AR model interface batched over sequences, the padded group schedule, the test model and
the decoding options of ``gpu_impl.ar`` (docs/algorithms.md §5).

Twin of ``cspd_ref.ar_model`` (same order): ``ARModel`` is the interface the batched decoder
needs (conditionals of the next tokens given the known ones, for a batch of sequences);
``GroupTable`` is the reference's ``GroupSchedule`` (the same idea: the generation order) built
into padded tensors, so that sequences at different group indices gather their group at once;
``MixtureARModel`` is the deterministic test model of ``cspd_ref.ar_model.MixtureARModel`` on
tensors; ``check_decode_options`` validates gamma, prefill, bonus and residual. All are
re-exported by ``gpu_impl.ar``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from cspd_ref.ar_model import GroupSchedule
from gpu_impl.distributions import GaussianMixture
from gpu_impl.speculative import RESIDUAL_METHODS
from gpu_impl.validation import (
    as_tensor,
    require_closed_unit_interval,
    require_device,
    require_finite_float,
    require_floating_dtype,
    require_int,
    require_positive,
    same_device,
)

__all__ = [
    "ARModel",
    "GroupTable",
    "MixtureARModel",
    "check_decode_options",
    "prefill_groups",
    "require_ar_model",
    "require_prefill",
]


# --------------------------------------------------------------------- the model interface
@runtime_checkable
class ARModel(Protocol):
    """A MAR-style model batched over sequences: conditionals of the next tokens given the known.

    ``conditionals(tokens, known, positions)``:

    * ``tokens``: ``(B, L, d)`` in ``dtype`` on ``device``. Entries at unknown positions are
      meaningless (zeros or stale draft values) and **must not be read**: the result may depend
      only on ``tokens[b, l]`` where ``known[b, l]``.
    * ``known``: ``(B, L)`` bool.
    * ``positions``: ``(B, m)`` int64, unknown positions of sequence ``b``. A decoder may pad a
      row with repeats of one of its own positions (``GroupTable``); the laws at such slots are
      computed and ignored.

    Returns a ``gpu_impl.GaussianMixture`` with batch shape ``(B, m)``: the conditional law of
    each listed token, the tokens of one row conditionally independent given the known ones.
    """

    seq_len: int
    dim: int

    @property
    def device(self) -> torch.device:
        """Device of the tensors ``conditionals`` takes and returns."""
        ...

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of ``tokens`` and of the returned mixtures."""
        ...

    def conditionals(self, tokens: Tensor, known: Tensor,
                     positions: Tensor) -> GaussianMixture:
        """The laws of ``tokens[b, positions[b, i]]`` given the known tokens of row ``b``: a
        mixture with batch shape ``(B, m)`` (see the class docstring)."""
        ...


def require_ar_model(model: Any, name: str) -> ARModel:
    """Raise ``ValueError`` naming ``name`` unless ``model`` is a (torch) ``ARModel``."""
    if not isinstance(model, ARModel):
        hint = (" (convert a cspd_ref model with gpu_impl.MixtureARModel.from_reference)"
                if hasattr(model, "conditionals") else "")
        raise ValueError(f"{name}: expected a gpu_impl ARModel (seq_len, dim, device, dtype, "
                         f"batched conditionals), got {type(model).__name__}{hint}")
    return model


# --------------------------------------------------------------------- the padded schedule
@dataclass(frozen=True)
class GroupTable:
    """The group schedule as padded tensors: the reference's ``GroupSchedule`` (one order for
    every sequence) built into tables, so that sequences at different group indices can
    gather their current group in one indexing operation.

    Attributes:
        positions: ``(G, P)`` int64, ``P`` the largest group size; row ``g`` lists group ``g``'s
            positions in schedule order, then repeats its first position as padding.
        mask: ``(G, P)`` bool, False at padding slots.
        sizes: ``(G,)`` int64 group sizes.
        seq_len: ``L``.
    """

    positions: Tensor
    mask: Tensor
    sizes: Tensor
    seq_len: int

    @classmethod
    def from_schedule(cls, schedule: Any, device: torch.device | str = "cpu") -> GroupTable:
        """Build from a ``cspd_ref.ar.GroupSchedule`` on ``device``."""
        if not isinstance(schedule, GroupSchedule):
            raise ValueError(f"schedule: expected a cspd_ref.ar.GroupSchedule, got "
                             f"{type(schedule).__name__}")
        dev = require_device(device)
        width = max(len(group) for group in schedule.groups)
        rows = [list(group) + [group[0]] * (width - len(group)) for group in schedule.groups]
        sizes = [len(group) for group in schedule.groups]
        positions = torch.tensor(rows, dtype=torch.int64, device=dev)
        mask = (torch.arange(width, device=dev)[None, :]
                < torch.tensor(sizes, dtype=torch.int64, device=dev)[:, None])
        return cls(positions=positions, mask=mask,
                   sizes=torch.tensor(sizes, dtype=torch.int64, device=dev),
                   seq_len=schedule.seq_len)

    @property
    def num_groups(self) -> int:
        """Number of groups G."""
        return int(self.positions.shape[0])

    @property
    def max_group_size(self) -> int:
        """Padded width P."""
        return int(self.positions.shape[1])

    @property
    def device(self) -> torch.device:
        """Device of the tables."""
        return self.positions.device


# --------------------------------------------------------------------- the test model
class MixtureARModel:
    """The deterministic AR test model of ``cspd_ref.ar.MixtureARModel``, batched
    (docs/contract.md §2).

    For sequence ``b``, position ``i`` and known tokens ``x_j`` the context is
    ``c_i = sum_{j known} W[i, j] tanh(x_j)`` (a d-vector), ``lambda_i = mean(c_i)``, and the
    conditional is the diagonal mixture with

    * weights ``softmax(logits[i] + weight_coupling * lambda_i * (0..K-1))``,
    * means ``base_means[i, k] + mean_coupling[k] * c_i``,
    * scales ``base_scales[i, k] * exp(scale_coupling * tanh(lambda_i))``,

    the formulas of the reference, evaluated in the parameter dtype.

    Args:
        logits: ``(L, K)``.
        base_means: ``(L, K, d)``.
        base_scales: ``(L, K, d)``, positive.
        context_weights: ``(L, L)`` (``W``).
        mean_coupling: ``(K,)``.
        weight_coupling, scale_coupling: floats.
        device, dtype: where the parameters live (tensors elsewhere are refused).
        validate_args: in ``conditionals``, also check the values (positions in range, known
            tokens finite; two host synchronisations per call). Shapes, dtypes and devices are
            always checked (no synchronisation).

    Raises:
        ValueError: naming the argument, for bad shapes, non-finite values, non-positive scales.
    """

    def __init__(self, logits: Any, base_means: Any, base_scales: Any, context_weights: Any,
                 mean_coupling: Any, weight_coupling: float = 0.0, scale_coupling: float = 0.0,
                 *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, validate_args: bool = True) -> None:
        dt = require_floating_dtype(dtype)
        dev = None if device is None else require_device(device)

        def cast(value: Any, name: str, ndim: int) -> Tensor:
            return as_tensor(value, name, dtype=dt, device=dev, ndim=ndim)

        self.logits = cast(logits, "logits", 2)
        dev = self.logits.device
        self.seq_len, self.n_components = (int(s) for s in self.logits.shape)
        self.base_means = cast(base_means, "base_means", 3)
        self.dim = int(self.base_means.shape[2])
        if tuple(self.base_means.shape[:2]) != tuple(self.logits.shape) or self.dim < 1:
            raise ValueError(f"base_means: expected ({self.seq_len}, {self.n_components}, d), "
                             f"got {tuple(self.base_means.shape)}")
        self.base_scales = cast(base_scales, "base_scales", 3)
        if self.base_scales.shape != self.base_means.shape:
            raise ValueError("base_scales: must be positive with the shape of base_means")
        require_positive(self.base_scales, "base_scales")
        self.context_weights = cast(context_weights, "context_weights", 2)
        if tuple(self.context_weights.shape) != (self.seq_len, self.seq_len):
            raise ValueError(f"context_weights: expected ({self.seq_len}, {self.seq_len}), got "
                             f"{tuple(self.context_weights.shape)}")
        self.mean_coupling = cast(mean_coupling, "mean_coupling", 1)
        if tuple(self.mean_coupling.shape) != (self.n_components,):
            raise ValueError(f"mean_coupling: expected ({self.n_components},), got "
                             f"{tuple(self.mean_coupling.shape)}")
        self.weight_coupling = require_finite_float(weight_coupling, "weight_coupling")
        self.scale_coupling = require_finite_float(scale_coupling, "scale_coupling")
        if not isinstance(validate_args, bool):
            raise ValueError("validate_args: must be a bool")
        self.validate_args = validate_args
        self._component_index = torch.arange(self.n_components, device=dev, dtype=dt)

    @property
    def device(self) -> torch.device:
        """Parameter device."""
        return self.logits.device

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype."""
        return self.logits.dtype

    def __repr__(self) -> str:
        return (f"MixtureARModel(L={self.seq_len}, d={self.dim}, K={self.n_components}, "
                f"dtype={self.dtype}, device={self.device})")

    @classmethod
    def from_reference(cls, model: Any, device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float32, *,
                       validate_args: bool = True) -> MixtureARModel:
        """The model with the parameters of a ``cspd_ref.ar.MixtureARModel``, cast to ``dtype``
        on ``device`` (default cpu)."""
        names = ("logits", "base_means", "base_scales", "context_weights", "mean_coupling",
                 "weight_coupling", "scale_coupling")
        if not all(hasattr(model, a) for a in names):
            raise ValueError(f"model: expected a cspd_ref.ar.MixtureARModel, got "
                             f"{type(model).__name__}")
        return cls(model.logits, model.base_means, model.base_scales, model.context_weights,
                   model.mean_coupling, model.weight_coupling, model.scale_coupling,
                   device="cpu" if device is None else device, dtype=dtype,
                   validate_args=validate_args)

    def to_reference(self) -> Any:
        """The float64 ``cspd_ref.ar.MixtureARModel`` with these parameters (host copy)."""
        from cspd_ref.ar import MixtureARModel as RefModel

        def host(t: Tensor) -> Any:
            return t.detach().to("cpu", torch.float64).numpy()

        return RefModel(host(self.logits), host(self.base_means), host(self.base_scales),
                        host(self.context_weights), host(self.mean_coupling),
                        self.weight_coupling, self.scale_coupling)

    def _check_inputs(self, tokens: Tensor, known: Tensor, positions: Tensor) -> None:
        for name, t in (("tokens", tokens), ("known", known), ("positions", positions)):
            if not isinstance(t, Tensor):
                raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
            if not same_device(t.device, self.device):
                raise ValueError(f"{name}: is on device {t.device}, expected {self.device}")
        L, d = self.seq_len, self.dim
        if tokens.ndim != 3 or tuple(tokens.shape[1:]) != (L, d):
            raise ValueError(f"tokens: expected shape (B, {L}, {d}), got {tuple(tokens.shape)}")
        if tokens.dtype != self.dtype:
            raise ValueError(f"tokens: dtype {tokens.dtype} differs from the model's {self.dtype}")
        batch = int(tokens.shape[0])
        if known.dtype != torch.bool or tuple(known.shape) != (batch, L):
            raise ValueError(f"known: expected a bool tensor of shape ({batch}, {L}), got "
                             f"{known.dtype} {tuple(known.shape)}")
        if (positions.dtype != torch.int64 or positions.ndim != 2
                or int(positions.shape[0]) != batch):
            raise ValueError(f"positions: expected an int64 tensor of shape ({batch}, m), got "
                             f"{positions.dtype} {tuple(positions.shape)}")
        if self.validate_args:
            if positions.numel() and not bool(((positions >= 0) & (positions < L)).all()):
                raise ValueError(f"positions: must lie in [0, {L})")
            if not bool(torch.isfinite(torch.where(known[..., None], tokens, 0.0)).all()):
                raise ValueError("tokens: known tokens contain NaN or infinite values")

    def conditionals(self, tokens: Tensor, known: Tensor, positions: Tensor) -> GaussianMixture:
        """The conditional mixtures of the tokens at ``positions`` (batch ``(B, m)``).

        Unknown tokens are never read: ``tanh`` is applied to ``where(known, x, 0)``.

        Args:
            tokens: ``(B, L, d)`` in the model's dtype.
            known: ``(B, L)`` bool.
            positions: ``(B, m)`` int64.
        """
        self._check_inputs(tokens, known, positions)
        features = torch.tanh(torch.where(known[..., None], tokens, 0.0))     # (B, L, d)
        weights_w = self.context_weights[positions]                          # (B, m, L)
        context = torch.matmul(weights_w, features)                          # (B, m, d)
        level = context.mean(dim=-1)                                         # (B, m)
        logits = (self.logits[positions]
                  + self.weight_coupling * level[..., None] * self._component_index)
        weights = torch.softmax(logits, dim=-1)                              # (B, m, K)
        means = (self.base_means[positions]
                 + self.mean_coupling[:, None] * context[..., None, :])      # (B, m, K, d)
        scales = self.base_scales[positions] * torch.exp(
            self.scale_coupling * torch.tanh(level))[..., None, None]        # (B, m, K, d)
        return GaussianMixture(weights, means, scales, validate_args=False)


# --------------------------------------------------------------------- decoding options
def require_prefill(prefill: Any) -> float:
    """``prefill`` as a float in the closed interval [0, 1] (``require_closed_unit_interval``;
    a one-element tensor is read with ``.item()``), raising ``ValueError`` naming ``prefill``
    otherwise."""
    if isinstance(prefill, Tensor):
        if prefill.numel() != 1:
            raise ValueError("prefill: expected a scalar")
        prefill = prefill.item()
    return require_closed_unit_interval(prefill, "prefill")


def check_decode_options(gamma: Any, prefill: Any, bonus_group: Any, residual: Any,
                         max_trials: Any) -> tuple[int, float, int]:
    """Validate the decoding options; returns ``(gamma, prefill, max_trials)`` normalised."""
    gamma = require_int(gamma, "gamma", minimum=1)
    prefill_value = require_prefill(prefill)
    if not isinstance(bonus_group, bool):
        raise ValueError("bonus_group: must be a bool")
    if not isinstance(residual, str) or residual not in RESIDUAL_METHODS:
        raise ValueError(f"residual: expected one of {RESIDUAL_METHODS}, got {residual!r}")
    return gamma, prefill_value, require_int(max_trials, "max_trials", minimum=1)


def prefill_groups(prefill: float, num_groups: int) -> int:
    """``ceil(prefill * G)`` as the reference computes it (a 1e-12 allowance absorbs the
    rounding of ``prefill * G``, e.g. ``0.3 * 10 = 3.0000000000000004``)."""
    return min(num_groups, math.ceil(prefill * num_groups - 1e-12))
