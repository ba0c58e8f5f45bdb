"""A synthetic dataset, brief training of the target and distillation of the draft
(docs/mar_toy.md §3).

Weights cannot be downloaded here, so the toy makes a realistic pair itself: the target is
trained on smooth random fields (``synthetic_images``) with MAR's per-token diffusion loss, every
token conditioned on the tokens of earlier groups of a random order; the draft keeps the
target's first layers and head and is distilled to reproduce the target's conditioning ``z``.
Everything is seeded: ``seed`` fixes the initialisation (``MARToy.seeded``: the global generator
is neither read nor changed) and a ``torch.Generator`` every batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from gpu_impl.mar_toy.model import MARToy, MARToyConfig
from gpu_impl.mar_toy.schedule import random_orders
from gpu_impl.validation import require_int

__all__ = ["distil_draft", "synthetic_images", "train_target"]

_DATASET_SEED = 20241119
"""Fixes the dataset's law (its basis and mixing), not its samples."""

Progress = Callable[[str], None]


def _field_basis(config: MARToyConfig, device: torch.device) -> Tensor:
    """``(M, N, d)``: low-frequency cosine/sine modes of the grid times fixed random token
    directions, ``M = 16``."""
    g = torch.Generator().manual_seed(_DATASET_SEED)
    ij = torch.arange(config.grid, dtype=torch.float64) / config.grid
    modes = []
    for fx, fy in [(0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0), (2, 1), (1, 2)]:
        phase = 2 * math.pi * (fx * ij[:, None] + fy * ij[None, :])
        modes += [torch.cos(phase).flatten(), torch.sin(phase).flatten()]
    spatial = torch.stack(modes)                                   # (M, N)
    directions = torch.randn((spatial.shape[0], config.token_dim), generator=g,
                             dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    return (spatial[:, :, None] * directions[:, None, :]).float().to(device)


def synthetic_images(n: int, config: MARToyConfig, *, generator: torch.Generator,
                     device: torch.device | str = "cpu") -> Tensor:
    """``(n, N, d)`` images in image space: ``tanh(sum_m c_m B_m) + 0.1 noise``, ``c_m ~ N(0, 1)``
    per image, ``B_m`` the fixed basis of ``_field_basis``: smooth, non-Gaussian, with a
    token-level noise floor."""
    m = require_int(n, "n", minimum=1)
    dev = torch.device(device)
    basis = _field_basis(config, dev)
    coefficients = torch.randn((m, basis.shape[0]), generator=generator, device=dev)
    field = torch.einsum("bm,mnd->bnd", coefficients, basis)
    noise = torch.randn(field.shape, generator=generator, device=dev)
    return torch.tanh(field) + 0.1 * noise


def _training_batch(config: MARToyConfig, batch: int, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Tokens in order space ``(B, N, d)``, orders ``(B, N)`` and every query ``(B, N)``."""
    images = synthetic_images(batch, config, generator=generator, device=device)
    order = random_orders(batch, config.num_tokens, generator=generator, device=device)
    tokens = torch.gather(images, 1, order[..., None].expand(-1, -1, config.token_dim))
    queries = torch.arange(config.num_tokens, device=device).expand(batch, -1)
    return tokens, order, queries


def _warmup_cosine(optimiser: torch.optim.Optimizer,
                   steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first tenth of the steps, then cosine decay to 0."""
    warmup = max(1, steps // 10)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def _report(progress: Progress | None, what: str, step: int, steps: int, loss: float,
            started: float) -> None:
    if progress is not None and (step + 1) % max(1, steps // 10) == 0:
        progress(f"{what}: step {step + 1}/{steps}, loss {loss:.4f}, "
                 f"{time.perf_counter() - started:.0f} s")


def _fit(parameters: Iterator[nn.Parameter], batch_loss: Callable[[], Tensor], *, steps: int,
         lr: float, what: str, progress: Progress | None) -> None:
    """``steps`` AdamW steps on ``batch_loss()`` (a fresh batch each call), learning rate
    ``_warmup_cosine``."""
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    schedule = _warmup_cosine(optimiser, steps)
    started = time.perf_counter()
    for step in range(steps):
        loss = batch_loss()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        _report(progress, what, step, steps, loss.item(), started)


def train_target(config: MARToyConfig, *, steps: int, batch: int, seed: int,
                 lr: float = 2e-3, device: torch.device | str = "cpu",
                 progress: Progress | None = None) -> MARToy:
    """Train a target ``MARToy`` for ``steps`` AdamW steps of ``batch`` images: every token's
    diffusion loss given the earlier groups of a fresh random order (teacher forcing: one pass
    scores all tokens, as the model is causal over groups)."""
    n_steps = require_int(steps, "steps", minimum=1)
    dev = torch.device(device)
    model = MARToy.seeded(config, seed=seed).to(dev)
    generator = torch.Generator(device=dev).manual_seed(seed)

    def batch_loss() -> Tensor:
        tokens, order, queries = _training_batch(config, batch, generator, dev)
        z = model.transformer(tokens, order, queries)
        return model.head.training_loss(tokens.reshape(-1, config.token_dim),
                                        z.reshape(-1, config.width), generator=generator)

    _fit(model.parameters(), batch_loss, steps=n_steps, lr=lr, what="target",
         progress=progress)
    return model.eval()


def distil_draft(target: MARToy, *, layers: int, steps: int, batch: int, seed: int,
                 lr: float = 1e-3, progress: Progress | None = None) -> MARToy:
    """The draft: ``target``'s first ``layers`` blocks and a copy of its head
    (``MARToy.derived_draft``), its transformer trained for ``steps`` steps to minimise
    ``||z_draft - z_target||^2`` on the training distribution. The head is not trained."""
    n_steps = require_int(steps, "steps", minimum=1)
    dev = target.transformer.position.device
    draft = target.derived_draft(layers).train()
    generator = torch.Generator(device=dev).manual_seed(seed)

    def batch_loss() -> Tensor:
        tokens, order, queries = _training_batch(target.config, batch, generator, dev)
        with torch.no_grad():
            z_target = target.transformer(tokens, order, queries)
        return torch.mean((draft.transformer(tokens, order, queries) - z_target) ** 2)

    _fit(draft.transformer.parameters(), batch_loss, steps=n_steps, lr=lr, what="draft",
         progress=progress)
    return draft.eval()
