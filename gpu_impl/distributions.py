"""Token distributions over tensors: diagonal Gaussian mixtures, any device and dtype
(docs/algorithms.md §2).

The PyTorch twin of ``cspd_ref.distributions``: a ``GaussianMixture`` with weights
``(*batch, K)``, means and scales (standard deviations) ``(*batch, K, d)`` has density
``p(x) = sum_k w_k prod_j N(x_j; mu_kj, s_kj^2)``; it is a ``torch.distributions.Distribution``
with ``batch_shape == weights.shape[:-1]`` and ``event_shape == (d,)``. Log-densities are a
logsumexp over components ``log w_k - 1/2 sum_j z_kj^2 - sum_j log s_kj - d/2 log(2 pi)``,
``z = (x - mu_k) / s_k``, in float32 for 16-bit parameters; nothing exponentiates a density
before a ratio is formed. Sampling is a pure function of explicit noise with the reference's
inverse-CDF component rule ``k = #{j < K-1 : u >= W_j}``, ``W = cumsum(w)``, so both packages
produce the same sample from the same noise. The parameter checks are
``gpu_impl.validation.check_mixture_parameters`` / ``check_gaussian_parameters``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.constraints import Constraint

from gpu_impl.validation import (
    as_tensor,
    check_gaussian_parameters,
    check_mixture_parameters,
    compute_dtype,
    require_event_tensor,
    require_floating_dtype,
    require_half_open_unit_interval,
    same_device,
)

__all__ = [
    "HALF_LOG_TWO_PI",
    "VALIDATE_ARGS_DEFAULT",
    "DiagGaussian",
    "GaussianMixture",
    "from_reference",
    "logsumexp",
    "require_mixture",
    "require_same_event",
]

#: ``log(2 pi) / 2``, the constant of every Gaussian log-density.
HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)

_Size = torch.Size | tuple[int, ...] | list[int]
_EMPTY_SIZE = torch.Size()


#: Default of ``validate_args=None``. Unlike ``torch.distributions`` this does not follow
#: ``Distribution``'s global switch: initialising ``torch.compile`` (Dynamo) turns that switch
#: off for the whole process, and bad parameters must be refused regardless
#: (docs/contract.md §4).
VALIDATE_ARGS_DEFAULT = True


def logsumexp(values: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """``log(sum(exp(values)))`` along ``axis``, stable; all ``-inf`` gives ``-inf``
    (``torch.logsumexp``; the twin of ``cspd_ref.distributions.logsumexp``)."""
    return torch.logsumexp(values, dim=axis, keepdim=keepdims)


class GaussianMixture(Distribution):
    """A (batch of) diagonal Gaussian mixture(s) over tensors (docs/algorithms.md §2).

    Args:
        weights: ``(*batch, K)`` mixture weights, non-negative, summing to 1 (tolerance
            ``max(1e-9, 2 K eps(dtype))``).
        means: ``(*batch, K, d)`` component means.
        scales: ``(*batch, K, d)`` component standard deviations, strictly positive.
        validate_args: check the arguments (docs/contract.md §4) and, in
            ``log_prob``/``sample_from_noise``, the values passed. ``None`` means
            ``VALIDATE_ARGS_DEFAULT`` (True; deliberately not ``torch.distributions``' global
            default, which ``torch.compile`` switches off).
            Internal code building mixtures from validated parameters passes False.

    All three parameters must share one floating dtype and one device (integer inputs are cast
    to that dtype; NumPy arrays and lists are created on the device of the tensor arguments).

    Raises:
        ValueError: naming the argument, for NaN/inf, non-positive scales, weights that are
            negative or do not sum to 1, shapes that do not agree, mixed dtypes or devices,
            non-floating (bool, complex) inputs.
    """

    #: No torch constraints: the parameters are checked by ``check_mixture_parameters``, whose
    #: ``ValueError`` starts with the argument's name (docs/contract.md §4) and whose weight
    #: tolerance follows the dtype. torch's machinery would raise "Expected parameter weights
    #: ... to satisfy the constraint Simplex()" with a fixed 1e-6 tolerance, check no shape,
    #: dtype or device, and follow a global switch that ``torch.compile`` turns off. (An empty
    #: dict, as torch asks of distributions that do not use it; ``support`` is still declared.)
    arg_constraints: ClassVar[dict[str, Constraint]] = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    weights: Tensor
    means: Tensor
    scales: Tensor

    def __init__(self, weights: Any, means: Any, scales: Any, *,
                 validate_args: bool | None = None) -> None:
        validate = VALIDATE_ARGS_DEFAULT if validate_args is None else bool(validate_args)
        if validate:
            w, m, s = check_mixture_parameters(weights, means, scales)
        else:
            w, m, s = weights, means, scales
        self.weights = w
        self.means = m
        self.scales = s
        super().__init__(batch_shape=w.shape[:-1], event_shape=m.shape[-1:],
                         validate_args=False)
        self._validate_args = validate

    # ----------------------------------------------------------------- construction helpers
    def to_reference(self) -> Any:
        """The float64 ``cspd_ref.GaussianMixture`` with these parameters (host copy)."""
        from cspd_ref.distributions import GaussianMixture as RefMixture

        return RefMixture(self.weights.detach().double().cpu().numpy(),
                          self.means.detach().double().cpu().numpy(),
                          self.scales.detach().double().cpu().numpy())

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> GaussianMixture:
        """A copy with parameters moved/cast (no validation: the values are unchanged)."""
        return type(self).from_parameters(self.weights.to(device=device, dtype=dtype),
                                          self.means.to(device=device, dtype=dtype),
                                          self.scales.to(device=device, dtype=dtype),
                                          self._validate_args)

    @classmethod
    def from_parameters(cls, weights: Tensor, means: Tensor, scales: Tensor,
                        validate_args: bool = False) -> GaussianMixture:
        """An instance of ``cls`` over already-checked parameter tensors, without validation
        (no device synchronisation): ``weights`` ``(*batch, K)``, ``means`` and ``scales``
        ``(*batch, K, d)``, one dtype and device. For code that derives parameters from
        validated ones (concatenation, indexing, a model's conditionals); ``validate_args``
        only sets what ``log_prob`` and ``sample_from_noise`` check later."""
        out = GaussianMixture.__new__(cls)
        GaussianMixture.__init__(out, weights, means, scales, validate_args=False)
        out._validate_args = validate_args
        return out

    # ----------------------------------------------------------------- shape information
    @property
    def dim(self) -> int:
        """Event dimension d."""
        return int(self.means.shape[-1])

    @property
    def n_components(self) -> int:
        """Number of mixture components K."""
        return int(self.weights.shape[-1])

    @property
    def is_single_gaussian(self) -> bool:
        """True when K == 1 (a ``DiagGaussian``)."""
        return self.n_components == 1

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype."""
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        """Parameter device."""
        return self.means.device

    @property
    def compute_dtype(self) -> torch.dtype:
        """Dtype of log-densities: float32 for 16-bit parameters, the parameter dtype otherwise."""
        return compute_dtype(self.dtype)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch_shape={tuple(self.batch_shape)}, "
                f"K={self.n_components}, d={self.dim}, dtype={self.dtype}, device={self.device})")

    # ----------------------------------------------------------------- moments
    @property
    def mean(self) -> Tensor:
        """``sum_k w_k mu_k``: ``(*batch, d)``."""
        w = self.weights.unsqueeze(-1)
        return (w * self.means).sum(dim=-2)

    @property
    def variance(self) -> Tensor:
        """``sum_k w_k (s_k^2 + mu_k^2) - mean^2``: ``(*batch, d)``."""
        w = self.weights.unsqueeze(-1)
        second = (w * (self.scales**2 + self.means**2)).sum(dim=-2)
        return (second - self.mean**2).clamp_min(0)

    # ----------------------------------------------------------------- batch manipulation
    def index_batch(self, index: Any) -> GaussianMixture:
        """The mixture(s) at ``index`` of the batch dimensions (torch indexing, no validation).

        Always returns a plain ``GaussianMixture`` (the K = 1 subclass is kept when it applies).
        """
        cls = DiagGaussian if isinstance(self, DiagGaussian) else GaussianMixture
        return cls.from_parameters(self.weights[index], self.means[index], self.scales[index])

    def expand(self, batch_shape: _Size, _instance: Any = None) -> GaussianMixture:
        """Broadcast to ``batch_shape`` (views, no copy), as ``Distribution.expand``."""
        batch_shape = torch.Size(batch_shape)
        k, d = self.n_components, self.dim
        return type(self).from_parameters(self.weights.expand(*batch_shape, k),
                                          self.means.expand(*batch_shape, k, d),
                                          self.scales.expand(*batch_shape, k, d),
                                          self._validate_args)

    # ----------------------------------------------------------------- densities
    def component_log_prob(self, value: Tensor) -> Tensor:
        """``log w_k + log N(x; mu_k, diag(s_k^2))`` per component: shape ``(..., K)``.

        ``value`` has shape ``(*sample, *batch, d)`` (or broadcasts to it). Computed in
        ``compute_dtype``; ``log w_k = -inf`` for a zero weight.
        """
        ct = self.compute_dtype
        x = value.to(ct)
        means = self.means.to(ct)
        scales = self.scales.to(ct)
        z = (x.unsqueeze(-2) - means) / scales
        log_norm = torch.log(scales).sum(dim=-1) + self.dim * HALF_LOG_TWO_PI
        return -0.5 * (z * z).sum(dim=-1) - log_norm + torch.log(self.weights.to(ct))

    def log_prob_unchecked(self, value: Tensor) -> Tensor:
        """``log_prob`` without validation, hence without device synchronisation: the form
        the samplers use inside their loops (docs/algorithms.md §7).

        ``logsumexp_k`` of ``component_log_prob(value)`` (for K = 1 the single component's
        term), shape ``(*sample, *batch)`` in ``compute_dtype``. ``value`` must be a floating
        tensor on this device whose shape ends in ``d`` and broadcasts with the batch shape.
        """
        if self.is_single_gaussian:
            return self.component_log_prob(value)[..., 0]
        return logsumexp(self.component_log_prob(value), axis=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(x) = logsumexp_k(log w_k + sum_j log N(x_j; mu_kj, s_kj^2))``
        (docs/algorithms.md §2).

        Args:
            value: ``(*sample, *batch, d)`` points.

        Returns:
            ``(*sample, *batch)`` log-densities in ``compute_dtype``.

        Raises:
            ValueError: (when validating) ``value`` is not a tensor on this device, its last
                axis is not d, it does not broadcast with the batch shape, or it holds NaN.
        """
        if self._validate_args:
            self._validate_sample(value)
        return self.log_prob_unchecked(value)

    def _validate_sample(self, value: Tensor) -> None:
        """The ``torch.distributions`` hook that checks a ``value`` passed to ``log_prob``
        (``require_event_tensor``)."""
        require_event_tensor(value, "value", self.dim, self.batch_shape, self.device)

    # ----------------------------------------------------------------- sampling
    def component_index_from_uniforms(self, component_uniforms: Tensor) -> Tensor:
        """Inverse-CDF component choice ``k = #{j < K-1 : u >= W_j}``, ``W = cumsum(w)``.

        Exactly ``cspd_ref``'s rule (a zero-weight component is never chosen). The cumulative
        weights are formed in ``compute_dtype``. ``component_uniforms``: ``(*sample, *batch)``.
        Returns int64 indices of the same shape.
        """
        ct = self.compute_dtype
        u = component_uniforms.to(ct)
        boundaries = torch.cumsum(self.weights.to(ct), dim=-1)[..., :-1]
        return (u.unsqueeze(-1) >= boundaries).sum(dim=-1)

    def sample_from_noise(self, component_uniforms: Tensor, normals: Tensor) -> Tensor:
        """Samples as a pure function of explicit noise: ``x = mu_k + s_k * z``, ``k`` chosen by
        inverse CDF from ``component_uniforms``.

        No device synchronisation unless ``validate_args`` (then the uniforms must lie in
        [0, 1) and the normals be finite).

        Args:
            component_uniforms: ``(*sample, *batch)`` uniforms in [0, 1).
            normals: ``(*sample, *batch, d)`` standard normals.

        Returns:
            ``(*sample, *batch, d)`` samples in the parameter dtype.
        """
        if self._validate_args:
            require_half_open_unit_interval(component_uniforms, "component_uniforms")
            if not bool(torch.isfinite(normals).all()):
                raise ValueError("normals: contains NaN or infinite values")
        return self.sample_from_noise_unchecked(component_uniforms, normals)

    def sample_from_noise_unchecked(self, component_uniforms: Tensor, normals: Tensor) -> Tensor:
        """``sample_from_noise`` without value checks, hence without device synchronisation
        (docs/algorithms.md §7): ``x = mu_k + s_k z`` with ``k`` from
        ``component_index_from_uniforms``, computed in ``compute_dtype`` and returned in the
        parameter dtype. Only the shape of ``normals`` (``(*u.shape, d)``) is checked; the
        uniforms must lie in [0, 1) and the normals be finite."""
        u, z = component_uniforms, normals
        if tuple(z.shape) != (*u.shape, self.dim):
            raise ValueError(f"normals: expected shape {(*u.shape, self.dim)}, got "
                             f"{tuple(z.shape)}")
        ct = self.compute_dtype
        z = z.to(ct)
        if self.is_single_gaussian:
            mu = self.means[..., 0, :].to(ct)
            sd = self.scales[..., 0, :].to(ct)
            return (mu + sd * z).to(self.dtype)
        k = self.component_index_from_uniforms(u)
        full = (*u.shape, self.n_components, self.dim)
        picked = k[..., None, None].expand(*u.shape, 1, self.dim)
        mu = torch.gather(self.means.expand(full), -2, picked)[..., 0, :].to(ct)
        sd = torch.gather(self.scales.expand(full), -2, picked)[..., 0, :].to(ct)
        return (mu + sd * z).to(self.dtype)

    def sample(self, sample_shape: _Size = _EMPTY_SIZE, *,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw samples of shape ``(*sample_shape, *batch, d)``.

        The component uniforms are drawn before the normals (as ``cspd_ref``), in
        ``compute_dtype``, from ``generator``. ``None`` (the device's global RNG) is accepted only
        for ``torch.distributions`` compatibility; gpu_impl's samplers always pass a generator.
        """
        shape = (*torch.Size(sample_shape), *self.batch_shape)
        ct = self.compute_dtype
        u = torch.rand(shape, generator=generator, device=self.device, dtype=ct)
        z = torch.randn((*shape, self.dim), generator=generator, device=self.device, dtype=ct)
        return self.sample_from_noise_unchecked(u, z)


class DiagGaussian(GaussianMixture):
    """A diagonal Gaussian ``N(mean, diag(scale^2))``: the K = 1 ``GaussianMixture``.

    Args:
        mean: ``(*batch, d)``.
        scale: ``(*batch, d)`` standard deviations, strictly positive.
        validate_args: as ``GaussianMixture``.
    """

    has_rsample = True

    def __init__(self, mean: Any, scale: Any, *, validate_args: bool | None = None) -> None:
        validate = VALIDATE_ARGS_DEFAULT if validate_args is None else bool(validate_args)
        if validate:
            m, s = check_gaussian_parameters(mean, scale)
        else:
            m, s = mean, scale
        weights = torch.ones((*m.shape[:-1], 1), dtype=m.dtype, device=m.device)
        super().__init__(weights, m.unsqueeze(-2), s.unsqueeze(-2), validate_args=False)
        self._validate_args = validate

    @property
    def mean(self) -> Tensor:
        """``(*batch, d)`` mean."""
        return self.means[..., 0, :]

    @property
    def scale(self) -> Tensor:
        """``(*batch, d)`` standard deviation."""
        return self.scales[..., 0, :]

    @property
    def stddev(self) -> Tensor:
        """``(*batch, d)`` standard deviation."""
        return self.scale

    @property
    def variance(self) -> Tensor:
        """``(*batch, d)`` variance."""
        return self.scale**2

    def rsample(self, sample_shape: _Size = _EMPTY_SIZE, *,
                generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample ``mean + scale * z`` (differentiable in the parameters)."""
        shape = (*torch.Size(sample_shape), *self.batch_shape, self.dim)
        z = torch.randn(shape, generator=generator, device=self.device, dtype=self.compute_dtype)
        ct = self.compute_dtype
        return (self.mean.to(ct) + self.scale.to(ct) * z).to(self.dtype)

    def sample(self, sample_shape: _Size = _EMPTY_SIZE, *,
               generator: torch.Generator | None = None) -> Tensor:
        """As ``GaussianMixture.sample`` (uniforms drawn too, so the streams stay aligned)."""
        with torch.no_grad():
            return super().sample(sample_shape, generator=generator)


def from_reference(mixture: Any, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32, *,
                   validate_args: bool | None = None) -> GaussianMixture:
    """A ``GaussianMixture`` (``DiagGaussian`` for a reference ``DiagGaussian``) with the
    parameters of a ``cspd_ref.GaussianMixture`` cast to ``dtype`` on ``device``.

    Raises:
        ValueError: ``mixture`` has no ``weights``/``means``/``scales`` (it is not a mixture),
            ``dtype`` is not floating, or the cast parameters are invalid (e.g. weights that no
            longer sum to 1 within the dtype's tolerance).
    """
    from cspd_ref.distributions import DiagGaussian as RefDiag

    require_floating_dtype(dtype)
    if not all(hasattr(mixture, a) for a in ("weights", "means", "scales")):
        raise ValueError(f"mixture: expected a cspd_ref.GaussianMixture, got "
                         f"{type(mixture).__name__}")
    device = torch.device("cpu") if device is None else torch.device(device)

    def cast(a: Any, name: str) -> Tensor:
        return as_tensor(a, name, dtype=dtype, device=device, check_finite=False)

    w = cast(mixture.weights, "weights")
    m = cast(mixture.means, "means")
    s = cast(mixture.scales, "scales")
    if isinstance(mixture, RefDiag):
        return DiagGaussian(m[..., 0, :], s[..., 0, :], validate_args=validate_args)
    return GaussianMixture(w, m, s, validate_args=validate_args)


def require_mixture(value: Any, name: str) -> GaussianMixture:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a ``gpu_impl.GaussianMixture``."""
    if not isinstance(value, GaussianMixture):
        hint = (" (convert a cspd_ref mixture with gpu_impl.from_reference)"
                if hasattr(value, "weights") else "")
        raise ValueError(f"{name}: expected a gpu_impl.GaussianMixture, got "
                         f"{type(value).__name__}{hint}")
    return value


def require_same_event(draft: GaussianMixture, target: GaussianMixture) -> None:
    """Raise unless draft and target share event dimension, dtype and device, and their batch
    shapes broadcast."""
    if draft.dim != target.dim:
        raise ValueError(f"target: event dimension {target.dim} differs from draft's {draft.dim}")
    if draft.dtype != target.dtype:
        raise ValueError(f"target: dtype {target.dtype} differs from draft's {draft.dtype}")
    if not same_device(draft.device, target.device):
        raise ValueError(f"target: device {target.device} differs from draft's {draft.device}")
    try:
        torch.broadcast_shapes(draft.batch_shape, target.batch_shape)
    except RuntimeError as exc:
        raise ValueError(f"target: batch shape {tuple(target.batch_shape)} does not broadcast "
                         f"with draft's {tuple(draft.batch_shape)}") from exc
