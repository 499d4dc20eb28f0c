"""GAMMA: a classification head, two segmentation heads and a reverse cross-attention on one backbone.

    image -> backbone pyramid --(coarsest level)--> classification tokens -> self-attention
                      |                                         |  reverse cross-attention (queries)
                      +--> SegDecoder -> segmentation features -+  (keys/values)
                                            |-> mask head   (1 logit per pixel: manipulated?)
                                            '-> source head (3 logits per pixel: real / generated / copied)
    classification tokens -> [CLS] -> LayerNorm -> Linear -> logit (P(generated) = sigmoid)

Loss: w_cls * BCE(image) + w_mask * BCE(pixel mask) + w_source * CE(pixel source). Pixel targets
come from the batch ("mask", "source": ImageDataset reads them from mask files) or, when the batch
has none, from the label (real -> every pixel real, generated -> every pixel generated). A zero
weight drops its term from the graph. Switches: `rca` (reverse cross-attention) and `seg_heads`
(both pixel heads and their losses); with both off the model is a plain token classifier.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gendet.data.manipulations.codes import SOURCE_GENERATED, SOURCE_NAMES, SOURCE_REAL
from gendet.models.base import Detector
from gendet.models.gamma.backbone import build_backbone
from gendet.models.gamma.heads import PixelHead, ReverseCrossAttention, SegDecoder, TokenGrid
from gendet.models.import_weights import weights_record

# The CPU build the tiny benchmark and the ablation use (64 px; ~0.4 M parameters).
CPU_CONFIG: dict[str, Any] = {"image_size": 64, "backbone": "cnn", "widths": [16, 32, 64, 128], "seg_dim": 16,
                              "token_dim": 64, "heads": 4}


class GammaDetector(Detector):
    name = "gamma"
    # its manipulated data: `gendet bench --ablation gamma`
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"label": "gamma (CPU backbone)", "config": CPU_CONFIG, "in_default_run": False}}
    onnx_unsupported = 'its token grid pools with adaptive_avg_pool2d over an input size the tracer cannot see'
    description = ("GAMMA: classification head + two segmentation heads (manipulated mask, per-pixel source: "
                   "real/generated/copied) + reverse cross-attention from segmentation features into the "
                   "classification tokens; trained on manipulated and fully generated images")
    # GPU size: torchvision ResNet-50 pyramid at 224 px (ImageNet init from a local file via --weights).
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 224, "resize": True, "backbone": "resnet50", "widths": [16, 32, 64, 128],
        "seg_dim": 128, "token_dim": 256, "heads": 8, "cls_grid": 4, "seg_grid": 8,
        "rca": True, "seg_heads": True, "w_cls": 1.0, "w_mask": 0.5, "w_source": 0.5,
        "pretrained": False, "backbone_weights": None,
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "backbone": "cnn", "widths": [8, 16, 32, 32],
                                              "seg_dim": 16, "token_dim": 32, "heads": 2}
    relevance_source = "predicted mask"  # gendet explain: the heat map is the mask head's output
    relevance_is_probability = True  # shown as is, not rescaled to its maximum

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        c = self.config
        for k in ("w_cls", "w_mask", "w_source"):
            if float(c[k]) < 0:
                raise ValueError(f"{k} must be >= 0, got {c[k]}")
        dim = int(c["token_dim"])
        self.backbone = build_backbone(str(c["backbone"]), c["widths"])
        chans = self.backbone.channels
        self.cls_tokens = TokenGrid(chans[-1], dim, int(c["cls_grid"]))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = nn.TransformerEncoderLayer(dim, int(c["heads"]), 2 * dim, dropout=0.0, activation="gelu",
                                                  batch_first=True, norm_first=True)
        # the decoder exists when something reads it: the pixel heads or the reverse cross-attention
        needs_seg = bool(c["seg_heads"]) or bool(c["rca"])
        self.decoder = SegDecoder(chans, int(c["seg_dim"])) if needs_seg else None
        self.mask_head = PixelHead(int(c["seg_dim"]), 1) if c["seg_heads"] else None
        self.source_head = PixelHead(int(c["seg_dim"]), len(SOURCE_NAMES)) if c["seg_heads"] else None
        self.seg_tokens = TokenGrid(int(c["seg_dim"]), dim, int(c["seg_grid"])) if c["rca"] else None
        self.rca = ReverseCrossAttention(dim, int(c["heads"])) if c["rca"] else None
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    # -- forward -------------------------------------------------------------------------------
    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output: features (B, D), logit (B,), and when built seg_features, mask_logit (B,1,h,w),
        source_logit (B,3,h,w), rca_weights (B, Nq, Nk)."""
        pyramid = self.backbone(x)
        out: dict[str, torch.Tensor] = {}
        tokens = self.cls_tokens(pyramid[-1])
        tokens = self.encoder(torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1))
        if self.decoder is not None:
            seg = self.decoder(pyramid)
            out["seg_features"] = seg
            if self.mask_head is not None and self.source_head is not None:
                out["mask_logit"] = self.mask_head(seg)
                out["source_logit"] = self.source_head(seg)
            if self.rca is not None and self.seg_tokens is not None:
                tokens, out["rca_weights"] = self.rca(tokens, self.seg_tokens(seg))
        out["features"] = self.norm(tokens[:, 0])
        out["logit"] = self.head(out["features"]).reshape(-1)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)["features"]

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats).reshape(-1)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self.run(batch["image"])
        out["prob"] = torch.sigmoid(out["logit"])
        return out

    # -- loss ----------------------------------------------------------------------------------
    @staticmethod
    def pixel_targets(batch: dict[str, Any], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask (B,1,H,W) float, source (B,H,W) long) from the batch, else implied by the labels."""
        if "mask" in batch and "source" in batch:
            return batch["mask"].float(), batch["source"].long()
        label = batch["label"].long()
        source = torch.where(label == 1, SOURCE_GENERATED, SOURCE_REAL).view(-1, 1, 1).expand(-1, *size)
        return (source != SOURCE_REAL).float()[:, None], source.contiguous()

    def loss(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        parts: dict[str, torch.Tensor] = {}
        weights = {"cls": float(c["w_cls"]), "mask": float(c["w_mask"]), "source": float(c["w_source"])}
        if weights["cls"] > 0:
            parts["cls"] = F.binary_cross_entropy_with_logits(out["logit"], batch["label"].to(out["logit"].dtype))
        if "mask_logit" in out and (weights["mask"] > 0 or weights["source"] > 0):
            size = tuple(batch["image"].shape[-2:])
            mask, source = self.pixel_targets(batch, size)
            if weights["mask"] > 0:
                logits = F.interpolate(out["mask_logit"], size=size, mode="bilinear", align_corners=False)
                parts["mask"] = F.binary_cross_entropy_with_logits(logits, mask.to(logits.dtype))
            if weights["source"] > 0:
                logits = F.interpolate(out["source_logit"], size=size, mode="bilinear", align_corners=False)
                parts["source"] = F.cross_entropy(logits, source)
        if not parts:
            raise ValueError("every loss term is switched off (w_cls = 0 and no pixel term)")
        total = sum(weights[k] * v for k, v in parts.items())
        return {"loss": total, **parts}

    # -- pixel outputs -------------------------------------------------------------------------
    @torch.no_grad()
    def predict_pixels(self, x: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """At the input size: mask (B,H,W) = P(manipulated), source (B,3,H,W) probabilities; None without heads."""
        out = self.run(x)
        if "mask_logit" not in out:
            return None
        size = tuple(x.shape[-2:])
        mask = F.interpolate(out["mask_logit"].float(), size=size, mode="bilinear", align_corners=False)
        source = F.interpolate(out["source_logit"].float(), size=size, mode="bilinear", align_corners=False)
        return {"mask": torch.sigmoid(mask)[:, 0], "source": torch.softmax(source, dim=1), "prob":
                torch.sigmoid(out["logit"].float())}

    def relevance(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """`gendet explain`'s heat map: the predicted mask, P(manipulated) per pixel (B, H, W)."""
        pixels = self.predict_pixels(batch["image"])
        return None if pixels is None else pixels["mask"]

    def load_backbone_weights(self, path: str) -> None:
        if not hasattr(self.backbone, "load_imagenet"):
            raise ValueError("the cnn backbone has no published weights; use backbone=resnet18/34/50 for --weights")
        self.backbone.load_imagenet(path)
        self.config["pretrained"] = True
        self.config["backbone_weights"] = weights_record(path)
