"""DRCT-style hard negatives: real images passed through an autoencoder's encode -> decode.

The fakes keep real content; only the decoder's fingerprint marks them. By default
(`gendet generators train`) ae_recon adopts latent_flow's trained autoencoder, as DRCT
reconstructs with the very autoencoder of the latent generator (so a detector that
learns this fingerprint should transfer to latent_flow). `fit` trains its own copy of
the same architecture, for use on its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from gendet.generation.autoencoder import Autoencoder, train_autoencoder
from gendet.generation.base import Generator
from gendet.generation.latent_flow import AE_CONFIG, build_autoencoder


class AERecon(Generator):
    name = "ae_recon"
    family = "reconstruction"
    description = "real images reconstructed by a KL autoencoder (DRCT-style hard negatives); needs source images"
    default_config: ClassVar[dict[str, Any]] = {"image_size": 64, **AE_CONFIG}
    needs_source = True

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.ae = build_autoencoder(self.config)
        if self.image_size % self.ae.factor:
            raise ValueError(f"image_size {self.image_size} is not divisible by {self.ae.factor}")

    def adopt_autoencoder(self, ae: Autoencoder, origin: str) -> None:
        """Use another generator's trained autoencoder (strict: the architecture must match)."""
        self.ae.load_state_dict(ae.state_dict(), strict=True)
        self.eval()
        self.training_summary = {"adopted_autoencoder_from": origin, "parameters": self.num_parameters}

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        c = self.config
        log = train_autoencoder(self.ae, x, steps, batch_size, float(c["ae_lr"]), float(c["kl_weight"]),
                                progress, "ae_recon")
        return {"loss": log}

    def _noise(self, n: int, generator: torch.Generator) -> None:
        return None

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        return self.ae.reconstruct(source)
