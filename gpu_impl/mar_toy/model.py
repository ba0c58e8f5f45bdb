"""The MAR-style toy model: a transformer causal over groups and an MLP diffusion head
(docs/mar_toy.md §2).

**Transformer** (``GroupCausalTransformer``). Two streams over one sequence, XLNet/RandAR style:
``[BOS, c_0 .. c_{N-1}, q_1 .. q_Q]``. The content token ``c_k = W x_k + pos[order_k]`` carries the
token at order position ``k``; a query token ``q = mask + pos[order_k]`` carries only where a
token goes. Content tokens of group ``g`` attend to BOS and to content of groups ``<= g``; a
query for a position of group ``g`` attends to BOS, to content of groups ``< g`` and to itself,
and nothing attends to queries. So the output at a query depends on the tokens of earlier groups
only: one pass over a sequence holding drafted groups ``g .. g+gamma-1`` scores every drafted
group given the draft's earlier groups, and yields the next group's conditionals (docs/algorithms.md
§5.2). Tokens not generated yet are zeros; they are visible only to later
groups, which the decoders never read.

**Diffusion head** (``DiffusionHead``). DDPM with ``T`` steps, epsilon prediction conditioned on
the query output ``z``: ``x_{t-1} = m(x_t, t, z) + sigma_t eps_t``, ``m = (x_t - beta_t /
sqrt(1 - abar_t) eps_hat(x_t, t, z)) / sqrt(alpha_t)``, ``sigma_t = sqrt(beta_t)``, the last step
noisy too (``sigma_1 > 0``). ``sigma_t`` does not depend on ``z``, so a draft and a target sharing
the schedule have equal last-step scales: the reflection residual applies (docs/algorithms.md
§3.3, §4.2).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from gpu_impl.mar_toy.schedule import GroupLayout

__all__ = ["DiffusionHead", "GroupCausalTransformer", "MARToy", "MARToyConfig"]


@dataclass(frozen=True)
class MARToyConfig:
    """Sizes of the toy. Defaults are CPU-sized (docs/mar_toy.md §2)."""

    grid: int = 8
    token_dim: int = 16
    num_groups: int = 32
    width: int = 64
    heads: int = 4
    layers: int = 8
    head_width: int = 128
    head_blocks: int = 3
    diffusion_steps: int = 8
    beta_first: float = 0.04
    beta_last: float = 0.6

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def layout(self) -> GroupLayout:
        return GroupLayout.cosine(self.num_tokens, self.num_groups)


class _Block(nn.Module):
    """Pre-LayerNorm transformer block with a boolean attention mask (True = may attend)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        b, length, width = h.shape
        qkv = self.qkv(self.norm1(h)).view(b, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attended = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = h + self.proj(attended.transpose(1, 2).reshape(b, length, width))
        return h + self.mlp(self.norm2(h))


class GroupCausalTransformer(nn.Module):
    """Maps the tokens of a batch of sequences (in order space) to the conditioning ``z`` of the
    requested query positions, causally over groups (module docstring)."""

    group_of: Tensor

    def __init__(self, config: MARToyConfig, layers: int | None = None) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.token_in = nn.Linear(config.token_dim, w)
        self.position = nn.Parameter(0.02 * torch.randn(config.num_tokens, w))
        self.bos = nn.Parameter(0.02 * torch.randn(w))
        self.query = nn.Parameter(0.02 * torch.randn(w))
        self.blocks = nn.ModuleList(
            _Block(w, config.heads) for _ in range(config.layers if layers is None else layers))
        self.norm_out = nn.LayerNorm(w)
        self.register_buffer("group_of", config.layout().group_of(), persistent=False)

    def truncated(self, layers: int) -> GroupCausalTransformer:
        """A copy keeping the embeddings, the first ``layers`` blocks and the output norm (the
        toy's draft before distillation)."""
        if not 1 <= layers <= len(self.blocks):
            raise ValueError(f"layers: expected 1 .. {len(self.blocks)}, got {layers}")
        with torch.random.fork_rng(devices=[]):  # its initial weights are all overwritten
            out = GroupCausalTransformer(self.config, layers).to(self.position.device,
                                                                 self.position.dtype)
        state = {k: v for k, v in self.state_dict().items()
                 if not k.startswith("blocks.") or int(k.split(".")[1]) < layers}
        out.load_state_dict(state)
        return out

    def attention_mask(self, query_positions: Tensor) -> Tensor:
        """``(B, 1, L, L)`` bool for ``L = 1 + N + Q``; ``query_positions`` ``(B, Q)``."""
        b, q = query_positions.shape
        n = self.config.num_tokens
        groups = self.group_of
        dev = groups.device
        length = 1 + n + q
        mask = torch.zeros((b, length, length), dtype=torch.bool, device=dev)
        mask[:, :, 0] = True
        mask[:, 1:n + 1, 1:n + 1] = groups[:, None] >= groups[None, :]
        query_groups = groups[query_positions]
        mask[:, n + 1:, 1:n + 1] = query_groups[:, :, None] > groups[None, None, :]
        eye = torch.arange(q, device=dev)
        mask[:, n + 1 + eye, n + 1 + eye] = True
        return mask[:, None]

    def forward(self, tokens: Tensor, order: Tensor, query_positions: Tensor) -> Tensor:
        """``tokens`` ``(B, N, d)`` in order space, ``order`` ``(B, N)`` image positions,
        ``query_positions`` ``(B, Q)`` order positions; returns ``z`` ``(B, Q, width)``."""
        b = tokens.shape[0]
        position = self.position[order]
        content = self.token_in(tokens) + position
        queries = self.query + torch.gather(
            position, 1, query_positions[..., None].expand(-1, -1, position.shape[-1]))
        h = torch.cat([self.bos.expand(b, 1, -1), content, queries], dim=1)
        mask = self.attention_mask(query_positions)
        for block in self.blocks:
            h = block(h, mask)
        return self.norm_out(h[:, 1 + self.config.num_tokens:])


class _ResidualMLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, width))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class DiffusionHead(nn.Module):
    """The per-token DDPM head (module docstring). Time steps are ``t = 1 .. T``."""

    sqrt_alpha_bar: Tensor
    sqrt_one_minus_alpha_bar: Tensor
    inv_sqrt_alpha: Tensor
    eps_coefficient: Tensor
    sigma: Tensor

    def __init__(self, config: MARToyConfig) -> None:
        super().__init__()
        self.num_steps = config.diffusion_steps
        w = config.head_width
        self.x_in = nn.Linear(config.token_dim, w)
        self.z_in = nn.Linear(config.width, w)
        self.time = nn.Parameter(0.02 * torch.randn(config.diffusion_steps, w))
        self.blocks = nn.Sequential(*(_ResidualMLP(w) for _ in range(config.head_blocks)))
        self.out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, config.token_dim))
        betas = torch.linspace(config.beta_first, config.beta_last, config.diffusion_steps,
                               dtype=torch.float64)
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, 0)
        self.register_buffer("sqrt_alpha_bar", alpha_bars.sqrt().float())
        self.register_buffer("sqrt_one_minus_alpha_bar", (1 - alpha_bars).sqrt().float())
        self.register_buffer("inv_sqrt_alpha", alphas.rsqrt().float())
        self.register_buffer("eps_coefficient", (betas / (1 - alpha_bars).sqrt()).float())
        self.register_buffer("sigma", betas.sqrt().float())

    def predict_noise(self, x_t: Tensor, t: int | Tensor, z: Tensor) -> Tensor:
        """``eps_hat(x_t, t, z)``; ``t`` an int or a ``(M,)`` tensor of steps in 1 .. T."""
        h = self.x_in(x_t) + self.z_in(z) + self.time[t - 1]
        return self.out(self.blocks(h))

    def step_mean(self, x_t: Tensor, t: int, z: Tensor) -> Tensor:
        """``m(x_t, t, z)``, the mean of ``x_{t-1}``."""
        eps_hat = self.predict_noise(x_t, t, z)
        return (x_t - self.eps_coefficient[t - 1] * eps_hat) * self.inv_sqrt_alpha[t - 1]

    def last_step(self, x_T: Tensor, shared_eps: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Run ``t = T .. 2`` with ``shared_eps`` ``(T - 1, M, d)`` (``eps_T .. eps_2``) and
        return the last step's Gaussian ``(m(x_1, 1, z), sigma_1)`` (``(M, d)``, ``0-d``).
        Pure tensor code, no synchronisation: ``torch.compile``-able."""
        x = x_T
        for i in range(self.num_steps - 1):
            t = self.num_steps - i
            x = self.step_mean(x, t, z) + self.sigma[t - 1] * shared_eps[i]
        return self.step_mean(x, 1, z), self.sigma[0]

    def training_loss(self, x0: Tensor, z: Tensor, *, generator: torch.Generator) -> Tensor:
        """Mean squared error of ``eps_hat`` at a uniform step ``t`` per row (DDPM's simple
        loss); ``x0`` ``(M, d)``, ``z`` ``(M, width)``."""
        m = x0.shape[0]
        t = torch.randint(1, self.num_steps + 1, (m,), generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = (self.sqrt_alpha_bar[t - 1, None] * x0
               + self.sqrt_one_minus_alpha_bar[t - 1, None] * eps)
        return functional.mse_loss(self.predict_noise(x_t, t, z), eps)


class MARToy(nn.Module):
    """A transformer and a diffusion head: one model of the draft/target pair."""

    def __init__(self, config: MARToyConfig, transformer: GroupCausalTransformer | None = None,
                 head: DiffusionHead | None = None) -> None:
        super().__init__()
        self.config = config
        self.transformer = GroupCausalTransformer(config) if transformer is None else transformer
        self.head = DiffusionHead(config) if head is None else head
        self._compiled_last_step: Callable[..., tuple[Tensor, Tensor]] | None = None

    def compile_head(self, enabled: bool = True) -> MARToy:
        """Run the head's denoising loop (``DiffusionHead.last_step``) compiled with
        ``torch.compile(dynamic=True)`` (fused kernels; shapes vary with the group sizes) when
        ``enabled``, eagerly otherwise. Returns ``self``."""
        self._compiled_last_step = (torch.compile(self.head.last_step, dynamic=True)
                                    if enabled else None)
        return self

    def last_step(self, x_T: Tensor, shared_eps: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """``DiffusionHead.last_step``, compiled if ``compile_head`` asked for it."""
        run = self._compiled_last_step or self.head.last_step
        return run(x_T, shared_eps, z)

    @classmethod
    def seeded(cls, config: MARToyConfig, *, seed: int) -> MARToy:
        """A freshly initialised model whose weights depend only on ``seed``: built under
        ``torch.random.fork_rng`` with ``torch.manual_seed(seed)``, so the global generator is
        neither read nor changed (``nn.Linear`` initialises from it)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(config)

    def derived_draft(self, layers: int) -> MARToy:
        """A draft built from this model: its first ``layers`` transformer blocks (to be
        distilled, ``gpu_impl.mar_toy.training.distil_draft``) and a copy of its head."""
        return MARToy(self.config, self.transformer.truncated(layers), copy.deepcopy(self.head))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
