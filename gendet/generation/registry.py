"""Name -> generator class, plus saving/loading generators.

Adding a generator family = one module + one line in GENERATORS. Entries are
"module:Class" strings imported on first use; import errors are raised, never swallowed.

A saved generator is `<path>.safetensors` (weights, optionally stored as fp16 and cast
back to fp32 on load) + `<path>.json` (name, config, training summary, seed, steps,
gendet version, command).
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from gendet.generation.base import Generator
from gendet.io import atomic_write, atomic_write_text, git_commit, read_json_checked, read_weights_checked
from gendet.lazy_import import resolve_entry
from gendet.version import VERSION

GENERATORS: dict[str, str] = {
    "dcgan": "gendet.generation.dcgan:DCGAN",
    "vae": "gendet.generation.vae:VAE",
    "pixel_flow": "gendet.generation.pixel_flow:PixelFlow",
    "latent_flow": "gendet.generation.latent_flow:LatentFlow",
    "ae_recon": "gendet.generation.ae_recon:AERecon",
    "unigendet": "gendet.models.unigendet.generator:UnifiedGenerator",
}

WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"


def get_generator_class(name: str) -> type[Generator]:
    return resolve_entry(GENERATORS, name, Generator, "generator")


def create_generator(name: str, **config: Any) -> Generator:
    """Build a registered generator; `config` overrides its default_config."""
    return get_generator_class(name)(**config)


def list_generators() -> list[str]:
    return sorted(GENERATORS)


def _base(path: str | os.PathLike) -> Path:
    """Accept 'dir/name', 'dir/name.safetensors' or 'dir/name.json'."""
    p = Path(path)
    if p.name.endswith(WEIGHTS_SUFFIX) or p.name.endswith(META_SUFFIX):
        p = p.with_suffix("")
    return p


def save_generator(gen: Generator, path: str | os.PathLike, dtype: torch.dtype = torch.float32,
                   extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write `<path>.safetensors` and `<path>.json`; floating tensors are stored as `dtype`."""
    base = _base(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous().clone()
        for k, v in gen.state_dict().items()
    }
    weights = Path(str(base) + WEIGHTS_SUFFIX)
    atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"generator": gen.name}), fsync=True)
    summary = gen.training_summary
    meta = {
        "name": gen.name,
        "family": gen.family,
        "config": gen.config,
        "storage_dtype": str(dtype).removeprefix("torch."),
        "parameters": gen.num_parameters,
        "seed": summary.get("seed"),
        "steps": summary.get("steps"),
        "training_summary": summary,
        "gendet_version": VERSION,
        "git_commit": git_commit(),
        **(extra or {}),
    }
    meta_path = Path(str(base) + META_SUFFIX)
    atomic_write_text(meta_path, json.dumps(meta, indent=2, default=str) + "\n")
    return weights, meta_path


def read_generator_meta(path: str | os.PathLike) -> dict[str, Any]:
    return read_json_checked(Path(str(_base(path)) + META_SUFFIX), f"{path} a saved gendet generator")


def load_generator(path: str | os.PathLike) -> Generator:
    """Rebuild the generator named in the JSON and load its weights strictly (cast to float32)."""
    base = _base(path)
    meta = read_generator_meta(base)
    gen = create_generator(meta["name"], **meta.get("config", {}))
    state = read_weights_checked(gen, Path(str(base) + WEIGHTS_SUFFIX))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    gen.load_state_dict(state, strict=True)
    gen.training_summary = meta.get("training_summary", {})
    return gen.eval()


def shipped_generators_dir() -> Path:
    """`gendet/assets/generators/` inside the installed package."""
    return Path(str(importlib.resources.files("gendet") / "assets" / "generators"))


def shipped_generator_path(name: str) -> Path:
    """Path (without suffix) of a generator's shipped weights; check `.with_suffix` files exist."""
    get_generator_class(name)  # unknown names fail here, not later at load time
    return shipped_generators_dir() / name
