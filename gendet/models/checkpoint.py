"""Checkpoints: DIR/model.safetensors + DIR/config.json, loaded strictly.

A key or shape mismatch is an error that lists every offending key; nothing is
loaded silently or partially.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gendet.data.preprocess import Preprocess
from gendet.io import (  # noqa: F401 - CheckpointError, read_weights_checked: part of this module's API
    CheckpointError,
    atomic_write,
    atomic_write_text,
    check_state_dict,
    git_commit,
    read_json_checked,
    read_weights_checked,
)
from gendet.models.base import Detector
from gendet.models.registry import create_detector
from gendet.version import VERSION

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def state_dict_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage and non-contiguous tensors: store clones.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(out_dir: str | os.PathLike, detector: Detector, config: dict[str, Any]) -> Path:
    """Write weights and config. `config` adds run facts (data, seed, threshold, ...)."""
    out = Path(out_dir)
    state = state_dict_for_saving(detector)
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"model": detector.name}),
                 fsync=True)
    full = {
        "model": detector.name,
        "model_config": detector.config,
        "gendet_version": VERSION,
        "git_commit": git_commit(),
        **config,
    }
    atomic_write_text(out / CONFIG_FILE, json.dumps(full, indent=2, sort_keys=False, default=str))
    return out


def store_weights_as(ckpt_dir: str | os.PathLike, dtype: torch.dtype) -> Path:
    """Rewrite a checkpoint's floating-point weights in `dtype` (e.g. float16 halves a shipped model);
    loading casts them back into the model's own dtype. Recorded as "weights_dtype" in config.json."""
    out = Path(ckpt_dir)
    state = load_file(str(out / WEIGHTS_FILE))
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    name = read_config(out)["model"]
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"model": name}), fsync=True)
    cfg = read_config(out)
    cfg["weights_dtype"] = str(dtype).removeprefix("torch.")
    atomic_write_text(out / CONFIG_FILE, json.dumps(cfg, indent=2, sort_keys=False, default=str))
    return out / WEIGHTS_FILE


def read_config(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json_checked(Path(ckpt_dir) / CONFIG_FILE, f"{ckpt_dir} a gendet checkpoint directory")


def _build_from_config(cfg: Any, source: Path) -> Detector:
    """The detector config.json names, built only after its shapes were checked against the weights file's
    header on the meta device: a config edited to width=200000 is an error, not a 1 TB allocation."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), str):
        raise CheckpointError(f"{source / CONFIG_FILE}: expected an object with a \"model\" name")
    model_config = cfg.get("model_config", {})
    if not isinstance(model_config, dict):
        raise CheckpointError(f"{source / CONFIG_FILE}: \"model_config\" must be an object, "
                              f"got {type(model_config).__name__}")
    weights = source / WEIGHTS_FILE
    try:
        with torch.device("meta"):
            shadow = create_detector(cfg["model"], **model_config)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source / CONFIG_FILE}: cannot build {cfg['model']!r} from its model_config: "
                              f"{type(e).__name__}: {e}") from None
    except Exception:  # noqa: BLE001 - a detector that cannot be built on meta is checked after the real build
        shadow = None
    if shadow is not None and weights.is_file():
        try:
            with safe_open(str(weights), framework="pt") as f:
                shapes = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}  # noqa: SIM118
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(f"cannot read {weights}: {e}") from e
        check_state_dict(shadow, shapes, str(weights))
    try:
        return create_detector(cfg["model"], **model_config)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source / CONFIG_FILE}: cannot build {cfg['model']!r} from its model_config: "
                              f"{type(e).__name__}: {e}") from None


def checkpoint_preprocess(detector: Detector, config: dict[str, Any]) -> Preprocess:
    """The preprocessing a checkpoint was trained and thresholded with (its config), else the detector's own."""
    if config.get("preprocess"):
        return Preprocess.from_dict(config["preprocess"])
    return detector.preprocess(config.get("align", "jpeg"))


def load_checkpoint(
    ckpt_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[Detector, dict[str, Any]]:
    """Rebuild the detector named in config.json and load its weights strictly (CheckpointError otherwise)."""
    cfg = read_config(ckpt_dir)
    detector = _build_from_config(cfg, Path(ckpt_dir))
    state = read_weights_checked(detector, Path(ckpt_dir) / WEIGHTS_FILE)
    detector.load_state_dict(state, strict=True)
    detector.to(device).eval()
    return detector, cfg
