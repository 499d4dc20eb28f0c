"""Toy detectors and images for the explain tests: models whose evidence is known in advance."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn

from gendet.data.preprocess import Preprocess
from gendet.data.real_photos import load_real_crops
from gendet.models.base import Detector


class CornerBrightness(Detector):
    """logit = scale * (mean of the top-left 1/4 x 1/4 corner of the input) + bias: only cell (0, 0) matters."""

    name = "corner_brightness"
    default_config: ClassVar[dict[str, Any]] = {"image_size": 32}

    def __init__(self, scale: float = 3.0, bias: float = 0.5, **config: Any) -> None:
        super().__init__(**config)
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return x[:, :, : h // 4, : w // 4].mean(dim=(1, 2, 3))[:, None]

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.scale * feats[:, 0] + self.bias


class CornerDetail(CornerBrightness):
    """logit = scale * (fine detail |x - 3x3 mean| in the top-left corner) + bias: blurring that cell lowers it."""

    name = "corner_detail"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        detail = (x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)).abs()
        return detail[:, :, : h // 4, : w // 4].mean(dim=(1, 2, 3))[:, None]


class Constant(CornerBrightness):
    """The same logit for every image (so the label cannot explain differences in the text)."""

    name = "constant"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 1, device=x.device)


class WithAttention(Constant):
    """A detector exposing `relevance` (hot bottom-right corner) and a text head, like UniGenDet will."""

    name = "with_attention"

    def __init__(self, declines: bool = False, **config: Any) -> None:
        super().__init__(**config)
        self.declines = declines

    def relevance(self, batch: dict) -> torch.Tensor | None:
        if self.declines:
            return None
        maps = torch.zeros(batch["image"].shape[0], 4, 4)
        maps[:, 3, 3] = 2.0
        maps[:, 0, 0] = 0.5
        return maps

    def generate_explanation(self, batch: dict) -> list[str]:
        return ["smooth skin texture"] * batch["image"].shape[0]


def png_pp(size: int = 64) -> Preprocess:
    """Lossless preprocessing (no JPEG), so synthetic traces reach the cues unchanged."""
    return Preprocess(size=size, resize=True, align="png")


def real_crop(size: int = 64, index: int = 0) -> Image.Image:
    """A crop of a shipped real photo (scene content, camera texture)."""
    crops = load_real_crops("val", size=size, crops_per_photo=1)
    return Image.fromarray(crops[index].permute(1, 2, 0).numpy())


def blurred(img: Image.Image, radius: float = 1.5) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius))


def with_checkerboard(img: Image.Image, amplitude: float = 12.0) -> Image.Image:
    """Adds the period-2 pattern that transposed-convolution up-sampling leaves."""
    arr = np.asarray(img, dtype=np.float32)
    yy, xx = np.mgrid[: arr.shape[0], : arr.shape[1]]
    arr = arr + amplitude * np.where((yy + xx) % 2 == 0, 1.0, -1.0)[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def flat_image(size: int, value: int = 128) -> Image.Image:
    return Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8))
