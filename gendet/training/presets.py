"""Named training recipes for `gendet train --preset NAME`.

`default` is the detector that ships inside the package (gendet/assets/default_model):
trained on every generator family of the local benchmark (`gendet bench --preset tiny`'s
data set, built or reused from the cache), with its threshold fitted on a held-out part
of the training split. `gendet train --preset default --out gendet/assets/default_model`
reproduces it.
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
    data_preset: str  # the bench preset whose local data set it trains on
    card_name: str
    notes: list[str] = field(default_factory=list)
    weights_dtype: str = "float32"  # how the weights are stored; float16 halves a shipped model


DEFAULT = TrainPreset(
    name="default",
    # spec: the best Task 1 mean of the tiny benchmark (acc 0.763, AUC 0.902 at ResNet-18 width with
    # `gendet bench --preset tiny --out runs/tiny`, seed 0). Shipped on timm's RegNetX-200MF body
    # (2.3 M parameters, float16 on disk: under 5 MB) so it fits in the package and scans fast on a CPU.
    model="spec",
    overrides={"image_size": 64, "arch": "regnetx_002"},
    train_args={"epochs": 3, "batch_size": 32, "lr": 1e-3, "patience": 2, "threshold": "val", "warmup": 0.1},
    data_preset="tiny",
    card_name="gendet-default",
    weights_dtype="float16",
    notes=[
        "Trained only on gendet's own small generators (GAN, VAE, pixel flow, latent flow, autoencoder "
        "reconstructions) at 64 px: it has never seen a commercial generator (Midjourney, DALL-E, SDXL, ...).",
        "Inputs are resized so their shorter side is 64 px and centre-cropped, so traces finer than that scale "
        "in large images are lost; expect weak results on full-size photos and on unseen generators.",
    ],
)

TRAIN_PRESETS: dict[str, TrainPreset] = {DEFAULT.name: DEFAULT}


def get_train_preset(name: str) -> TrainPreset:
    if name not in TRAIN_PRESETS:
        raise KeyError(f"unknown training preset {name!r}; available: {', '.join(sorted(TRAIN_PRESETS))}")
    return TRAIN_PRESETS[name]


def preset_data(preset: TrainPreset, cache_dir: Path, seed: int, progress: bool) -> tuple[Path, dict[str, Any]]:
    """The local benchmark's data set this preset trains on (built once, then reused from the cache)."""
    from gendet.evaluation.bench import bench_data_root, build_bench_data
    from gendet.evaluation.presets import get_preset

    bench = get_preset(preset.data_preset)
    root = bench_data_root(cache_dir, bench)
    return root, build_bench_data(bench, root, cache_dir, seed=seed, progress=progress)
