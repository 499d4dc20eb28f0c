"""A convolutional VAE (Kingma & Welling 2014) sampled from its N(0, I) prior.

Gaussian decoder with a fixed variance: the ELBO's squared error averages over
plausible images, which gives the family its characteristic blur. The latent is a
small grid (image_size / 16 squared x z_ch), sampled from the prior at generation.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from gendet.generation.autoencoder import Autoencoder, kl_divergence
from gendet.generation.base import Generator
from gendet.generation.training import LossLog, progress_bar, random_batch, warmup_cosine


class VAE(Generator):
    name = "vae"
    family = "vae"
    description = "convolutional VAE (Gaussian decoder, blurry), samples from the prior"
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 64, "channels": [16, 32, 48, 96, 96], "z_ch": 8, "blocks": 1,
        "lr": 1e-3, "sigma": 0.1, "kl_warmup": 0.2,
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        c = self.config
        self.ae = Autoencoder(tuple(c["channels"]), int(c["z_ch"]), int(c["blocks"]), kl=True)
        if self.image_size % self.ae.factor:
            raise ValueError(f"image_size {self.image_size} is not divisible by {self.ae.factor}")

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        c = self.config
        opt = torch.optim.AdamW(self.ae.parameters(), lr=float(c["lr"]), betas=(0.9, 0.99), weight_decay=0.0)
        sched = warmup_cosine(opt, steps, warmup=30)
        warm = max(1, int(float(c["kl_warmup"]) * steps))
        sigma2 = float(c["sigma"]) ** 2
        log = LossLog(steps)
        bar = progress_bar(steps, "vae", progress)
        for step in range(steps):
            b = random_batch(x, batch_size)
            mean, logvar = self.ae.encode(b)
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
            rec = self.ae.decode(z)
            # negative ELBO per pixel: ||x - x_hat||^2 / (2 sigma^2) + KL, both divided by the pixel count
            nll = F.mse_loss(rec, b, reduction="none").flatten(1).sum(1).mean() / (2 * sigma2)
            kl = kl_divergence(mean, logvar).mean()
            beta = min(1.0, (step + 1) / warm)  # KL annealing avoids an early posterior collapse
            loss = (nll + beta * kl) / b[0].numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.ae.parameters(), 1.0)
            opt.step()
            sched.step()
            snap = log.add(step, loss=loss.item(), mse=F.mse_loss(rec, b).item(), kl=kl.item())
            if snap:
                bar.set_postfix(mse=snap["mse"], kl=snap["kl"])
            bar.update(1)
        bar.close()
        return {"loss": log.summary()}

    def _latent_shape(self) -> tuple[int, int, int]:
        s = self.image_size // self.ae.factor
        return (int(self.config["z_ch"]), s, s)

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, *self._latent_shape(), generator=generator)

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        return self.ae.decode(noise)
