"""Training presets: per-family steps, batch size and config overrides, in one place.

`tiny` at steps_scale 1.0 is sized from measured per-step CPU times for ~35-40 min on 2
idle CPU cores in total (the shipped weights use steps_scale 0.4), and well under 1 min to
sample ~400 images per family. ae_recon adopts latent_flow's autoencoder (DRCT: the hard
negatives share the latent generator's decoder), so it costs no training.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image

from gendet.generation.base import Generator
from gendet.generation.registry import create_generator, load_generator, save_generator

GRID_IMAGES = 64

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "dcgan": {"steps": 2500, "batch_size": 32, "config": {}},
        "vae": {"steps": 1000, "batch_size": 32, "config": {}},
        "pixel_flow": {"steps": 3000, "batch_size": 32, "config": {}},
        # 30% of the steps train the autoencoder (batch 16), the rest the latent flow (batch 64)
        "latent_flow": {"steps": 2800, "batch_size": 16, "config": {"ae_fraction": 0.3, "flow_batch_mult": 4}},
        "ae_recon": {"steps": 0, "batch_size": 16, "config": {}, "adopt_autoencoder_from": "latent_flow"},
    },
}


def get_preset(name: str) -> dict[str, dict[str, Any]]:
    if name not in PRESETS:
        raise KeyError(f"unknown generator preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def sample_grid(gen: Generator, images: torch.Tensor, path: Path, seed: int) -> float:
    """Save a grid of samples (reconstruction: source/reconstruction pairs); returns images/second."""
    n = min(GRID_IMAGES // 2, images.shape[0]) if gen.needs_source else GRID_IMAGES
    row = 8 if n % 8 == 0 else n
    # evenly spaced crops, so the grid shows several photos rather than the first one's crops
    source = images[torch.linspace(0, images.shape[0] - 1, n).long()] if gen.needs_source else None
    start = time.perf_counter()
    out = gen.generate(n, seed=seed, source=source)
    speed = n / max(time.perf_counter() - start, 1e-9)
    if source is not None:  # interleave rows: a row of sources, then their reconstructions
        out = torch.stack([source.view(-1, row, *source.shape[1:]), out.view(-1, row, *out.shape[1:])], 1)
        out = out.reshape(-1, *source.shape[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(out.float() / 255.0, str(path), nrow=row, padding=2)
    return round(speed, 2)


@torch.no_grad()
def _round_to(gen: Generator, dtype: torch.dtype) -> None:
    """Round the weights to the storage precision now, so the grid shows exactly what a load gives."""
    for t in gen.state_dict().values():
        if t.is_floating_point():
            t.copy_(t.to(dtype).float())


def train_generators(
    preset_name: str, out: Path, real_dir: str | os.PathLike | None = None, seed: int = 0,
    only: list[str] | None = None, steps_scale: float = 1.0, threads: int = 2, fp32: bool = False,
    progress: bool = True, command: str = "",
) -> dict[str, Generator]:
    """Train a preset's families from scratch on the real train crops; write weights + sample grids to `out`."""
    preset = get_preset(preset_name)
    names = list(preset) if not only else only
    unknown = [n for n in names if n not in preset]
    if unknown:
        raise ValueError(f"--only: {unknown} not in preset {preset_name!r} ({', '.join(preset)})")
    names = [n for n in preset if n in names]  # preset order: adopters come after what they adopt
    if steps_scale <= 0:
        raise ValueError("steps_scale must be > 0")
    out = Path(out)
    torch.set_num_threads(threads)
    from gendet.data.real_photos import load_real_crops  # heavy (reads photos): only when training

    images = load_real_crops("train", 64, real_dir)
    print(f"training {', '.join(names)} on {images.shape[0]} train crops (64 px); output {out}", file=sys.stderr)
    trained: dict[str, Generator] = {}
    for name in names:
        spec = preset[name]
        steps = max(1, round(spec["steps"] * steps_scale)) if spec["steps"] else 0
        gen = create_generator(name, **spec.get("config", {}))
        origin = spec.get("adopt_autoencoder_from")
        start = time.perf_counter()
        if origin:
            donor = trained.get(origin)
            if donor is None:
                donor_path = out / origin
                if not Path(str(donor_path) + ".json").is_file():
                    raise ValueError(f"{name} adopts {origin}'s autoencoder: train {origin} first "
                                     f"(include it in --only) or have it in {out}")
                donor = load_generator(donor_path)
            gen.adopt_autoencoder(donor.ae, origin)
            gen.training_summary["seed"] = donor.training_summary.get("seed")
        else:
            gen.fit(images, steps, int(spec["batch_size"]), seed, progress=progress)
        train_s = time.perf_counter() - start
        store = torch.float32 if fp32 else torch.float16
        _round_to(gen, store)
        speed = sample_grid(gen, images, out / f"{name}_samples.png", seed)
        extra = {"command": command, "preset": preset_name, "real_dir": real_dir, "threads": threads,
                 "n_train_crops": int(images.shape[0]), "train_seconds": round(train_s, 1),
                 "sample_images_per_second": speed, "sample_grid": f"{name}_samples.png"}
        save_generator(gen, out / name, dtype=store, extra=extra)
        trained[name] = gen
        print(f"{name}: {gen.num_parameters / 1e6:.2f}M params, trained in {train_s / 60:.1f} min, "
              f"samples {speed:.1f} img/s -> {out / name}.safetensors", file=sys.stderr, flush=True)
    return trained


