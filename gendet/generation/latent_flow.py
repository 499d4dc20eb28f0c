"""Latent rectified flow (LDM-style): an autoencoder trained here, then flow matching on its
normalised latents with a small U-Net; samples are decoded by the autoencoder.

`fit` spends `ae_fraction` of the steps on the autoencoder and the rest on the flow.
The per-channel latent mean/std are buffers, saved with the weights.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from gendet.generation.autoencoder import Autoencoder, train_autoencoder
from gendet.generation.base import Generator
from gendet.generation.flow import sample_ode
from gendet.generation.pixel_flow import flow_unet, train_flow, velocity_fn

# One autoencoder configuration for latent_flow and ae_recon, so ae_recon can adopt latent_flow's.
AE_CONFIG: dict[str, Any] = {"ae_channels": [24, 48, 96], "z_ch": 4, "ae_blocks": 1, "ae_lr": 1e-3,
                             "kl_weight": 1e-3}


def build_autoencoder(c: dict[str, Any]) -> Autoencoder:
    return Autoencoder(tuple(c["ae_channels"]), int(c["z_ch"]), int(c["ae_blocks"]), kl=True)


class LatentFlow(Generator):
    name = "latent_flow"
    family = "latent_flow"
    description = "rectified flow in the latent space of a KL autoencoder (4x down) trained here, EMA, Heun sampler"
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 64, **AE_CONFIG, "ae_fraction": 0.4,
        "base": 48, "mults": [1, 2, 2], "blocks": 1, "attn_levels": [1, 2], "patch": 1, "dropout": 0.0,
        "lr": 6e-4, "ema_decay": 0.998, "prediction": "v", "flow_batch_mult": 2,
        "sample_steps": 5, "sampler": "heun", "shift": 1.0,
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.ae = build_autoencoder(self.config)
        if self.image_size % self.ae.factor:
            raise ValueError(f"image_size {self.image_size} is not divisible by {self.ae.factor}")
        self.flow = flow_unet(self.config, int(self.config["z_ch"]))
        z = int(self.config["z_ch"])
        self.register_buffer("latent_mean", torch.zeros(1, z, 1, 1))
        self.register_buffer("latent_std", torch.ones(1, z, 1, 1))

    def init_weights(self) -> None:
        self.flow.init_weights()
        self.latent_mean.zero_()
        self.latent_std.fill_(1.0)

    @torch.no_grad()
    def encode_dataset(self, x: torch.Tensor, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, std) of every image and of its mirror image."""
        self.ae.eval()
        means, stds = [], []
        for xs in (x, x.flip(-1)):
            for i in range(0, xs.shape[0], batch_size):
                m, lv = self.ae.encode(xs[i:i + batch_size])
                means.append(m)
                stds.append((0.5 * lv).exp())
        return torch.cat(means), torch.cat(stds)

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        c = self.config
        ae_steps = round(steps * float(c["ae_fraction"]))
        flow_steps = steps - ae_steps
        ae_log = train_autoencoder(self.ae, x, ae_steps, batch_size, float(c["ae_lr"]), float(c["kl_weight"]),
                                   progress, "latent_flow/autoencoder")
        mean, std = self.encode_dataset(x)
        self.latent_mean.copy_(mean.mean(dim=(0, 2, 3), keepdim=True))
        # std of posterior *samples* (spread of the means plus the posterior noise), as LDM scales latents
        var = mean.var(dim=(0, 2, 3), keepdim=True) + std.pow(2).mean(dim=(0, 2, 3), keepdim=True)
        self.latent_std.copy_(var.sqrt().clamp_min(1e-4))
        fb = batch_size * int(c["flow_batch_mult"])

        def draw() -> torch.Tensor:
            idx = torch.randint(0, mean.shape[0], (fb,))
            z = mean[idx] + std[idx] * torch.randn_like(std[idx])  # a posterior sample, as in LDM
            return (z - self.latent_mean) / self.latent_std

        flow_log = train_flow(self.flow, draw, flow_steps, float(c["lr"]), float(c["ema_decay"]), progress,
                              "latent_flow/flow", str(c["prediction"]))
        return {"ae_steps": ae_steps, "flow_steps": flow_steps, "flow_batch_size": fb,
                "autoencoder_loss": ae_log, "flow_loss": flow_log}

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        s = self.image_size // self.ae.factor
        return torch.randn(n, int(self.config["z_ch"]), s, s, generator=generator)

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        model = velocity_fn(self.flow, str(c["prediction"]))
        z = sample_ode(model, noise, int(c["sample_steps"]), str(c["sampler"]), float(c["shift"]))
        return self.ae.decode(z * self.latent_std + self.latent_mean)
