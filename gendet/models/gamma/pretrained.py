"""`gamma_lite`: GAMMA on a frozen pretrained backbone, trained on cached region tokens.

Frozen ImageNet EfficientNet-Lite2 (the probe's backbone and taps) at native resolution; its features
pooled over a `grid` x `grid` partition of each crop are the region tokens (cached by the benchmark).
Trainable:
    tokens -> Linear + LayerNorm + positions -> one self-attention block = segmentation features
      |-> mask head   (per region: manipulated? 1 logit)
      '-> source head (per region: real / generated / copied, 3 logits)
    [CLS] (mean of the projected tokens + a learned query) -> reverse cross-attention over the
    segmentation features (`rca`) -> LayerNorm -> Linear -> image logit (P(generated or manipulated))
Loss: w_cls BCE(image) + w_mask BCE(region mask) + w_source CE(region source), region targets the
share of each cell's pixels by source (soft targets). Regions of an unedited image take their label
(real -> real, generated -> generated). `seg_heads=False` drops both pixel heads and their losses.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gendet.data.augment import make_augment, merge_augment
from gendet.data.manipulations.codes import SOURCE_GENERATED, SOURCE_NAMES, SOURCE_REAL
from gendet.models.backbones import attach_backbone, get_spec
from gendet.models.cached_head import CachedHeadDetector, adamw_loop, balanced_batches
from gendet.models.gamma.heads import ReverseCrossAttention
from gendet.models.probe import TRANSFER_AUGMENT, TRANSFER_INPUT


def label_targets(labels: np.ndarray, n_tokens: int) -> np.ndarray:
    """(N, n_tokens, 3) region source shares of unedited images: all real or all generated."""
    out = np.zeros((len(labels), n_tokens, len(SOURCE_NAMES)), dtype=np.float32)
    out[np.asarray(labels) == 0, :, SOURCE_REAL] = 1.0
    out[np.asarray(labels) == 1, :, SOURCE_GENERATED] = 1.0
    return out


class GammaLite(CachedHeadDetector):
    name = "gamma_lite"
    onnx_unsupported = 'region tokens pool to a grid (adaptive_avg_pool2d) over an input size the tracer cannot see'
    description = ("GAMMA on a frozen pretrained backbone: EfficientNet-Lite2 region tokens, mask + source heads, "
                   "reverse cross-attention into the classification token; manipulated training data with masks")
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 260, **TRANSFER_INPUT, "backbone": "lite2", "taps": [1, 2, 3, 4, 5], "pretrained": True,
        "backbone_sha256": None, "augment": TRANSFER_AUGMENT,
        "grid": 4, "hidden": 128, "heads": 4, "rca": True, "seg_heads": True,
        "w_cls": 1.0, "w_mask": 0.5, "w_source": 0.5, "steps": 400, "batch": 64, "lr": 1e-3, "weight_decay": 0.05,
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "crops": 1, "taps": [1], "pretrained": False,
                                              "grid": 2, "hidden": 32, "heads": 2, "steps": 4}
    relevance_source = "predicted mask"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        c = self.config
        spec = get_spec(str(c["backbone"]))
        if "mean" not in config:
            c["mean"], c["std"] = list(spec.mean), list(spec.std)
        for k in ("w_cls", "w_mask", "w_source"):
            if float(c[k]) < 0:
                raise ValueError(f"{k} must be >= 0, got {c[k]}")
        self.backbone = attach_backbone(c).eval()
        g, h = int(c["grid"]), int(c["hidden"])
        self.n_tokens, self.dim = g * g, self.backbone.feature_dim
        self.register_buffer("feat_mean", torch.zeros(self.dim))
        self.register_buffer("feat_std", torch.ones(self.dim))
        self.proj = nn.Sequential(nn.Linear(self.dim, h), nn.LayerNorm(h))
        self.pos = nn.Parameter(torch.randn(1, self.n_tokens, h) * 0.02)
        self.seg_block = nn.TransformerEncoderLayer(h, int(c["heads"]), 2 * h, dropout=0.0, batch_first=True,
                                                    norm_first=True)
        self.mask_head = nn.Linear(h, 1)
        self.source_head = nn.Linear(h, len(SOURCE_NAMES))
        self.query = nn.Parameter(torch.zeros(1, 1, h))
        self.rca = ReverseCrossAttention(h, int(c["heads"]))
        self.cls_norm = nn.LayerNorm(h)
        self.cls_out = nn.Linear(h, 1)
        self.fit_info: dict[str, Any] = {}

    def frozen_identity(self) -> dict[str, Any]:
        c = self.config
        return {k: c.get(k) for k in ("backbone", "backbone_sha256", "taps", "pretrained", "grid")}

    def train_augment(self) -> Any:
        return make_augment(**self.config["augment"])

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.tokens(x, int(self.config["grid"])).flatten(1).float()

    def outputs(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        tok = feats.reshape(-1, self.n_tokens, self.dim)
        seg = self.seg_block(self.proj((tok - self.feat_mean) / self.feat_std) + self.pos)
        cls = self.query + seg.mean(dim=1, keepdim=True)
        if self.config["rca"]:
            cls, _ = self.rca(cls, seg)
        logit = self.cls_out(self.cls_norm(cls[:, 0])).squeeze(-1)
        return {"logit": logit, "mask_logits": self.mask_head(seg).squeeze(-1), "source_logits": self.source_head(seg)}

    def head_logits_tensor(self, feats: torch.Tensor) -> torch.Tensor:
        return self.outputs(feats)["logit"]

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self.outputs(self.backbone_features(batch["image"]))
        return {**out, "prob": torch.sigmoid(out["logit"])}

    def objective(self, out: dict[str, torch.Tensor], labels: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
        """w_cls BCE(image) + (with seg heads) w_mask BCE(region manipulated share) + w_source CE(region shares)."""
        c = self.config
        loss = float(c["w_cls"]) * F.binary_cross_entropy_with_logits(out["logit"], labels.float())
        if c["seg_heads"]:
            manip = 1.0 - shares[..., SOURCE_REAL]
            loss = loss + float(c["w_mask"]) * F.binary_cross_entropy_with_logits(out["mask_logits"], manip)
            logp = F.log_softmax(out["source_logits"], dim=-1)
            loss = loss - float(c["w_source"]) * (shares * logp).sum(-1).mean()
        return loss

    def loss(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The epoch trainer's loss: region shares from the batch's source maps when it has them, else the label."""
        if "source" in batch:
            onehot = F.one_hot(batch["source"].long(), len(SOURCE_NAMES)).permute(0, 3, 1, 2).float()
            shares = F.adaptive_avg_pool2d(onehot, int(self.config["grid"])).flatten(2).transpose(1, 2)
        else:
            shares = torch.from_numpy(label_targets(batch["label"].cpu().numpy(), self.n_tokens))
        total = self.objective(out, batch["label"], shares.to(out["logit"].device))
        return {"loss": total}

    def region_mask(self, feats: np.ndarray) -> np.ndarray:
        """P(manipulated) per region, (N, grid, grid), of cached features (N, F)."""
        self.eval()
        with torch.no_grad():
            m = torch.sigmoid(self.outputs(torch.from_numpy(np.asarray(feats, dtype=np.float32)))["mask_logits"])
        g = int(self.config["grid"])
        return m.numpy().reshape(-1, g, g)

    def fit_head(self, raw: np.ndarray, labels: np.ndarray, seed: int = 0,
                 region_sources: np.ndarray | None = None) -> None:
        """Fit on cached features (N, F); `region_sources` (N, regions, 3): each region's pixel shares by source
        (default: from the image label)."""
        c = self.config
        x = torch.from_numpy(np.asarray(raw, dtype=np.float32))
        y = np.asarray(labels).astype(int)
        src = label_targets(y, self.n_tokens) if region_sources is None else np.asarray(region_sources, np.float32)
        if src.shape != (len(y), self.n_tokens, len(SOURCE_NAMES)):
            raise ValueError(f"region_sources must be (N, {self.n_tokens}, 3), got {src.shape}")
        flat = x.reshape(-1, self.dim)
        with torch.no_grad():
            self.feat_mean.copy_(flat.mean(0))
            self.feat_std.copy_(flat.std(0) + 1e-6)
        src_t = torch.from_numpy(src)
        y_t = torch.from_numpy(y)
        torch.manual_seed(seed)
        batches = list(balanced_batches(y, int(c["batch"]), int(c["steps"]), seed))
        seg = bool(c["seg_heads"])
        self.train()

        def step_loss(step: int) -> torch.Tensor:
            idx = torch.from_numpy(batches[step])
            return self.objective(self.outputs(x[idx]), y_t[idx], src_t[idx])

        params = [p for n, p in self.named_parameters()
                  if not self._is_frozen(n) and (seg or not n.startswith(("mask_head", "source_head")))
                  and (c["rca"] or not n.startswith("rca"))]
        curve = adamw_loop(params, int(c["steps"]), float(c["lr"]), float(c["weight_decay"]), step_loss)
        self.eval()
        self.fit_info = {"loss_curve": curve}
