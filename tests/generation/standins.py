"""Stand-in generators for fast tests: real Generator subclasses with trivial decoders."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gendet.generation.base import Generator

SIZE = 32


class SmoothNoise(Generator):
    """Stand-in noise generator: low-frequency colour noise (compresses very differently from photos)."""

    name = "smooth_noise"
    family = "test"
    default_config: ClassVar[dict[str, Any]] = {"image_size": SIZE}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.gain = nn.Parameter(torch.tensor(0.8))

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, 3, SIZE // 8, SIZE // 8, generator=generator)

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        return torch.tanh(F.interpolate(noise, size=(SIZE, SIZE), mode="bilinear") * self.gain)


class BlurRecon(Generator):
    """Stand-in reconstruction generator: a blurred copy of the source image."""

    name = "blur_recon"
    family = "test"
    default_config: ClassVar[dict[str, Any]] = {"image_size": SIZE}
    needs_source = True

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.kernel = nn.Parameter(torch.full((3, 1, 3, 3), 1 / 9))

    def _noise(self, n: int, generator: torch.Generator) -> None:
        return None

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(F.pad(source, (1, 1, 1, 1), mode="replicate"), self.kernel, groups=3)
