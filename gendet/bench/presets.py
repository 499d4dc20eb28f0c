"""Benchmark presets: which generators, detectors and budgets a `gendet bench` run uses.

A preset is data, not code: the run (gendet.bench.bench) is the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendet.evaluation.degradations import DEGRADATIONS


@dataclass(frozen=True)
class DetectorSpec:
    """One detector column of the benchmark.

    label: the name shown in tables (says when it is a reduced variant).
    config: overrides of the detector's default_config.
    train: overrides of TrainConfig fields.
    needs_weights: skipped (and reported as such) unless local backbone weights are given.
    in_default_run: False for detectors too slow for the preset's time budget; they run when
        named in `--detectors`.
    """

    name: str
    label: str
    config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    needs_weights: bool = False
    in_default_run: bool = True


@dataclass(frozen=True)
class BenchPreset:
    name: str
    image_size: int
    generators: tuple[str, ...]
    detectors: tuple[DetectorSpec, ...]
    n_per_split: dict[str, int]
    degradations: tuple[str, ...] = tuple(DEGRADATIONS)
    fidelity_samples: int = 100
    # `gendet generators train --preset <name> --steps-scale X` made the shipped weights;
    # --retrain-generators uses the same X so it reproduces them.
    generator_steps_scale: float = 1.0
    description: str = ""


# Sized for the 15-minute budget of the first run on 2 CPU cores (about 30 s per cell).
_TINY_TRAIN = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "patience": 2, "warmup": 0.1, "save_every_steps": 0}

TINY = BenchPreset(
    name="tiny",
    image_size=64,
    generators=("dcgan", "vae", "pixel_flow", "latent_flow", "ae_recon"),
    n_per_split={"train": 400, "val": 160},
    generator_steps_scale=0.4,
    detectors=(
        DetectorSpec("resnet50", "resnet50 (ResNet-18 width, from scratch)",
                     {"arch": "resnet18", "image_size": 64}, _TINY_TRAIN),
        DetectorSpec("cnnspot", "cnnspot (ResNet-18 width, from scratch)",
                     {"arch": "resnet18", "image_size": 64}, _TINY_TRAIN),
        DetectorSpec("spec", "spec (ResNet-18 width, from scratch)", {"arch": "resnet18", "image_size": 64},
                     _TINY_TRAIN),
        DetectorSpec("npr", "npr", {"image_size": 64}, _TINY_TRAIN),
        DetectorSpec("univfd", "univfd (CLIP ViT, local weights)", {"image_size": 224}, _TINY_TRAIN,
                     needs_weights=True),
        # = gendet.models.gamma.CPU_CONFIG (tested); its manipulated data: `gendet bench --ablation gamma`
        DetectorSpec("gamma", "gamma (CPU backbone)", {"image_size": 64, "backbone": "cnn", "widths": [16, 32, 64, 128],
                                                       "seg_dim": 16, "token_dim": 64, "heads": 4},
                     _TINY_TRAIN, in_default_run=False),
        # reconstruction-residual detectors: cached flow reconstructions, 4 epochs (gendet.bench.hrr_ablation)
        DetectorSpec("hrr", "hrr (pixel_flow reconstructor, t 0.15, 2 steps)", {"image_size": 64},
                     {**_TINY_TRAIN, "epochs": 4}, in_default_run=False),
        DetectorSpec("dire", "dire (pixel_flow reconstructor, t 0.15, 2 steps)", {"image_size": 64},
                     {**_TINY_TRAIN, "epochs": 4}, in_default_run=False),
    ),
    description=(
        "GenImage in miniature: 64 px crops of the shipped real photos (split by photo) and five "
        "generator families trained here; baselines trained from scratch for 2 epochs."
    ),
)

_STANDARD_TRAIN = {"epochs": 10, "batch_size": 64, "lr": 1e-4, "patience": 3, "warmup": 0.05}

# For a real GenImage-layout root (`gendet bench --preset standard --data ROOT`): the
# baselines at their published sizes; pass ImageNet/CLIP weights with --weights NAME=PATH.
STANDARD = BenchPreset(
    name="standard",
    image_size=224,
    generators=(),
    n_per_split={},
    detectors=(
        DetectorSpec("resnet50", "resnet50", {}, _STANDARD_TRAIN),
        DetectorSpec("cnnspot", "cnnspot", {}, _STANDARD_TRAIN),
        DetectorSpec("spec", "spec", {}, _STANDARD_TRAIN),
        DetectorSpec("npr", "npr", {}, _STANDARD_TRAIN),
        DetectorSpec("univfd", "univfd", {}, _STANDARD_TRAIN, needs_weights=True),
    ),
    description="GenImage protocol on a user's data root at the baselines' published input size.",
)

# Real generators vs camera photos from a manifest (`gendet bench --preset genuine --data MANIFEST`):
# linear heads on cached frozen-backbone features, so every leave-one-out fold and recipe is cheap
# (gendet.bench.genuine owns the protocol).
GENUINE = BenchPreset(
    name="genuine",
    image_size=224,
    generators=(),
    n_per_split={},
    detectors=(DetectorSpec("probe", "probe (EfficientNet-Lite2 + stage taps, linear head)", {}, {}),),
    description=("Genuine generators vs camera photos from a manifest: leave-one-generator-group-out, "
                 "train-on-one matrix, Task 2, per real set false positives, the edited set, recipe ablations."),
)

PRESETS: dict[str, BenchPreset] = {TINY.name: TINY, STANDARD.name: STANDARD, GENUINE.name: GENUINE}


def get_preset(name: str) -> BenchPreset:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
