"""Reading published weight files and converting them into gendet checkpoints.

Published detectors ship their weights in their own key layouts:
- CNNDetection (Wang et al. 2020): `{"model": <torchvision ResNet-50 state dict, fc 2048->1>, "optimizer": ..., ...}`
  -> gendet `cnnspot` (keys gain the prefix "net.").
- UnivFD (Ojha et al. 2023): `fc_weights.pth` = `{"weight": [1, 768], "bias": [1]}`, the linear head
  on CLIP ViT-L/14 image embeddings only; the CLIP weights come from a separate local file
  -> gendet `univfd` (head keys "fc.*", backbone "visual.*").
- NPR (Tan et al. 2024): a state dict of their two-stage ResNet (conv1 3x3/2, layer1, layer2, fc1 512->1),
  possibly wrapped in {"model": ...} and/or with a DataParallel "module." prefix -> gendet `npr` ("net." prefix).

Everything is loaded with `torch.load(weights_only=True)` (or safetensors) and checked
strictly: any missing, unexpected or mis-shaped key is a CheckpointError listing them.
TorchScript archives (OpenAI's CLIP release is one) are refused: loading one runs code stored
in the file. Only inside `trust_torchscript()` (the CLIs' --trust-torchscript) are they loaded.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from gendet.data.preprocess import DEFAULT_JPEG_QUALITY
from gendet.lazy_import import file_sha256
from gendet.models.base import Detector
from gendet.models.checkpoint import CheckpointError, check_state_dict, save_checkpoint
from gendet.models.registry import create_detector

# --format name -> the gendet detector it becomes
FORMATS: dict[str, str] = {"cnndetection": "cnnspot", "univfd": "univfd", "npr": "npr"}
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "net")


def weights_record(path: str | os.PathLike) -> dict[str, str]:
    """What a config.json records about a weights file it was built from."""
    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}


_TRUST_TORCHSCRIPT = contextvars.ContextVar("gendet_trust_torchscript", default=False)


@contextlib.contextmanager
def trust_torchscript(trusted: bool = True) -> Iterator[None]:
    """Within this block, TorchScript weight files are loaded (running the code they carry)."""
    token = _TRUST_TORCHSCRIPT.set(trusted)
    try:
        yield
    finally:
        _TRUST_TORCHSCRIPT.reset(token)


def torchscript_trusted() -> bool:
    return _TRUST_TORCHSCRIPT.get()


def refuse_torchscript(path: str | os.PathLike) -> CheckpointError:
    return CheckpointError(
        f"{path} is a TorchScript archive: loading it runs code stored in the file, so gendet does not load it by "
        "default. If you trust where it came from, pass --trust-torchscript (gendet import-weights, gendet train); "
        "otherwise save its state_dict as .safetensors with a tool you trust and give that file"
    )


def is_torchscript(path: str | os.PathLike) -> bool:
    # OpenAI's CLIP release (ViT-L-14.pt) is a TorchScript archive, not a pickled state dict.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())


def unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside common wrappers ({"model": ...}, {"state_dict": ...}) and drop "module."."""
    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
                continue
        kind = type(obj).__name__
        keys = f" with keys {', '.join(map(str, list(obj)[:10]))}" if isinstance(obj, Mapping) else ""
        raise CheckpointError(f"{source}: no state dict of tensors found (got {kind}{keys})")
    else:
        raise CheckpointError(f"{source}: state dict nested too deeply")
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a local weights file (.safetensors, or a torch .pth/.pt/.bin read with weights_only=True)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"weights file {p} not found (gendet never downloads weights; give a local file)")
    if p.suffix == ".safetensors":
        try:
            return unwrap_state_dict(load_file(str(p)), str(p))
        except CheckpointError:
            raise
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(f"cannot read {p} as safetensors: {e}") from e
    if is_torchscript(p):
        if not torchscript_trusted():
            raise refuse_torchscript(p)
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; OpenAI's CLIP file still is one
                warnings.simplefilter("ignore", FutureWarning)
                scripted = torch.jit.load(str(p), map_location="cpu")
            return unwrap_state_dict(scripted.state_dict(), str(p))
        except RuntimeError as e:
            raise CheckpointError(f"cannot read TorchScript archive {p}: {e}") from e
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not a plain weights file"
        raise CheckpointError(
            f"cannot read {p} with torch.load(weights_only=True): {type(e).__name__}: {str(e)[:300]}"
        ) from e
    return unwrap_state_dict(obj, str(p))


