"""Measurable image cues, per image and per grid cell, compared with the shipped real photos.

Cues (all computed on the model-input image, 8-bit RGB; spectra and residuals on luminance):
- hf_share: share of the log-magnitude spectrum, log(1 + |FFT|), lying above 0.25 cycles/pixel
  (half the Nyquist frequency), DC excluded. Smooth (blurred, over-denoised) images score low.
- spectral_peak: max / median of the spectrum magnitude above that radius. Periodic up-sampling
  traces (transposed convolutions, nearest-neighbour grids) put isolated peaks there.
- noise_residual: RMS of the image minus its 3x3 median (grey levels): the fine-grain noise a
  camera sensor leaves and many generators lack (or overdo).
- recon_error: mean L1 error of an autoencoder encode -> decode on [-1, 1] RGB. Images that came
  out of a decoder like it are reconstructed unusually well.
Each value gets a z-score against the same cue on crops of the shipped real photos put through
the same preprocessing, so "unusual" means unusual for a real photo at this size and alignment.
Heavy-tailed positive cues are compared on a log scale (`LOG_SCALE_CUES`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.data.real_photos import SPLITS, list_photos, load_photo, load_real_crops, photo_split

HF_CUTOFF = 0.25  # cycles/pixel, i.e. half of Nyquist
CUES = ("hf_share", "spectral_peak", "noise_residual", "recon_error")
LOG_SCALE_CUES = frozenset({"spectral_peak", "noise_residual", "recon_error"})
REFERENCE_SEED = 0
REFERENCE_CROPS_PER_PHOTO = 2
SHIPPED_AE_GENERATOR = "latent_flow"

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, end exclusive)


def cell_boxes(height: int, width: int, grid: int) -> list[Box]:
    """Row-major boxes of a grid x grid split (edges rounded, so sizes not divisible by grid still tile)."""
    ys = [round(i * height / grid) for i in range(grid + 1)]
    xs = [round(j * width / grid) for j in range(grid + 1)]
    return [(xs[j], ys[i], xs[j + 1], ys[i + 1]) for i in range(grid) for j in range(grid)]


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8/float RGB -> (..., H, W) float64 luma (BT.601) in grey levels."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


# -- spectrum ------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _spectrum_masks(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Hann window, high-frequency mask, non-DC mask) for an h x w patch."""
    window = np.outer(np.hanning(h), np.hanning(w)) if min(h, w) > 2 else np.ones((h, w))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    non_dc = radius > 0
    return window, (radius > HF_CUTOFF) & non_dc, non_dc


def spectrum_cues(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., h, w) grey patches -> (hf_share, spectral_peak), each of shape (...).

    The patch mean is removed and a Hann window applied first, so the patch borders
    do not add a spurious cross of high frequencies.
    """
    gray = np.asarray(gray, dtype=np.float64)
    h, w = gray.shape[-2:]
    window, hf, non_dc = _spectrum_masks(h, w)
    centred = (gray - gray.mean(axis=(-2, -1), keepdims=True)) * window
    mag = np.abs(np.fft.fft2(centred, norm="ortho"))
    logmag = np.log1p(mag)
    total = logmag[..., non_dc].sum(axis=-1)
    hf_share = logmag[..., hf].sum(axis=-1) / np.maximum(total, 1e-12)
    hf_mag = mag[..., hf]
    if hf_mag.shape[-1] == 0:  # patch too small to have frequencies above the cut-off
        return hf_share, np.ones(hf_share.shape)
    peak = hf_mag.max(axis=-1) / np.maximum(np.median(hf_mag, axis=-1), 1e-6)
    return hf_share, peak


# -- texture -------------------------------------------------------------------
def noise_residual_map(gray: np.ndarray) -> np.ndarray:
    """(H, W) grey image -> signed residual image minus its 3x3 median (edge-padded)."""
    gray = np.asarray(gray, dtype=np.float64)
    padded = np.pad(gray, 1, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
    return gray - np.median(windows.reshape(*gray.shape, 9), axis=-1)


# -- reconstruction ------------------------------------------------------------
def reconstruction_error_maps(ae: nn.Module, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W) mean-over-channels |x - decode(encode(x))|, x in [-1, 1].

    Sides are reflect-padded up to a multiple of the autoencoder's down-sampling factor and
    the error is cropped back, so any input size works.
    """
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    factor = int(getattr(ae, "factor", 4))
    ph, pw = (-h) % factor, (-w) % factor
    device = next(ae.parameters()).device
    out = np.empty((n, h, w), dtype=np.float32)
    ae.eval()
    with torch.no_grad():
        for i in range(0, n, batch_size):
            chunk = torch.from_numpy(np.array(images[i:i + batch_size]))  # a copy: inputs may be read-only
            x = chunk.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            if ph or pw:
                mode = "reflect" if (ph < h and pw < w) else "replicate"
                x = F.pad(x, (0, pw, 0, ph), mode=mode)
            recon = ae.reconstruct(x) if hasattr(ae, "reconstruct") else ae(x)
            err = (recon.float() - x).abs().mean(dim=1)[:, :h, :w]
            out[i:i + batch_size] = err.cpu().numpy()
    return out


