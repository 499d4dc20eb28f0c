"""DCGAN (Radford et al. 2016): transposed-convolution generator, strided-conv discriminator.

Transposed convolutions with kernel 4 / stride 2 leave the classic checkerboard
up-sampling pattern. Adam(lr 2e-4, betas 0.5/0.999).
Loss: hinge (default) or non-saturating. The discriminator exists only during `fit`
(it is not saved); by default it uses spectral norm instead of BatchNorm and a 2x learning
rate (TTUR): with BatchNorm it separated real and fake batches by their statistics and won
within ~100 steps on a few hundred crops. DiffAugment (Zhao et al. 2020: colour,
translation, cutout applied to real and fake alike) is available via `augment` but off by
default: within the tiny budget it slowed learning and zero-padded translation leaked
borders into the samples.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gendet.generation.base import Generator
from gendet.generation.training import LossLog, progress_bar, random_batch


def _levels(image_size: int) -> int:
    n = image_size.bit_length() - 1  # log2
    if 2 ** n != image_size or image_size < 16:
        raise ValueError(f"dcgan needs a power-of-two image_size >= 16, got {image_size}")
    return n - 2  # number of x2 up-samplings from 4x4


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, width: int, image_size: int) -> None:
        super().__init__()
        n = _levels(image_size)
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Strided 4x4 convs + LeakyReLU. With spectral norm (default) instead of BatchNorm the
    discriminator cannot separate real and fake batches by their batch statistics, which on a few
    hundred crops otherwise lets it win within a hundred steps."""

    def __init__(self, width: int, image_size: int, spectral: bool = True) -> None:
        super().__init__()
        n = _levels(image_size)
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(3, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(n - 1):
            layers.append(sn(nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=spectral)))
            if not spectral:
                layers.append(nn.BatchNorm2d(2 * ch))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        layers += [sn(nn.Conv2d(ch, 1, 4, 1, 0))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) conv weights and N(1, 0.02) BatchNorm scales, as in the DCGAN paper."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            w = m.parametrizations.weight.original if nn.utils.parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def diff_augment(x: torch.Tensor, policy: str = "translation,cutout", translate: float = 0.125,
                 cutout: float = 0.25) -> torch.Tensor:
    """Differentiable random colour (brightness, saturation, contrast), translation (zero padded) and
    cutout, per sample; `policy` names the ones to apply."""
    ops = {p.strip() for p in policy.split(",") if p.strip()}
    unknown = ops - {"color", "translation", "cutout"}
    if unknown:
        raise ValueError(f"unknown DiffAugment ops {sorted(unknown)}")
    b, _, h, w = x.shape
    if "color" in ops:
        x = x + (torch.rand(b, 1, 1, 1) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(b, 1, 1, 1) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (torch.rand(b, 1, 1, 1) + 0.5) + mean
    if "translation" in ops and translate > 0:
        pad = int(h * translate)
        xp = F.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (b,))
        dy = torch.randint(0, 2 * pad + 1, (b,))
        rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(b, 3, h, w + 2 * pad)
        xp = xp.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(b, 3, h, w)
        x = xp.gather(3, cols)
    if "cutout" in ops and cutout > 0:
        ch, cw = int(h * cutout), int(w * cutout)
        cy = torch.randint(0, h - ch + 1, (b,))[:, None]
        cx = torch.randint(0, w - cw + 1, (b,))[:, None]
        ys, xs = torch.arange(h)[None], torch.arange(w)[None]
        inside_y = (ys >= cy) & (ys < cy + ch)
        inside_x = (xs >= cx) & (xs < cx + cw)
        mask = ~(inside_y[:, :, None] & inside_x[:, None, :])
        x = x * mask[:, None].to(x.dtype)
    return x


class DCGAN(Generator):
    name = "dcgan"
    family = "gan"
    description = "DCGAN: transposed-conv generator (checkerboard up-sampling), hinge loss, spectral-norm critic"
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 64, "z_dim": 128, "g_width": 32, "d_width": 32,
        "lr": 2e-4, "d_lr": 4e-4, "augment": "", "loss": "hinge", "spectral_norm": True,
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        c = self.config
        self.generator = DCGANGenerator(int(c["z_dim"]), int(c["g_width"]), self.image_size)

    def init_weights(self) -> None:
        dcgan_init(self.generator)

    def _fit(self, x: torch.Tensor, steps: int, batch_size: int, progress: bool) -> dict:
        c = self.config
        if c["loss"] not in ("hinge", "nonsat"):
            raise ValueError(f"dcgan loss must be 'hinge' or 'nonsat', got {c['loss']!r}")
        hinge = c["loss"] == "hinge"
        disc = DCGANDiscriminator(int(c["d_width"]), self.image_size, bool(c["spectral_norm"]))
        dcgan_init(disc)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=float(c["lr"]), betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=float(c["d_lr"]), betas=(0.5, 0.999))
        policy = str(c["augment"])

        def aug(t: torch.Tensor) -> torch.Tensor:
            return diff_augment(t, policy) if policy else t

        log = LossLog(steps)
        bar = progress_bar(steps, "dcgan", progress)
        for step in range(steps):
            real = random_batch(x, batch_size)
            z = torch.randn(batch_size, int(c["z_dim"]))
            fake = self.generator(z)
            d_real, d_fake = disc(aug(real)), disc(aug(fake.detach()))
            if hinge:
                d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            else:  # softplus(-D(real)) + softplus(D(fake)) == BCE with logits
                d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            # generator: -D(G(z)) (hinge) or the non-saturating -log sigmoid(D(G(z)))
            g_logit = disc(aug(fake))
            g_loss = -g_logit.mean() if hinge else F.softplus(-g_logit).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            snap = log.add(step, d_loss=d_loss.item(), g_loss=g_loss.item())
            if snap:
                bar.set_postfix(d=snap["d_loss"], g=snap["g_loss"])
            bar.update(1)
        bar.close()
        self._recalibrate_batchnorm(batch_size)
        return {"loss": log.summary()}

    @torch.no_grad()
    def _recalibrate_batchnorm(self, batch_size: int, batches: int = 16) -> None:
        """Replace the running BatchNorm statistics (an EMA over a moving generator) by an exact
        average over fresh samples of the final generator, so eval-mode sampling matches training."""
        bns = [m for m in self.generator.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average
        for _ in range(batches):
            self.generator(torch.randn(batch_size, int(self.config["z_dim"])))
        for bn in bns:
            bn.momentum = 0.1

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, int(self.config["z_dim"]), generator=generator)

    def _decode(self, noise: torch.Tensor | None, source: torch.Tensor | None) -> torch.Tensor:
        return self.generator(noise)
