"""UniGenDet size presets. Larger presets change numbers only, never the mechanisms.

tiny  : ~3.5 M parameters, 64 px, trains on 2 CPU cores in minutes.
small : ~45 M, 128 px (one GPU).
base  : ~350 M, 256 px (GPU; the reference system is a 7 B model at 1024 px).
The autoencoder (latent path) is the latent_flow generator's KL autoencoder
(4x down, 4 channels); larger presets can point `ae_channels` at a wider one.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"image_size": 64, "hidden": 128, "depth": 6, "heads": 4, "vision_patch": 8, "latent_patch": 2},
    "small": {"image_size": 128, "hidden": 384, "depth": 12, "heads": 6, "vision_patch": 8, "latent_patch": 2},
    "base": {"image_size": 256, "hidden": 768, "depth": 24, "heads": 12, "vision_patch": 16, "latent_patch": 2},
}

# Condition dropout of the reference GDUF recipe (SPEC): text/class 0.1, latent 0.3, vision 0.3.
COND_DROPOUT: dict[str, float] = {"text": 0.1, "latent": 0.3, "vision": 0.3}


def diga_layer(depth: int, layer: int) -> int:
    """The layer k whose states DIGA aligns; 0 means ~30% of the depth (REPA's choice), at least 1."""
    if layer:
        if not 1 <= layer <= depth:
            raise ValueError(f"diga_layer must be in 1..{depth}, got {layer}")
        return layer
    return max(1, round(0.3 * depth))