def fill_bn_counters(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add BatchNorm `num_batches_tracked` counters that files saved before PyTorch 0.4.1 lack.

    They count training steps and are not weights; every other key stays strict.
    """
    out = dict(state)
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in out and k.rsplit(".", 1)[0] + ".weight" in out:
            out[k] = torch.zeros_like(v)
    return out


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """check_state_dict (lists every mismatch) then a strict load."""
    state = fill_bn_counters(model, state)
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)


# -- format detection and conversion -------------------------------------------------------------

def guess_format(state: Mapping[str, torch.Tensor]) -> str | None:
    """Which published layout a state dict looks like (None if none)."""
    keys = set(state)
    if keys <= {"weight", "bias"} and "weight" in keys and state["weight"].ndim == 2:
        return "univfd"
    if "fc1.weight" in keys and "layer2.0.conv1.weight" in keys and "layer3.0.conv1.weight" not in keys:
        return "npr"
    if "fc.weight" in keys and "layer4.0.conv1.weight" in keys:
        return "cnndetection"
    return None


def _count_blocks(state: Mapping[str, torch.Tensor], layer: str) -> int:
    idx = {int(k.split(".")[1]) for k in state if k.startswith(layer + ".") and k.split(".")[1].isdigit()}
    return max(idx) + 1 if idx else 0


def _resnet_arch(state: Mapping[str, torch.Tensor]) -> str:
    """torchvision arch name from a ResNet state dict's block structure."""
    bottleneck = "layer1.0.conv3.weight" in state
    blocks = [_count_blocks(state, f"layer{i}") for i in range(1, 5)]
    table = {(False, (2, 2, 2, 2)): "resnet18", (False, (3, 4, 6, 3)): "resnet34", (True, (3, 4, 6, 3)): "resnet50"}
    arch = table.get((bottleneck, tuple(blocks)))
    if arch is None:
        raise CheckpointError(
            f"ResNet with {'bottleneck' if bottleneck else 'basic'} blocks {blocks} is not one of resnet18/34/50"
        )
    return arch


def _require_format(state: Mapping[str, torch.Tensor], fmt: str, source: str, expected: str) -> None:
    got = guess_format(state)
    if got != fmt:
        hint = f"; it looks like --format {got}" if got else ""
        sample = ", ".join(sorted(state)[:8])
        raise CheckpointError(
            f"{source} is not a {fmt} checkpoint: expected {expected}{hint}. First keys: {sample}"
        )


def _build_cnndetection(src: str, overrides: dict[str, Any]) -> Detector:
    state = read_state_file(src)
    _require_format(state, "cnndetection", src, "a torchvision ResNet state dict with fc.weight [1, 2048]")
    cfg = {"arch": _resnet_arch(state), **overrides}
    det = create_detector("cnnspot", **cfg)
    load_strict(det.net, state, src)
    return det


def _build_npr(src: str, overrides: dict[str, Any]) -> Detector:
    state = read_state_file(src)
    _require_format(state, "npr", src, "NPR's ResNet keys conv1, layer1, layer2, fc1 (no layer3)")
    cfg = {
        "block": "bottleneck" if "layer1.0.conv3.weight" in state else "basic",
        "layers": [_count_blocks(state, "layer1"), _count_blocks(state, "layer2")],
        "width": int(state["conv1.weight"].shape[0]),
        **overrides,
    }
    det = create_detector("npr", **cfg)
    load_strict(det.net, state, src)
    return det


def _build_univfd(src: str, clip_weights: str | None, clip_model: str | None, overrides: dict[str, Any]) -> Detector:
    state = read_state_file(src)
    if set(state) == {"fc.weight", "fc.bias"}:
        state = {k[3:]: v for k, v in state.items()}
    _require_format(state, "univfd", src, 'the linear head only: {"weight": [1, D], "bias": [1]}')
    if not clip_weights:
        raise CheckpointError(
            "UnivFD's fc_weights.pth holds only the linear head; give the CLIP backbone with "
            "--clip-weights PATH (an OpenAI/open_clip ViT-L-14 state dict or TorchScript .pt, local file)"
        )
    cfg = dict(overrides)
    if clip_model:
        cfg["clip_model"] = clip_model
    det = create_detector("univfd", **cfg)
    det.load_backbone_weights(clip_weights)
    load_strict(det.fc, state, src)
    return det


def build_imported(
    fmt: str,
    src: str | os.PathLike,
    clip_weights: str | os.PathLike | None = None,
    clip_model: str | None = None,
    model_config: dict[str, Any] | None = None,
) -> Detector:
    """The gendet detector holding the published weights in `src` (format `fmt`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    overrides = dict(model_config or {})
    src = str(src)
    if fmt == "cnndetection":
        det = _build_cnndetection(src, overrides)
    elif fmt == "npr":
        det = _build_npr(src, overrides)
    else:
        det = _build_univfd(src, str(clip_weights) if clip_weights else None, clip_model, overrides)
    return det.eval()


def import_weights(
    fmt: str,
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    clip_weights: str | os.PathLike | None = None,
    clip_model: str | None = None,
    model_config: dict[str, Any] | None = None,
    align: str = "jpeg",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> tuple[Detector, Path]:
    """Convert a published checkpoint into a gendet checkpoint directory (model.safetensors + config.json)."""
    det = build_imported(fmt, src, clip_weights, clip_model, model_config)
    pp = det.preprocess(align=align, jpeg_quality=jpeg_quality)
    imported: dict[str, Any] = {"format": fmt, "source": weights_record(src)}
    if clip_weights:
        imported["clip_weights"] = weights_record(clip_weights)
    config = {
        "imported_from": imported,
        "preprocess": pp.to_dict(),
        "align": align,
        # The published models classify at P(generated) >= 0.5; nothing here was fitted.
        "threshold": 0.5,
        "threshold_source": "default",
    }
    return det, save_checkpoint(out_dir, det, config)
