"""A MAR-style toy generator: speculative generation end to end (docs/mar_toy.md).

A transformer over a grid of continuous tokens, causal over the groups of a random generation
order with MAR's cosine schedule (``model.GroupCausalTransformer``), an MLP diffusion head with a
noisy last step (``model.DiffusionHead``), a target trained on synthetic images and a shallower
draft distilled from it (``training``), and two decoders as pure functions of explicit noise
(``decode``): ``target_generate`` (MAR's loop) and ``speculative_generate`` (draft ``gamma``
groups, verify them in one target pass, reflection residual, discard after the first rejected
group, bonus group), whose outputs follow the same law. ``python -m gpu_impl.mar_toy.bench``
measures the speed-up and runs the two-sample battery (``bench``). GPU-side only: no
``cspd_ref`` twin.
"""

from gpu_impl.mar_toy.decode import (
    GenerationStats,
    MARNoise,
    draw_mar_noise,
    speculative_generate,
    target_generate,
    to_image_space,
)
from gpu_impl.mar_toy.model import DiffusionHead, GroupCausalTransformer, MARToy, MARToyConfig
from gpu_impl.mar_toy.schedule import GroupLayout, cosine_group_sizes, random_orders
from gpu_impl.mar_toy.training import distil_draft, synthetic_images, train_target

__all__ = [
    "DiffusionHead",
    "GenerationStats",
    "GroupCausalTransformer",
    "GroupLayout",
    "MARNoise",
    "MARToy",
    "MARToyConfig",
    "cosine_group_sizes",
    "distil_draft",
    "draw_mar_noise",
    "random_orders",
    "speculative_generate",
    "synthetic_images",
    "target_generate",
    "to_image_space",
    "train_target",
]
