"""Checkpoints: DIR/model.safetensors + DIR/config.json, loaded strictly.

A key or shape mismatch is an error that lists every offending key; nothing is
loaded silently or partially.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import gendet
from gendet.io import atomic_write, atomic_write_text
from gendet.models.base import Detector
from gendet.models.registry import create_detector

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(Exception):
    pass


def git_commit() -> str | None:
    """The source tree's commit, when gendet runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


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
        "gendet_version": gendet.__version__,
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


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = [f"checkpoint {source} does not match the model:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            parts.append(f"  shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
        raise CheckpointError("\n".join(parts))


def read_weights_checked(model: torch.nn.Module, weights: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file and check it against `model` (CheckpointError lists every mismatch)."""
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found")
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"cannot read {weights}: {e}") from e
    check_state_dict(model, state, str(weights))
    return state


def read_json_checked(path: Path, what: str) -> dict[str, Any]:
    """A checkpoint's JSON side file; CheckpointError says `what` was expected when it is missing or broken."""
    if not path.is_file():
        raise CheckpointError(f"{path} not found: is {what}?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


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
