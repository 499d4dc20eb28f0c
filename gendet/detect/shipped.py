"""The models that ship inside the package, by name (`--model NAME`, `gendet models`)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

# name -> folder under gendet/assets; "default" is what every command uses without --checkpoint/--model
SHIPPED: dict[str, str] = {
    "default": "default_model",
    "fast": "models/fast",
}


def shipped_dir(name: str) -> Path:
    if name not in SHIPPED:
        raise KeyError(f"no shipped model {name!r}; shipped: {', '.join(sorted(SHIPPED))}")
    return Path(str(resources.files("gendet"))) / "assets" / SHIPPED[name]


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """A shipped model's name, or a checkpoint directory."""
    if str(name_or_path) in SHIPPED:
        return shipped_dir(str(name_or_path))
    p = Path(name_or_path)
    if not p.is_dir():
        raise KeyError(f"{name_or_path!r} is neither a shipped model ({', '.join(sorted(SHIPPED))}) nor a "
                       "checkpoint directory")
    return p


def shipped_models() -> list[dict[str, object]]:
    """One row per shipped model: name, folder, detector, threshold, size, and its card's summary line."""
    rows = []
    for name in sorted(SHIPPED):
        d = shipped_dir(name)
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            continue
        cfg = json.loads(cfg_path.read_text())
        weights = d / "model.safetensors"
        rows.append({
            "name": name, "path": str(d), "detector": cfg.get("model"),
            "threshold": cfg.get("threshold"), "input": cfg.get("preprocess", {}),
            "megabytes": round(weights.stat().st_size / 1e6, 1) if weights.is_file() else None,
            "summary": cfg.get("card_summary", ""),
        })
    return rows
