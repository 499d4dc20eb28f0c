"""Building a UniGenDet for training: its vocabulary from the data, its autoencoder from a generator file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gendet.data.sample import Sample
from gendet.models.unigendet.model import UniGenDet
from gendet.models.unigendet.tokenizer import build_vocab

# Training recipes per size preset: steps of each stage and the learning rate. `tiny` is sized
# for 2 CPU cores; `ablation` is the shorter schedule the ablation bench runs 12 times.
RECIPES: dict[str, dict[str, Any]] = {
    "tiny": {"gduf_steps": 900, "diga_steps": 300, "lr": 1e-3, "det_batch": 32},
    "ablation": {"gduf_steps": 300, "diga_steps": 120, "lr": 1e-3, "det_batch": 32},
    "smoke": {"gduf_steps": 20, "diga_steps": 10, "lr": 3e-4, "det_batch": 16},  # checks the pipeline only
    "small": {"gduf_steps": 20000, "diga_steps": 5000, "lr": 2e-4, "det_batch": 64},
    "base": {"gduf_steps": 50000, "diga_steps": 10000, "lr": 1e-4, "det_batch": 128},
}


def default_autoencoder_path() -> Path:
    """The shipped latent_flow generator: its KL autoencoder is UniGenDet's latent space."""
    from gendet.generation.registry import shipped_generator_path

    return shipped_generator_path("latent_flow")


def build_unigendet(config: dict[str, Any], samples: Sequence[Sample],
                    autoencoder: str | Path | None = None) -> UniGenDet:
    """A fresh UniGenDet whose vocabulary comes from the samples' explanations (none: no text head)
    and whose autoencoder and latent statistics come from a latent_flow generator file."""
    from gendet.generation.registry import load_generator

    texts = [s.explanation for s in samples if s.explanation]
    if texts and "vocab" not in config:
        config = {**config, "vocab": build_vocab(texts)}
    model = UniGenDet(**config)
    path = Path(autoencoder) if autoencoder else default_autoencoder_path()
    gen = load_generator(path)
    ae = getattr(gen, "ae", None)
    if ae is None:
        raise ValueError(f"{path}: generator {gen.name!r} has no autoencoder; use a latent_flow generator file")
    try:
        model.load_autoencoder(ae, gen.latent_mean, gen.latent_std)
    except RuntimeError as e:
        raise ValueError(f"{path}: its autoencoder does not match this UniGenDet config "
                         f"(ae_channels/z_ch/ae_blocks): {e}") from None
    return model