@functools.lru_cache(maxsize=1)
def shipped_autoencoder() -> nn.Module:
    """The autoencoder of the shipped latent_flow generator (loaded once per process, CPU, eval)."""
    from gendet.generation.registry import load_generator, shipped_generator_path

    return load_generator(shipped_generator_path(SHIPPED_AE_GENERATOR)).ae.eval()


def find_autoencoder(detector: nn.Module) -> tuple[nn.Module | None, str]:
    """The autoencoder for the recon_error cue and where it came from (or why there is none).

    The detector's own `autoencoder` (attribute, or method returning one) wins; else the shipped
    latent_flow generator's. Returns (ae, "detector" | "shipped latent_flow") or (None, reason).
    """
    own = getattr(detector, "autoencoder", None)
    if own is not None and not isinstance(own, nn.Module) and callable(own):
        own = own()
    if isinstance(own, nn.Module):
        return own, "detector"
    try:
        ae = shipped_autoencoder()
    except Exception as e:  # noqa: BLE001 - a missing/corrupt asset skips one cue, it must not stop the explanation
        return None, f"no autoencoder: the detector has none and the shipped {SHIPPED_AE_GENERATOR} " \
                     f"generator could not be loaded ({type(e).__name__}: {e})"
    device = next(detector.parameters(), torch.empty(0)).device
    return ae.to(device), f"shipped {SHIPPED_AE_GENERATOR}"


# -- all cues of one or many images -------------------------------------------
def measure_cues(images: np.ndarray, grid: int, ae: nn.Module | None) -> tuple[dict[str, np.ndarray],
                                                                            dict[str, np.ndarray]]:
    """(N, H, W, 3) uint8 RGB -> (whole-image cues {name: (N,)}, per-cell cues {name: (N, grid*grid)}).

    recon_error is absent when `ae` is None.
    """
    images = np.asarray(images, dtype=np.uint8)
    n, h, w = images.shape[:3]
    boxes = cell_boxes(h, w, grid)
    gray = luminance(images)
    whole: dict[str, np.ndarray] = {}
    cells: dict[str, np.ndarray] = {k: np.empty((n, len(boxes))) for k in CUES if k != "recon_error" or ae is not None}
    whole["hf_share"], whole["spectral_peak"] = spectrum_cues(gray)
    for c, (x0, y0, x1, y1) in enumerate(boxes):
        cells["hf_share"][:, c], cells["spectral_peak"][:, c] = spectrum_cues(gray[:, y0:y1, x0:x1])
    residual_sq = np.stack([noise_residual_map(g) for g in gray]) ** 2
    whole["noise_residual"] = np.sqrt(residual_sq.mean(axis=(1, 2)))
    for c, (x0, y0, x1, y1) in enumerate(boxes):
        cells["noise_residual"][:, c] = np.sqrt(residual_sq[:, y0:y1, x0:x1].mean(axis=(1, 2)))
    if ae is not None:
        err = reconstruction_error_maps(ae, images)
        whole["recon_error"] = err.mean(axis=(1, 2)).astype(np.float64)
        for c, (x0, y0, x1, y1) in enumerate(boxes):
            cells["recon_error"][:, c] = err[:, y0:y1, x0:x1].mean(axis=(1, 2))
    return whole, cells


