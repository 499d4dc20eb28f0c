"""Where the model looked: a relevance heat map from the detector's own internals.

A detector that can say where it attends (a `relevance(batch) -> (B, h, w)` method,
e.g. attention roll-out, or gamma's predicted mask) is asked first; any other detector
gets |input x gradient| of its logit, summed over channels and smoothed. Either way the
map is upsampled to the model input size and scaled to [0, 1] per image (a detector with
`relevance_is_probability = True` keeps its map as is), and the source is recorded (the
detector's `relevance_source`, default "attention", or "gradient").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gendet.models.base import Detector
from gendet.models.hooks import Relevance

ATTENTION = "attention"
GRADIENT = "gradient"


def smoothing_kernel(size: int) -> int:
    """Odd average-pool width for a `size` px input: ~1/16 of the side, at least 3.

    Why: raw input x gradient is speckled at pixel scale (ReLU gating, strided convs);
    a window of a few pixels turns it into regions a person can read.
    """
    k = max(3, size // 16)
    return k if k % 2 == 1 else k + 1


def gradient_relevance(detector: Detector, x: torch.Tensor) -> torch.Tensor:
    """|x * d logit / d x| summed over channels and smoothed: (B, H, W), non-negative, unnormalised.

    Uses autograd.grad so no parameter's .grad is touched (the detector may be in use elsewhere).
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logit = detector({"image": x})["logit"].reshape(-1)
        # A logit that ignores its input (constant, or cut off from autograd) has zero relevance everywhere.
        grad = torch.autograd.grad(logit.sum(), x, allow_unused=True)[0] if logit.requires_grad else None
    if grad is None:
        grad = torch.zeros_like(x)
    rel = (x.detach() * grad).abs().sum(dim=1, keepdim=True)
    k = smoothing_kernel(int(x.shape[-1]))
    rel = F.avg_pool2d(rel, kernel_size=k, stride=1, padding=k // 2, count_include_pad=False)
    return rel[:, 0]


def model_relevance(detector: Detector, batch: dict[str, Any]) -> torch.Tensor | None:
    """The detector's own `relevance(batch)` maps (B, h, w), or None when it has none or declines."""
    if not isinstance(detector, Relevance):
        return None
    maps = detector.relevance(batch)  # no no_grad here: attention maps weighted by gradients need autograd
    if maps is None:
        return None
    maps = torch.as_tensor(maps).detach().float()
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise ValueError(f"{type(detector).__name__}.relevance() must return (B, h, w) maps, got {tuple(maps.shape)}")
    return maps


def normalise_maps(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(B, h, w) non-negative maps -> float32 (B, H, W) in [0, 1] (divided by each map's max; all-zero stays 0)."""
    maps = maps.detach().float().clamp_min(0.0).nan_to_num(0.0)
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].clamp_min(0.0)
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (maps / peak).cpu().numpy().astype(np.float32)


def relevance_maps(detector: Detector, x: torch.Tensor) -> tuple[np.ndarray, str]:
    """(B, H, W) relevance in [0, 1] for the model input `x` and its source ("attention" or "gradient")."""
    size = (int(x.shape[-2]), int(x.shape[-1]))
    maps = model_relevance(detector, {"image": x})
    if maps is not None:
        if detector.relevance_is_probability:
            # a probability map (gamma's predicted mask) is shown as is: scaling it to its maximum
            # would paint a clean image's 0.02 as hot as a manipulated region's 0.98
            up = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            return up.clamp(0.0, 1.0).nan_to_num(0.0).cpu().numpy().astype(np.float32), detector.relevance_source
        return normalise_maps(maps, size), detector.relevance_source
    return normalise_maps(gradient_relevance(detector, x), size), GRADIENT
