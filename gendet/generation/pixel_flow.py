"""Pixel-space rectified flow with a small U-Net (EMA weights), sampled with Euler or Heun.

The U-Net works on 4x4 pixel patches folded into 48 channels. Predicting the velocity of such
high-dimensional patches directly fails with a narrow network (the noise does not fit through
it; Li & He 2025, "Back to Basics: Let Denoising Generative Models Denoise"), so by default the
network predicts the clean image x0 and the velocity follows as v = (x_t - x0_hat) / t. The
loss is still the flow-matching MSE on v = eps - x0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from gendet.generation.base import Generator
from gendet.generation.flow import flow_matching_loss, sample_ode
from gendet.generation.training import LossLog, ema_model, progress_bar, random_batch, warmup_cosine
from gendet.generation.unet import UNet


def velocity_fn(net: UNet, prediction: str, t_min: float = 0.05) -> Callable[[torch.Tensor, torch.Tensor],
                                                                              torch.Tensor]:
    """The velocity field of `net`: its output directly ("v") or from a clean-image estimate ("x")."""
    if prediction == "v":
        return net
    if prediction != "x":
        raise ValueError(f"prediction must be 'v' or 'x', got {prediction!r}")

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x_t = (1-t) x0 + t eps  =>  v = eps - x0 = (x_t - x0) / t; t is clamped away from 0.
        return (x - net(x, t)) / t.clamp_min(t_min).view(-1, *([1] * (x.ndim - 1)))

    return velocity


def train_flow(net: UNet, draw_batch: Any, steps: int, lr: float, ema_decay: float, progress: bool,
               desc: str, prediction: str = "v") -> dict:
    """Flow-matching training loop shared by pixel and latent flows; leaves EMA weights in `net`."""
    model = velocity_fn(net, prediction)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    sched = warmup_cosine(opt, steps, warmup=50, final_frac=0.2)
    ema = ema_model(net, ema_decay)
    log = LossLog(steps)
    bar = progress_bar(steps, desc, progress)
    for step in range(steps):
        loss = flow_matching_loss(model, draw_batch())
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
    description = "pixel-space rectified flow, U-Net on 4x4 pixel patches, x-prediction (JiT-style), EMA, Euler"
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 64, "base": 48, "mults": [1, 2, 2], "blocks": 1, "attn_levels": [1, 2], "patch": 4,
        "dropout": 0.0, "lr": 6e-4, "ema_decay": 0.998, "prediction": "x",
        "sample_steps": 10, "sampler": "euler", "shift": 1.0,
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.net = flow_unet(self.config, 3)

    def init_weights(self) -> None:
        self.net.init_weights()

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        c = self.config
        loss = train_flow(self.net, lambda: random_batch(x, batch_size), steps, float(c["lr"]),
                          float(c["ema_decay"]), progress, "pixel_flow", str(c["prediction"]))
        return {"loss": loss}

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        s = self.image_size
        return torch.randn(n, 3, s, s, generator=generator)

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        model = velocity_fn(self.net, str(c["prediction"]))
        return sample_ode(model, noise, int(c["sample_steps"]), str(c["sampler"]), float(c["shift"]))