# -- reference statistics of real photos --------------------------------------
@dataclass(frozen=True)
class CueStat:
    """Mean / sd of one cue over real-photo crops (on a log scale for LOG_SCALE_CUES)."""

    mean: float
    std: float
    n: int
    log_scale: bool

    @classmethod
    def of(cls, values: np.ndarray, log_scale: bool) -> CueStat:
        v = np.asarray(values, dtype=np.float64).ravel()
        v = np.log(np.maximum(v, 1e-12)) if log_scale else v
        std = float(v.std(ddof=1)) if v.size > 1 else 0.0
        # Floor the sd so a near-constant reference cannot turn tiny differences into huge z-scores.
        return cls(float(v.mean()), max(std, 1e-6, 1e-3 * abs(float(v.mean()))), int(v.size), log_scale)

    def z(self, value: float) -> float:
        v = math.log(max(value, 1e-12)) if self.log_scale else value
        return (v - self.mean) / self.std

    def typical(self) -> float:
        """The reference's central value in the cue's own units."""
        return math.exp(self.mean) if self.log_scale else self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "scale": "log" if self.log_scale else "linear",
                "typical": self.typical()}


@dataclass(frozen=True)
class RealReference:
    """Cue statistics of real photos for one preprocessing and grid: whole crops and single cells."""

    image: dict[str, CueStat]
    region: dict[str, CueStat]
    n_images: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_images": self.n_images,
            "image": {k: s.to_dict() for k, s in self.image.items()},
            "region": {k: s.to_dict() for k, s in self.region.items()},
        }


def reference_images(pp: Preprocess, crops_per_photo: int = REFERENCE_CROPS_PER_PHOTO,
                     seed: int = REFERENCE_SEED) -> np.ndarray:
    """(N, S, S, 3) uint8 real-photo model inputs: seeded crops at the model input size from the shipped
    photos (both splits), each put through the same eval transform as an explained image.

    Models whose input is larger than the shipped photos (256 px short side) get whole photos instead.
    """
    transform = ImageTransform(pp, train=False)
    rng = np.random.default_rng(seed)  # eval transforms draw nothing; kept for the call signature
    pil: list[Image.Image] = []
    for split in SPLITS:
        crops = load_real_crops(split, size=pp.size, seed=seed, crops_per_photo=crops_per_photo)
        pil += [Image.fromarray(c.permute(1, 2, 0).numpy()) for c in crops]
    if not pil:
        photos = [p for split in SPLITS for p in photo_split(list_photos(), seed=seed)[split]]
        pil = [Image.fromarray(load_photo(p)) for p in sorted(photos)]
    return np.stack([np.asarray(transform.prepare(im, rng), dtype=np.uint8) for im in pil])


@functools.lru_cache(maxsize=8)
def real_reference(pp: Preprocess, grid: int, ae: nn.Module | None,
                   crops_per_photo: int = REFERENCE_CROPS_PER_PHOTO, seed: int = REFERENCE_SEED) -> RealReference:
    """Cue statistics of the shipped real photos at `pp` (computed once per process and arguments)."""
    images = reference_images(pp, crops_per_photo, seed)
    whole, cells = measure_cues(images, grid, ae)
    return RealReference(
        image={k: CueStat.of(v, k in LOG_SCALE_CUES) for k, v in whole.items()},
        region={k: CueStat.of(v, k in LOG_SCALE_CUES) for k, v in cells.items()},
        n_images=len(images),
        source=f"shipped real photos: {len(images)} crops of {pp.size} px (seed {seed}), same preprocessing",
    )
