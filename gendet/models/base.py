"""The detector contract every model in gendet implements (DeepfakeBench-style).

A detector is an nn.Module with:
- `default_config`: its hyper-parameters (one config per detector, overridable);
- `preprocess(align)`: how images are prepared for it (size, resize, normalisation);
- `train_augment()`: its own train-time augmentation, or None;
- `features(x)` -> feature tensor, `classifier(features)` -> logits of shape (B,);
- `forward(batch)` on a dict with "image" -> dict with "logit" and "prob" (= P(generated));
- `loss(batch, out)` -> dict with "loss" (the total to minimise) and named parts;
- `small_config`: overrides for a CPU-sized build (tests, smoke runs).
Given this, training, the protocol, the CLI and the server work unchanged.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gendet.data.preprocess import DEFAULT_JPEG_QUALITY, IMAGENET_MEAN, IMAGENET_STD, ImageOp, Preprocess


class Detector(nn.Module):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    CROP_CHUNK: ClassVar[int] = 32  # crops per forward when scoring a (B, crops, C, H, W) batch
    # why `gendet export --format onnx` cannot export this detector (None: it can; see gendet.detect.onnx_export)
    onnx_unsupported: ClassVar[str | None] = None
    small_config: ClassVar[dict[str, Any]] = {}
    # how `gendet bench` runs this class, per preset (its own attribute, not inherited): {"label": shown in tables,
    # "config": default_config overrides, "train": TrainConfig overrides over the preset's, "needs_weights":
    # skipped unless local backbone weights are given, "in_default_run": False = only when named in --detectors}
    bench: ClassVar[dict[str, dict[str, Any]]] = {}
    # what `gendet explain` calls the heat map of a detector with its own `relevance` (gendet.models.hooks);
    # a probability map (a predicted mask) is shown as is instead of scaled to its maximum
    relevance_source: ClassVar[str] = "attention"
    relevance_is_probability: ClassVar[bool] = False
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "resize": True,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "crops": 1,  # evaluation crops per image (see Preprocess.crops); scored as the mean logit
        "train_crop_scale": [1.0, 1.0],  # see Preprocess.train_crop_scale
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """The contract, checked when a detector class is defined: it scores images through its own
        `forward`, or through `features` + `classifier` (the base forward); a name registers it."""
        super().__init_subclass__(**kwargs)
        own = {m for m in ("forward", "features", "classifier") if getattr(cls, m) is not getattr(Detector, m)}
        if "forward" not in own and own != {"features", "classifier"}:
            missing = sorted({"features", "classifier"} - own)
            raise TypeError(f"detector {cls.__name__} must implement forward(batch), or features(x) and "
                            f"classifier(features): {', '.join(missing)} missing")

    def __init__(self, **config: Any) -> None:
        super().__init__()
        merged = copy.deepcopy(Detector.default_config)
        merged.update(copy.deepcopy(type(self).default_config))
        unknown = set(config) - set(merged)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown config keys {sorted(unknown)}; known: {sorted(merged)}"
            )
        merged.update(config)
        self.config: dict[str, Any] = merged

    # -- data side ---------------------------------------------------------
    def preprocess(self, align: str = "jpeg", jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> Preprocess:
        c = self.config
        return Preprocess(
            size=int(c["image_size"]),
            resize=bool(c["resize"]),
            align=align,
            jpeg_quality=jpeg_quality,
            mean=tuple(c["mean"]),
            std=tuple(c["std"]),
            crops=int(c.get("crops", 1)),
            train_crop_scale=tuple(c.get("train_crop_scale", (1.0, 1.0))),
        )

    def train_augment(self) -> ImageOp | None:
        """Train-time augmentation owned by this detector (never used at evaluation)."""
        return None

    # -- model side --------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        """Like nn.Module's call; a (B, crops, C, H, W) image batch (Preprocess.crops > 1) is scored crop by
        crop and each image gets the mean of its crops' logits (and of their features)."""
        image = batch.get("image") if isinstance(batch, dict) else None
        if not (isinstance(image, torch.Tensor) and image.ndim == 5):
            return super().__call__(batch, *args, **kwargs)
        b, n = image.shape[:2]
        flat = image.flatten(0, 1)
        # Forward at most CROP_CHUNK crops at a time: a batch of 32 images x 4 crops at 260 px held 6.9 GB
        # of activations in one forward; chunks bound the peak without changing a score.
        outs = [super(Detector, self).__call__({**batch, "image": flat[i:i + self.CROP_CHUNK]}, *args, **kwargs)
                for i in range(0, flat.shape[0], self.CROP_CHUNK)]
        crop_logits = torch.cat([o["logit"].reshape(-1) for o in outs]).reshape(b, n)
        logit = crop_logits.mean(dim=1)
        merged = {"logit": logit, "prob": torch.sigmoid(logit), "crop_logits": crop_logits}
        if all(isinstance(o.get("features"), torch.Tensor) for o in outs):
            feats = torch.cat([o["features"] for o in outs])
            if feats.shape[0] == b * n:
                merged["features"] = feats.reshape(b, n, *feats.shape[1:]).mean(dim=1)
        return merged

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        feats = self.features(batch["image"])
        logit = self.classifier(feats).reshape(-1)
        return {"logit": logit, "prob": torch.sigmoid(logit), "features": feats}

    def loss(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = batch["label"].to(out["logit"].dtype)
        bce = F.binary_cross_entropy_with_logits(out["logit"], target)
        return {"loss": bce, "bce": bce}

    # -- weights -----------------------------------------------------------
    def load_backbone_weights(self, path: str) -> None:
        """Load pretrained backbone weights from a local file (no downloads, ever)."""
        raise ValueError(f"detector {self.name!r} has no pretrained backbone to load")

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
