"""Benchmark presets: which generators, detectors and budgets a `gendet bench` run uses.

A preset is data, not code: the run (gendet.bench.bench) is the same for all. Its detectors are every registered
detector whose class has a `bench` entry for the preset (next to the detector: label, config, training
overrides), in registry order; a new detector joins a preset from its own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendet.evaluation.degradations import DEGRADATIONS
from gendet.models.registry import DETECTORS, get_detector_class


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


_SPECS: dict[tuple[str, str], tuple[DetectorSpec, ...]] = {}


def registered_specs(preset: str, train: dict[str, Any]) -> tuple[DetectorSpec, ...]:
    """The detector columns of `preset`: each registered class's own `bench[preset]` entry, over the preset's
    training recipe `train` (classes are imported once, on first use: the CLI's --help stays fast)."""
    key = (preset, repr(sorted(train.items())), tuple(DETECTORS.items()))
    if key not in _SPECS:
        specs = []
        for name in DETECTORS:
            entry = vars(get_detector_class(name)).get("bench", {}).get(preset)
            if entry is not None:
                specs.append(DetectorSpec(name, entry["label"], dict(entry.get("config", {})),
                                          {**train, **entry.get("train", {})}, entry.get("needs_weights", False),
                                          entry.get("in_default_run", True)))
        _SPECS[key] = tuple(specs)
    return _SPECS[key]


@dataclass(frozen=True)
class BenchPreset:
    name: str
    image_size: int
    generators: tuple[str, ...]
    n_per_split: dict[str, int]
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides under each detector's own
    detector_specs: tuple[DetectorSpec, ...] | None = None  # explicit columns (None: the registered entries)
    degradations: tuple[str, ...] = tuple(DEGRADATIONS)
    fidelity_samples: int = 100
    # `gendet generators train --preset <name> --steps-scale X` made the shipped weights;
    # --retrain-generators uses the same X so it reproduces them.
    generator_steps_scale: float = 1.0
    description: str = ""

    @property
    def detectors(self) -> tuple[DetectorSpec, ...]:
        if self.detector_specs is not None:
            return self.detector_specs
        return registered_specs(self.name, self.train)


# Sized for the 15-minute budget of the first run on 2 CPU cores (about 30 s per cell).
_TINY_TRAIN = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "patience": 2, "warmup": 0.1, "save_every_steps": 0}

TINY = BenchPreset(
    name="tiny",
    image_size=64,
    generators=("dcgan", "vae", "pixel_flow", "latent_flow", "ae_recon"),
    n_per_split={"train": 400, "val": 160},
    generator_steps_scale=0.4,
    train=_TINY_TRAIN,
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
    train=_STANDARD_TRAIN,
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
    description=("Genuine generators vs camera photos from a manifest: leave-one-generator-group-out, "
                 "train-on-one matrix, Task 2, per real set false positives, the edited set, recipe ablations."),
)

PRESETS: dict[str, BenchPreset] = {TINY.name: TINY, STANDARD.name: STANDARD, GENUINE.name: GENUINE}


def get_preset(name: str) -> BenchPreset:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
