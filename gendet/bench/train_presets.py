"""Named training recipes for `gendet train --preset NAME` (each writes a model card).

- `default`, the detector that ships as gendet's default (gendet/assets/default_model): a probe
  on the packaged EfficientNet-Lite0 (stage taps, linear head, the transfer recipe), trained on
  a genuine-generator manifest's train split (`--data MANIFEST`, e.g. shared/data/genuine), its
  threshold fitted on a held-out 15 % (by near-duplicate cluster) of that split;
- `fast`, the earlier 4.7 MB default (gendet/assets/models/fast): `spec` on RegNetX-200MF at
  64 px, trained on the local benchmark's own generators (`gendet bench --preset tiny`'s data
  set, built or reused from the cache). Fast, but at chance on real generators' images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainPreset:
    name: str
    model: str
    overrides: dict[str, Any]
    train_args: dict[str, Any]  # values for the `gendet train` options of the same name
    data_preset: str | None  # the bench preset whose local data set it trains on; None: the user's --data
    card_name: str
    notes: list[str] = field(default_factory=list)
    weights_dtype: str = "float32"  # how the weights are stored; float16 halves a shipped model


FAST = TrainPreset(
    name="fast",
    # spec: the best Task 1 mean of the tiny benchmark (acc 0.763, AUC 0.902 at ResNet-18 width with
    # `gendet bench --preset tiny --out runs/tiny`, seed 0). Shipped on timm's RegNetX-200MF body
    # (2.3 M parameters, float16 on disk: under 5 MB) so it fits in the package and scans fast on a CPU.
    model="spec",
    overrides={"image_size": 64, "arch": "regnetx_002"},
    train_args={"epochs": 3, "batch_size": 32, "lr": 1e-3, "patience": 2, "threshold": "val", "warmup": 0.1},
    data_preset="tiny",
    card_name="gendet-fast",
    weights_dtype="float16",
    notes=[
        "Trained only on gendet's own small generators (GAN, VAE, pixel flow, latent flow, autoencoder "
        "reconstructions) at 64 px: it has never seen a commercial generator (Midjourney, DALL-E, SDXL, ...).",
        "Inputs are resized so their shorter side is 64 px and centre-cropped, so traces finer than that scale "
        "in large images are lost; expect weak results on full-size photos and on unseen generators.",
    ],
)

DEFAULT = TrainPreset(
    name="default",
    # probe on Lite2 with stage taps (gendet.models.probe's defaults): the best leave-one-group-out mean AUC
    # on the genuine set of the backbones tried (README, `gendet bench --preset genuine`, seed 0).
    model="probe",
    overrides={},
    train_args={"threshold": "fpr", "target_fpr": 0.02, "holdout": 0.15, "solver": "head"},
    data_preset=None,
    card_name="gendet-default",
    notes=[
        "Trained on outputs of public generators (Stable Diffusion 1/2/XL, DiT/flow text-to-image models, "
        "Kandinsky/Cascade/IF, GANs, autoregressive and class-conditional models) and camera photos from public "
        "sets; generators of another kind, or photos from devices and pipelines unlike those sets, may score "
        "differently (see the leave-one-group-out table for how far it transfers).",
        "It judges pixels only: crops at native resolution, JPEG-aligned (quality 85), the mean logit over a "
        "2 x 2 grid of 260 px crops. Blur, strong down-scaling, heavy re-compression or screenshots remove traces "
        "(Task 2 table: blur is its weakness).",
        "A score is evidence, not proof: the threshold calls about 2 % of camera photos generated (per-source-set "
        "rates above) and misses a third or more of the images of generator kinds it never saw (leave-one-out "
        "table); small or unusual photo sets (low-light, faces) were called generated more often.",
    ],
)

TRAIN_PRESETS: dict[str, TrainPreset] = {DEFAULT.name: DEFAULT, FAST.name: FAST}


def get_train_preset(name: str) -> TrainPreset:
    if name not in TRAIN_PRESETS:
        raise KeyError(f"unknown training preset {name!r}; available: {', '.join(sorted(TRAIN_PRESETS))}")
    return TRAIN_PRESETS[name]


def preset_data(preset: TrainPreset, cache_dir: Path, seed: int, progress: bool) -> tuple[Path, dict[str, Any]]:
    """The local benchmark's data set this preset trains on (built once, then reused from the cache)."""
    from gendet.bench.bench import bench_data_root, build_bench_data
    from gendet.bench.presets import get_preset

    bench = get_preset(preset.data_preset)
    root = bench_data_root(cache_dir, bench)
    return root, build_bench_data(bench, root, cache_dir, seed=seed, progress=progress)
