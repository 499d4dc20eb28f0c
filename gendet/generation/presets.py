"""Training presets: per-family steps, batch size and config overrides, in one place.

`tiny` is sized by FLOP count for ~35-45 min on 2 CPU cores in total, and ~1 min to
sample ~400 images per family. ae_recon adopts latent_flow's autoencoder (DRCT: the
hard negatives share the latent generator's decoder), so it costs no training.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "dcgan": {"steps": 450, "batch_size": 32, "config": {"g_width": 32, "d_width": 32}},
        "vae": {"steps": 220, "batch_size": 32, "config": {"channels": [16, 32, 48, 96, 96]}},
        "pixel_flow": {"steps": 450, "batch_size": 32, "config": {}},
        "latent_flow": {"steps": 430, "batch_size": 16, "config": {"ae_fraction": 0.42, "flow_batch_mult": 4}},
        "ae_recon": {"steps": 0, "batch_size": 16, "config": {}, "adopt_autoencoder_from": "latent_flow"},
    },
}


def get_preset(name: str) -> dict[str, dict[str, Any]]:
    if name not in PRESETS:
        raise KeyError(f"unknown generator preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
