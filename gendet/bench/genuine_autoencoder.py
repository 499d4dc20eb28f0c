"""The autoencoder behind the pretrained UniGenDet's latent path and the HRR/DIRE reconstructor on the genuine set.

No pretrained image autoencoder or diffusion model installs offline, so gendet trains one here: the
latent_flow family's KL autoencoder (4x down, 4 latent channels), on 64-px views of the real
*training* photos only (the genuine manifest's real train split plus the shipped photos), through
the same alignment as every model input (JPEG q95). Two kinds of view, half each:
- native-resolution 64-px crops: what HRR/DIRE reconstruct (the pixels a generator leaves traces in);
- whole-photo crops resized to 64 px: UniGenDet's generation domain (its flow generates 64-px images).
Latent statistics (for the flow's normalised latents) come from the resized views.
Cached by content: (training files' sha256, config, seed) -> one safetensors file, so every
ablation and bench run reuses one autoencoder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from gendet.data.decode import DecodeError
from gendet.data.preprocess import ImageTransform, Preprocess, decode_for_model
from gendet.data.sample import Sample
from gendet.evaluation.feature_cache import _digest, sample_digests
from gendet.generation.autoencoder import Autoencoder, train_autoencoder
from gendet.generation.latent_flow import AE_CONFIG, build_autoencoder
from gendet.io import atomic_write, atomic_write_text

AE_SIZE = 64  # the generation resolution and the reconstructor's training crop
AE_STEPS = 800
AE_BATCH = 32
VIEWS_PER_PHOTO = 4  # two native crops + two resized crops per training photo


@dataclass
class GenuineAutoencoder:
    ae: Autoencoder
    latent_mean: torch.Tensor  # (1, z, 1, 1)
    latent_std: torch.Tensor
    info: dict[str, Any]


def _views(samples: Sequence[Sample], seed: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(native crops, resized crops) in [-1, 1], (N, 3, 64, 64) each, and the files that failed to decode."""
    norm = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    native = ImageTransform(Preprocess(size=AE_SIZE, resize=False, **norm), train=True)
    resized = ImageTransform(Preprocess(size=AE_SIZE, resize=True, train_crop_scale=(0.5, 1.0), **norm), train=True)
    rng = np.random.default_rng(seed)
    nat, res, failed = [], [], []
    for s in tqdm(samples, desc="autoencoder views", unit="photo", disable=not progress, leave=False):
        try:
            img = decode_for_model(s.path, native.pp)
        except DecodeError as e:
            failed.append(f"{s.path}: {e.reason}")
            continue
        for _ in range(VIEWS_PER_PHOTO // 2):
            nat.append(native(img, rng))
            res.append(resized(img, rng))
    if not nat:
        raise ValueError("no real training photo could be decoded for the autoencoder")
    return torch.stack(nat), torch.stack(res), failed


def fit_genuine_autoencoder(photos: Sequence[Sample], cache_dir: Path, seed: int = 0, steps: int = AE_STEPS,
                            progress: bool = True, ae_config: dict[str, Any] | None = None) -> GenuineAutoencoder:
    """Train (or load from the cache) the autoencoder on these real photos (the caller passes training photos only)."""
    photos = sorted(photos, key=lambda s: str(s.path))
    if any(s.label != 0 for s in photos):
        raise ValueError("the autoencoder trains on real photos only")
    digests = sample_digests(photos)
    config = {**(ae_config or AE_CONFIG), "size": AE_SIZE, "steps": steps, "batch": AE_BATCH,
              "views": VIEWS_PER_PHOTO, "seed": seed}
    key = _digest({"config": config, "files": digests})
    path = Path(cache_dir) / "genuine-autoencoder" / f"{key}.safetensors"
    meta_path = path.with_suffix(".json")
    ae = build_autoencoder(config)
    if path.is_file() and meta_path.is_file():
        state = load_file(str(path))
        mean, std = state.pop("latent_mean"), state.pop("latent_std")
        ae.load_state_dict(state, strict=True)
        return GenuineAutoencoder(ae.eval().requires_grad_(False), mean, std, json.loads(meta_path.read_text()))
    t0 = time.monotonic()
    torch.manual_seed(seed)
    native, resized, failed = _views(photos, seed, progress)
    x = torch.cat([native, resized])
    log = train_autoencoder(ae, x, steps, AE_BATCH, float(config["ae_lr"]), float(config["kl_weight"]), progress,
                            "genuine autoencoder")
    ae.eval().requires_grad_(False)
    with torch.no_grad():
        mean_z, logvar = zip(*(ae.encode(resized[i:i + 256]) for i in range(0, len(resized), 256)), strict=True)
        m = torch.cat(mean_z)
        v = torch.cat([lv.exp() for lv in logvar])
        lat_mean = m.mean(dim=(0, 2, 3), keepdim=True)
        lat_std = (m.var(dim=(0, 2, 3), keepdim=True) + v.mean(dim=(0, 2, 3), keepdim=True)).sqrt().clamp_min(1e-4)
        l1 = {name: float(torch.cat([(ae.reconstruct(t[i:i + 256]) - t[i:i + 256]).abs().mean(dim=(1, 2, 3))
                                     for i in range(0, len(t), 256)]).mean())
              for name, t in (("native", native), ("resized", resized))}
    info = {"config": config, "n_photos": len(photos), "n_views": int(x.shape[0]), "decode_failures": failed,
            "train_l1": l1, "loss": log, "seconds": round(time.monotonic() - t0, 1)}
    state = {k: v.contiguous() for k, v in ae.state_dict().items()}
    atomic_write(path, lambda tmp: save_file({**state, "latent_mean": lat_mean, "latent_std": lat_std}, str(tmp)))
    atomic_write_text(meta_path, json.dumps(info, indent=1))
    return GenuineAutoencoder(ae, lat_mean, lat_std, info)


def load_into(target: Autoencoder, source: GenuineAutoencoder) -> None:
    """Copy the trained weights into a detector's own (frozen) autoencoder, strictly."""
    target.load_state_dict(source.ae.state_dict(), strict=True)


def training_photos(samples: Sequence[Sample]) -> list[Sample]:
    """The autoencoder's photos: the real training samples given, plus the shipped photos."""
    from gendet.data.real_photos import list_photos

    return [s for s in samples if s.label == 0 and s.split == "train"] + [Sample(path=p, label=0)
                                                                         for p in list_photos()]


def prepare_frozen_parts(detector: Any, train: Sequence[Sample], cache_dir: Path, seed: int = 0,
                         progress: bool = True) -> dict[str, Any] | None:
    """A detector whose frozen part includes an autoencoder (`adopt_autoencoder`) gets one trained on the real
    training photos (cached); returns its info, None for detectors without one."""
    if not hasattr(detector, "adopt_autoencoder"):
        return None
    photos = training_photos(train)
    ae_cfg = {**AE_CONFIG, "ae_channels": list(detector.config["ae_channels"]), "z_ch": detector.config["z_ch"],
              "ae_blocks": detector.config["ae_blocks"]}
    g = fit_genuine_autoencoder(photos, cache_dir, seed=seed, steps=int(detector.config.get("ae_steps", AE_STEPS)),
                                progress=progress, ae_config=ae_cfg)
    detector.adopt_autoencoder(g.ae, g.latent_mean, g.latent_std)
    return g.info
