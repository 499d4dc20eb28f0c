"""The generator contract: small image generators gendet trains itself (issue 4).

A generator is an nn.Module with `fit(images, ...)` (train from scratch on real
uint8 crops, deterministic for a seed on CPU) and `generate(n, seed, ...)`
(uint8 images). Only the weights needed to generate are module state, so
`state_dict()` is exactly what is saved; training-only parts (a GAN's
discriminator, EMA copies, optimisers) live inside `_fit`.

Subclasses implement `_fit`, `_noise` and `_decode`; the base class handles
validation, seeding, uint8 <-> [-1, 1] conversion and batching.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch
from torch import nn

FAMILIES = ("gan", "vae", "pixel_diffusion", "latent_flow", "reconstruction", "unified")


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) in [0,255] -> float32 in [-1,1]."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1,1] -> uint8, rounding to nearest (clamped first)."""
    return x.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)


def check_images(images: torch.Tensor, size: int, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"{what} must be a uint8 tensor, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (size, size):
        raise ValueError(f"{what} must have shape (N, 3, {size}, {size}), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{what} is empty")


class Generator(nn.Module):
    """Base class. Config keys are fixed by `default_config`; unknown keys are an error."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_config: ClassVar[dict[str, Any]] = {"image_size": 64}
    needs_source: ClassVar[bool] = False

    def __init__(self, **config: Any) -> None:
        super().__init__()
        unknown = sorted(set(config) - set(self.default_config))
        if unknown:
            raise ValueError(f"{self.name}: unknown config keys {unknown}; known: {sorted(self.default_config)}")
        self.config: dict[str, Any] = {**self.default_config, **config}
        self.training_summary: dict[str, Any] = {}

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- training -------------------------------------------------------------------------
    def reset_weights(self) -> None:
        """Re-initialise every layer from the current RNG state (so `fit` depends only on its seed)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.init_weights()

    def init_weights(self) -> None:
        """Family-specific initialisation after the layers' defaults (e.g. zero-init output convs)."""

    def fit(self, images: torch.Tensor, steps: int, batch_size: int, seed: int, progress: bool = True) -> dict:
        """Train from scratch on real uint8 crops; returns a JSON-able summary."""
        check_images(images, self.image_size, "training images")
        if steps < 0 or batch_size < 1:
            raise ValueError(f"need steps >= 0 and batch_size >= 1, got {steps}, {batch_size}")
        x = to_float(images)
        start = time.perf_counter()
        # fork_rng: training consumes the global RNG; the caller's stream is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.reset_weights()
            self.train()
            log = self._fit(x, int(steps), int(batch_size), progress)
        self.eval()
        self.training_summary = {
            "seed": int(seed), "steps": int(steps), "batch_size": int(batch_size),
            "n_images": int(images.shape[0]), "seconds": round(time.perf_counter() - start, 2),
            "parameters": self.num_parameters, **log,
        }
        return self.training_summary

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        raise NotImplementedError

    # ---- sampling -------------------------------------------------------------------------
    def generate(
        self, n: int, seed: int, batch_size: int = 64, source: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n uint8 images (n,3,H,W); deterministic for a seed. Reconstruction needs `source`."""
        if n < 0 or batch_size < 1:
            raise ValueError(f"need n >= 0 and batch_size >= 1, got {n}, {batch_size}")
        src = None
        if self.needs_source:
            if source is None:
                raise ValueError(f"{self.name} reconstructs real images: pass source= uint8 (n,3,H,W)")
            check_images(source, self.image_size, "source")
            if source.shape[0] != n:
                raise ValueError(f"source has {source.shape[0]} images but n={n}")
            src = to_float(source)
        elif source is not None:
            raise ValueError(f"{self.name} samples from noise and takes no source images")
        s = self.image_size
        if n == 0:
            return torch.zeros(0, 3, s, s, dtype=torch.uint8)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                # All noise is drawn up front from one seeded generator: outputs do not depend on
                # the global RNG, and image i does not depend on batch_size.
                noise = self._noise(n, torch.Generator().manual_seed(int(seed)))
                outs = []
                for i in range(0, n, batch_size):
                    nz = None if noise is None else noise[i:i + batch_size]
                    sb = None if src is None else src[i:i + batch_size]
                    outs.append(to_uint8(self._decode(nz, sb)))
                return torch.cat(outs)
        finally:
            self.train(was_training)

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        raise NotImplementedError

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        """Float images in [-1,1] for one batch of noise (or of source images)."""
        raise NotImplementedError
