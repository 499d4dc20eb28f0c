"""A convolutional autoencoder (deterministic or KL-regularised) shared by the vae,
latent_flow and ae_recon families, plus its reconstruction training loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gendet.generation.blocks import Downsample, ResBlock, Upsample, norm
from gendet.generation.training import LossLog, progress_bar, random_batch, warmup_cosine


class Autoencoder(nn.Module):
    """Down-samples by 2**(len(channels)-1) to a `z_ch`-channel latent grid.

    With kl=True the encoder predicts a diagonal Gaussian (mean, log-variance).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), z_ch: int = 4, blocks: int = 1,
                 kl: bool = True) -> None:
        super().__init__()
        self.kl = kl
        self.z_ch = z_ch
        self.factor = 2 ** (len(channels) - 1)
        enc: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, padding=1)]
        ch = channels[0]
        for lvl, c in enumerate(channels):
            for _ in range(blocks):
                enc.append(ResBlock(ch, c))
                ch = c
            if lvl < len(channels) - 1:
                enc.append(Downsample(c))
        enc += [norm(ch), nn.SiLU(), nn.Conv2d(ch, 2 * z_ch if kl else z_ch, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(z_ch, ch, 3, padding=1)]
        for lvl in reversed(range(len(channels))):
            c = channels[lvl]
            for _ in range(blocks):
                dec.append(ResBlock(ch, c))
                ch = c
            if lvl > 0:
                dec.append(Upsample(c, channels[lvl - 1]))
                ch = channels[lvl - 1]
        dec += [norm(ch), nn.SiLU(), nn.Conv2d(ch, 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, logvar); logvar is None for a deterministic autoencoder."""
        h = self.encoder(x)
        if not self.kl:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic encode -> decode (posterior mean)."""
        return self.decode(self.encode(x)[0])


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q || N(0, I)) summed over latent dims, per sample."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def train_autoencoder(ae: Autoencoder, x: torch.Tensor, steps: int, batch_size: int, lr: float,
                      kl_weight: float, progress: bool, desc: str) -> dict:
    """L1 reconstruction (sharper than MSE) + a small KL term that keeps the latent smooth for flow
    matching. KL is normalised per pixel so `kl_weight` does not depend on image size."""
    opt = torch.optim.AdamW(ae.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    sched = warmup_cosine(opt, steps, warmup=30)
    log = LossLog(steps)
    bar = progress_bar(steps, desc, progress)
    for step in range(steps):
        b = random_batch(x, batch_size)
        mean, logvar = ae.encode(b)
        z = mean if logvar is None else mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        rec = ae.decode(z)
        l1 = F.l1_loss(rec, b)
        kl = kl_divergence(mean, logvar).mean() / b[0].numel() if logvar is not None else torch.zeros(())
        loss = l1 + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        snap = log.add(step, l1=l1.item(), kl=kl.item())
        if snap:
            bar.set_postfix(l1=snap["l1"])
        bar.update(1)
    bar.close()
    return log.summary()
