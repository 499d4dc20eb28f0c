"""Inpainting with gendet's own flow generators: regenerate a masked region, keep the rest.

RePaint-style conditioning of the rectified-flow ODE (no retraining): integrate from noise
(t = 1) to data (t = 0) with Euler steps and, after every step, overwrite the known region with
the known image at the new time, x_t = (1 - t) x0 + t eps (the same eps as the start noise, i.e.
the straight path the flow was trained on). The generator therefore fills the hole so that it
fits the surrounding content it sees at every noise level.

- pixel_flow: in pixel space, with the pixel mask;
- latent_flow: in the autoencoder's latent space (encoder mean, normalised as in training),
  with the mask max-pooled to the latent grid (a latent cell that touches the hole is
  regenerated), then decoded.
Either way the result is composited with the pixel mask: outside it the output is the input,
bit for bit, and inside every pixel comes from the generator, so the mask is the exact label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gendet.generation.base import Generator, check_images, to_float, to_uint8
from gendet.generation.flow import Velocity, time_grid
from gendet.generation.latent_flow import LatentFlow
from gendet.generation.pixel_flow import PixelFlow, velocity_fn

INPAINTERS = ("latent_flow", "pixel_flow")


def repaint_ode(model: Velocity, known: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, steps: int,
                shift: float = 1.0) -> torch.Tensor:
    """Euler integration from `noise` (t=1) to t=0, re-imposing `known` where mask == 0 after each step."""
    if steps < 1:
        raise ValueError("need at least one step")
    ts = time_grid(steps, shift).tolist()
    x = noise
    n = x.shape[0]
    for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
        x = x + (t_next - t_cur) * model(x, torch.full((n,), t_cur))
        known_t = (1 - t_next) * known + t_next * noise
        x = mask * x + (1 - mask) * known_t
    return x


@torch.no_grad()
def inpaint(generator: Generator, images: torch.Tensor, masks: torch.Tensor, seed: int, steps: int | None = None,
            batch_size: int = 64) -> torch.Tensor:
    """Regenerate images[masks] with `generator` (pixel_flow or latent_flow).

    images: uint8 (N, 3, H, W); masks: bool (N, H, W), True = regenerate. Returns uint8 (N, 3, H, W)
    equal to `images` wherever the mask is False. Deterministic for a seed; image i does not depend
    on batch_size (all noise is drawn up front). steps: ODE steps (default: the generator's own).
    """
    check_images(images, generator.image_size, "images")
    if masks.dtype != torch.bool or tuple(masks.shape) != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"masks must be bool (N, H, W) matching images, got {masks.dtype} {tuple(masks.shape)}")
    c = generator.config
    steps = int(steps or c["sample_steps"])
    shift = float(c["shift"])
    generator.eval()
    gen = torch.Generator().manual_seed(int(seed))
    if isinstance(generator, LatentFlow):
        f = generator.ae.factor
        s = generator.image_size // f
        noise = torch.randn(images.shape[0], int(c["z_ch"]), s, s, generator=gen)
    elif isinstance(generator, PixelFlow):
        noise = torch.randn(images.shape, generator=gen)
    else:
        raise ValueError(f"{generator.name} cannot inpaint; use one of {INPAINTERS}")
    outs = []
    for i in range(0, images.shape[0], batch_size):
        x0 = to_float(images[i:i + batch_size])
        m = masks[i:i + batch_size, None].float()
        nz = noise[i:i + batch_size]
        if isinstance(generator, LatentFlow):
            z0 = (generator.ae.encode(x0)[0] - generator.latent_mean) / generator.latent_std
            mz = F.max_pool2d(m, generator.ae.factor)
            model = velocity_fn(generator.flow, str(c["prediction"]))
            z = repaint_ode(model, z0, mz, nz, steps, shift)
            x = generator.ae.decode(z * generator.latent_std + generator.latent_mean)
        else:
            model = velocity_fn(generator.net, str(c["prediction"]))
            x = repaint_ode(model, x0, m, nz, steps, shift)
        outs.append(to_uint8(x))
    out = torch.cat(outs)
    keep = ~masks[:, None].expand_as(images)
    out[keep] = images[keep]
    return out
