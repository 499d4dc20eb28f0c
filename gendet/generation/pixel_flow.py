"""Pixel-space rectified flow with a small U-Net (EMA weights), sampled with Euler or Heun."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from gendet.generation.base import Generator
from gendet.generation.flow import flow_matching_loss, sample_ode
from gendet.generation.training import LossLog, ema_model, progress_bar, random_batch, warmup_cosine
from gendet.generation.unet import UNet


def train_flow(net: UNet, draw_batch: Any, steps: int, lr: float, ema_decay: float, progress: bool,
               desc: str) -> dict:
    """Flow-matching training loop shared by pixel and latent flows; leaves EMA weights in `net`."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    sched = warmup_cosine(opt, steps, warmup=50, final_frac=0.2)
    ema = ema_model(net, ema_decay)
    log = LossLog(steps)
    bar = progress_bar(steps, desc, progress)
    for step in range(steps):
        loss = flow_matching_loss(net, draw_batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update_parameters(net)
        snap = log.add(step, loss=loss.item())
        if snap:
            bar.set_postfix(loss=snap["loss"])
        bar.update(1)
    bar.close()
    if steps > 0:
        net.load_state_dict(ema.module.state_dict())
    return log.summary()


def flow_unet(c: dict[str, Any], in_ch: int) -> UNet:
    return UNet(in_ch, base=int(c["base"]), mults=tuple(c["mults"]), blocks=int(c["blocks"]),
                attn_levels=tuple(c["attn_levels"]), patch=int(c["patch"]), dropout=float(c["dropout"]))


class PixelFlow(Generator):
    name = "pixel_flow"
    family = "pixel_diffusion"
    description = "pixel-space rectified flow, small U-Net on 4x4-folded pixels (16x16 grid), EMA, Euler sampler"
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 64, "base": 48, "mults": [1, 2, 2], "blocks": 1, "attn_levels": [1, 2], "patch": 4,
        "dropout": 0.0, "lr": 6e-4, "ema_decay": 0.998,
        "sample_steps": 8, "sampler": "euler", "shift": 1.0,
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.net = flow_unet(self.config, 3)

    def init_weights(self) -> None:
        self.net.init_weights()

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        c = self.config
        loss = train_flow(self.net, lambda: random_batch(x, batch_size), steps, float(c["lr"]),
                          float(c["ema_decay"]), progress, "pixel_flow")
        return {"loss": loss}

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        s = self.image_size
        return torch.randn(n, 3, s, s, generator=generator)

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        return sample_ode(self.net, noise, int(c["sample_steps"]), str(c["sampler"]), float(c["shift"]))
