"""UniGenDet as a generator family of the local benchmark.

`UnifiedGenerator.from_checkpoint(DIR)` wraps a GDUF/DIGA-trained UniGenDet checkpoint, so
`gendet bench --preset tiny --unigendet DIR` adds its images as one more GenImage subset.
`fit` (the Generator contract: real images only) trains the generation path alone — flow
matching through the generation expert on the autoencoder's latents, which is the "w/o GDUF"
generator; the joint model comes from `gendet train --model unigendet`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch

from gendet.generation.base import Generator
from gendet.generation.training import LossLog, ema_model, progress_bar, random_batch, warmup_cosine
from gendet.models.unigendet import UniGenDet


class UnifiedGenerator(Generator):
    name = "unigendet"
    family = "unified"
    description = ("UniGenDet's generation path: rectified flow through the mixture-of-transformers' generation "
                   "expert in its autoencoder's latent space (classifier-free guidance)")
    default_config: ClassVar[dict[str, Any]] = {"image_size": 64, "model": {}, "sample_steps": 12, "cfg_scale": 1.5,
                                                "lr": 3e-4, "ema_decay": 0.995}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.model = UniGenDet(**{**self.config["model"], "image_size": self.image_size})
        self.config["model"] = dict(self.model.config)

    @classmethod
    def from_checkpoint(cls, ckpt_dir: str | os.PathLike) -> UnifiedGenerator:
        from gendet.models.checkpoint import load_checkpoint

        model, _ = load_checkpoint(ckpt_dir)
        if not isinstance(model, UniGenDet):
            raise ValueError(f"{ckpt_dir} holds a {model.name!r} model, not unigendet: it cannot generate")
        gen = cls(image_size=int(model.config["image_size"]), model=dict(model.config))
        gen.model.load_state_dict(model.state_dict(), strict=True)
        return gen.eval()

    def reset_weights(self) -> None:
        """Fresh transformer, but the trained autoencoder stays: it defines the latent space."""
        from gendet.generation.registry import load_generator
        from gendet.models.unigendet.build import default_autoencoder_path

        self.model = UniGenDet(**self.config["model"])
        lf = load_generator(default_autoencoder_path())
        self.model.load_autoencoder(lf.ae, lf.latent_mean, lf.latent_std)

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        m = self.model
        params = [p for p in m.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=float(self.config["lr"]), betas=(0.9, 0.95), weight_decay=0.01)
        sched = warmup_cosine(opt, steps, warmup=max(1, steps // 20))
        ema = ema_model(m, float(self.config["ema_decay"]))
        log = LossLog(steps)
        bar = progress_bar(steps, "unigendet/flow", progress)
        p_drop = float(m.config["cond_dropout"]["text"])
        for step in range(steps):
            b = random_batch(x, batch_size)
            classes = torch.zeros(b.shape[0], dtype=torch.long)
            classes = classes.masked_fill(torch.rand(b.shape[0]) < p_drop, m.null_class())
            loss, _ = m.flow_loss(b, classes)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite flow loss at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            ema.update_parameters(m)
            if log.add(step, mse_flow=loss.item()):
                bar.set_postfix(mse=f"{loss.item():.4f}")
            bar.update(1)
        bar.close()
        m.load_state_dict(ema.module.state_dict())
        return {"flow_loss": log.summary()}

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        lat = self.model.latent_grid * int(self.model.config["latent_patch"])
        return torch.randn(n, int(self.model.config["z_ch"]), lat, lat, generator=generator)

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        assert noise is not None
        return self.model.sample_from_noise(noise, int(self.config["sample_steps"]), float(self.config["cfg_scale"]))
