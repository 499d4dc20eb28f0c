"""Tiny configurations (16 px, a few channels) so every family trains in well under a second."""

from __future__ import annotations

from typing import Any

import torch

TINY_SIZE = 16

TINY: dict[str, dict[str, Any]] = {
    "dcgan": {"image_size": TINY_SIZE, "z_dim": 8, "g_width": 8, "d_width": 8},
    "vae": {"image_size": TINY_SIZE, "channels": [8, 8, 8], "z_ch": 2},
    "pixel_flow": {"image_size": TINY_SIZE, "base": 8, "mults": [1, 2], "attn_levels": [1], "patch": 2,
                   "sample_steps": 2},
    "latent_flow": {"image_size": TINY_SIZE, "ae_channels": [8, 8], "z_ch": 2, "base": 8, "mults": [1, 2],
                    "attn_levels": [1], "sample_steps": 2},
    "ae_recon": {"image_size": TINY_SIZE, "ae_channels": [8, 8], "z_ch": 2},
    # keeps the shipped autoencoder (its latent space), shrinks the transformer
    "unigendet": {"image_size": TINY_SIZE, "model": {"hidden": 16, "depth": 1, "heads": 2, "vision_patch": 8},
                  "sample_steps": 2},
}


def tiny_images(n: int = 12, size: int = TINY_SIZE, seed: int = 0) -> torch.Tensor:
    """Smooth random uint8 images (low-frequency colour fields plus a little noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    img = (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    return (img * 255).round().to(torch.uint8)


def single_thread():
    """Yield-fixture body: tiny models are dominated by per-op latency, which extra threads only worsen
    on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
