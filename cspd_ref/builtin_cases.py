"""The built-in cases, by name and kind: what ``cspd verify --case`` and ``cspd report`` run.

* token cases (``Case``, closed-form mixture targets): ``demo``, ``equal-scale`` (single
  Gaussians with equal scales in d = 4: the reflection case), ``mixture-1d``;
* diffusion-head cases (``DiffusionCase``): ``linear-chain`` (linear Gaussian chains, closed-form
  marginals), ``mlp-chain`` (tanh-MLP heads, no closed form: two-sample tests);
* AR cases (``ARCase``): ``ar-mixture`` (mixture AR models, MAR schedule, 4 groups).

A sampler is called only on the kinds it supports: ``sampler(case, n, seed)`` with a ``Case``
returns ``(n, d)`` tokens, with a ``DiffusionCase`` ``(n, d)`` tokens of the diffusion head, with
an ``ARCase`` ``(n, L, d)`` sequences (``docs/contract.md``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cspd_ref.ar import MixtureARModel, mar_schedule
from cspd_ref.cases import (
    ARCase,
    Case,
    DiffusionCase,
    demo_case,
    equal_scale_gaussian_case,
    mixture_1d_case,
)
from cspd_ref.diffusion import GaussianChain, LinearGaussianChain

AnyCase = Case | DiffusionCase | ARCase


def tanh_mlp_chain(num_steps: int, dim: int, hidden: int, temperature: float = 1.0,
                   perturbation: float = 0.0, *, rng: np.random.Generator) -> GaussianChain:
    """A nonlinear diffusion head: ``m(x, t) = 0.9 x + 0.3 tanh(x W1_t) W2_t``, scale
    ``0.3 + 0.2 sigmoid(x . v_t)``; parameters perturbed by ``perturbation`` for a draft."""
    w1 = rng.normal(0, 1 / np.sqrt(dim), (num_steps, dim, hidden))
    w2 = rng.normal(0, 1 / np.sqrt(hidden), (num_steps, hidden, dim))
    v = rng.normal(0, 1 / np.sqrt(dim), (num_steps, dim))
    if perturbation:
        w1 = w1 + perturbation * rng.normal(0, 1 / np.sqrt(dim), w1.shape)
        w2 = w2 + perturbation * rng.normal(0, 1 / np.sqrt(hidden), w2.shape)

    def mean_fn(x: np.ndarray, t: int) -> np.ndarray:
        return 0.9 * x + 0.3 * np.tanh(x @ w1[t - 1]) @ w2[t - 1]

    def scale_fn(x: np.ndarray, t: int) -> np.ndarray:
        gate = 1.0 / (1.0 + np.exp(-(x @ v[t - 1])))
        return (0.3 + 0.2 * gate)[:, None] * np.ones((1, dim))

    return GaussianChain(mean_fn, scale_fn, num_steps, dim, temperature)


def linear_chain_case() -> DiffusionCase:
    """Linear chains, T = 4, d = 2, contracting (a in [0.3, 0.5]), step scale 0.4; the draft's
    means shifted and its scales 1.3x."""
    rng = np.random.default_rng(7)
    T, d = 4, 2
    a, b = rng.uniform(0.3, 0.5, (T, d)), rng.normal(0, 0.5, (T, d))
    s = np.full((T, d), 0.4)  # the last step carries most of x_0's variance
    target = LinearGaussianChain(a, b, s)
    draft = LinearGaussianChain(a * 0.9, b + 0.3, s * 1.3)
    return DiffusionCase(draft, target, name="linear-chain-T4-d2")


def mlp_chain_case() -> DiffusionCase:
    """tanh-MLP diffusion heads, T = 3, d = 2, hidden 16; the draft's weights perturbed by 0.3."""
    target = tanh_mlp_chain(3, 2, 16, rng=np.random.default_rng(5))
    draft = tanh_mlp_chain(3, 2, 16, rng=np.random.default_rng(5), perturbation=0.3)
    return DiffusionCase(draft, target, name="mlp-chain-T3-d2")


def ar_mixture_case() -> ARCase:
    """L = 6, d = 2, K = 2 target, draft perturbed by 0.4, 4 groups."""
    rng = np.random.default_rng(11)
    target = MixtureARModel.random(6, 2, 2, rng=rng, coupling=1.5)
    return ARCase(target.perturbed(0.4, rng=rng), target, mar_schedule(6, 4, rng=rng),
                  name="ar-L6-d2")


BUILTIN_CASES: dict[str, tuple[str, Callable[[], AnyCase]]] = {
    "demo": ("token", demo_case),
    "equal-scale": ("token", lambda: equal_scale_gaussian_case(4, 1.0)),
    "mixture-1d": ("token", mixture_1d_case),
    "linear-chain": ("diffusion", linear_chain_case),
    "mlp-chain": ("diffusion", mlp_chain_case),
    "ar-mixture": ("ar", ar_mixture_case),
}
"""Case name -> (kind, factory), in the order ``all`` runs them."""
KINDS = ("token", "diffusion", "ar")


def builtin_case_names(selection: str) -> list[str]:
    """The names selected by a case name, a kind (``token``, ``diffusion``, ``ar``) or ``all``.

    Raises:
        ValueError: naming ``case`` for an unknown selection.

    Examples:
        >>> builtin_case_names("diffusion")
        ['linear-chain', 'mlp-chain']
    """
    if selection == "all":
        return list(BUILTIN_CASES)
    if selection in KINDS:
        return [name for name, (kind, _) in BUILTIN_CASES.items() if kind == selection]
    if selection in BUILTIN_CASES:
        return [selection]
    raise ValueError(f"case: expected one of {', '.join([*BUILTIN_CASES, *KINDS, 'all'])} or a "
                     f"path to a .json case file, got {selection!r}")


def builtin_case(name: str) -> AnyCase:
    """The built-in case called ``name`` (see ``BUILTIN_CASES``)."""
    builtin_case_names(name)
    return BUILTIN_CASES[name][1]()
