"""`probe`: frozen pretrained backbone features + a linear head (the UnivFD recipe on offline backbones).

The backbone (gendet.models.backbones: `lite0`, `lite2`, `inception`) never trains; its
features (the head's pooled 1280-d plus the pooled outputs of the stages in `taps`) are
standardised with statistics fitted on the training features and scored by one linear
layer. Two ways to train the head, same checkpoint:
- `gendet train --model probe`: the generic trainer (AdamW on the head, augmentation per epoch);
- `fit_head(features, labels)`: L2-regularised logistic regression (scikit-learn) on features
  computed once and cached by content (gendet.models.feature_cache), which is how the
  genuine benchmark trains dozens of heads in seconds.
Inputs are crops at the backbone's native size without resizing (the traces a generator
leaves are in the pixels; resizing blurs them), several per image at test time (`crops`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from gendet.data.augment import make_augment, merge_augment
from gendet.data.preprocess import ImageOp
from gendet.models.backbones import attach_backbone, get_spec
from gendet.models.base import Detector
from gendet.models.cached_head import head_state, load_head_state

# CNNSpot's Blur+JPEG (0.5) at a lighter strength: the genuine set's photos are already JPEGs.
# The transfer recipe's input: native-resolution crops (no resize), several per image at test time, crops of
# varied scale in training; TF EfficientNet-Lite's [-1, 1] normalisation.
TRANSFER_INPUT = {"resize": False, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crops": 4,
                  "train_crop_scale": [0.6, 1.0]}
TRANSFER_AUGMENT = {"flip_prob": 0.5, "blur_prob": 0.1, "blur_sigma": [0.0, 2.0], "jpeg_prob": 0.1,
                    "jpeg_quality": [60, 100]}


class Probe(Detector):
    name = "probe"
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "genuine": {"label": "probe (EfficientNet-Lite2 + stage taps, linear head)"}}
    description = ("frozen ImageNet EfficientNet-Lite / Inception features (packaged weights, offline) with "
                   "intermediate-stage taps + a linear head; features cached by content in the benchmark")
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 260,  # EfficientNet-Lite2's own input size
        **TRANSFER_INPUT,
        "backbone": "lite2",
        "taps": [1, 2, 3, 4, 5],
        "c": 0.01,  # inverse L2 strength of fit_head's logistic regression
        "pretrained": True,  # False only for tests: random backbone, nothing loaded
        "backbone_sha256": None,  # set from the packaged file when loaded
        "augment": TRANSFER_AUGMENT,
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "crops": 1, "taps": [1], "pretrained": False}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        c = self.config
        spec = get_spec(str(c["backbone"]))
        if "mean" not in config:
            c["mean"], c["std"] = list(spec.mean), list(spec.std)
        self.backbone = attach_backbone(c).eval()
        dim = self.backbone.feature_dim
        self.register_buffer("feat_mean", torch.zeros(dim))
        self.register_buffer("feat_std", torch.ones(dim))
        self.fc = nn.Linear(dim, 1)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def train(self, mode: bool = True) -> Probe:
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics stay ImageNet's
        return self

    def train_augment(self) -> ImageOp | None:
        return make_augment(**self.config["augment"])

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (unstandardised) backbone features; what the feature cache stores. No torch.no_grad here: the
        weights are frozen (requires_grad False), but explanations need gradients with respect to the input."""
        return self.backbone(x).float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardise(self.backbone_features(x))

    def standardise(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.feat_mean) / self.feat_std

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats).squeeze(-1)

    def fit_head(self, raw: np.ndarray, labels: np.ndarray, c: float | None = None, seed: int = 0) -> None:
        """Fit standardisation + an L2 logistic regression (balanced classes) on raw features (N, D)."""
        from sklearn.linear_model import LogisticRegression

        raw = np.asarray(raw, dtype=np.float64)
        labels = np.asarray(labels).astype(int)
        if raw.ndim != 2 or raw.shape[1] != self.backbone.feature_dim or len(raw) != len(labels):
            raise ValueError(f"fit_head: expected features (N, {self.backbone.feature_dim}) and N labels, "
                             f"got {raw.shape} and {labels.shape}")
        if len(set(labels.tolist())) < 2:
            raise ValueError("fit_head needs both classes")
        mean, std = raw.mean(axis=0), raw.std(axis=0) + 1e-6
        clf = LogisticRegression(C=float(self.config["c"] if c is None else c), class_weight="balanced",
                                 max_iter=5000, random_state=seed)
        clf.fit((raw - mean) / std, labels)
        with torch.no_grad():
            self.feat_mean.copy_(torch.from_numpy(mean).float())
            self.feat_std.copy_(torch.from_numpy(std).float())
            self.fc.weight.copy_(torch.from_numpy(clf.coef_).float())
            self.fc.bias.copy_(torch.from_numpy(clf.intercept_).float())

    def head_state(self) -> dict[str, torch.Tensor]:
        return head_state(self, ("backbone",))

    def load_head_state(self, state: dict[str, torch.Tensor]) -> None:
        load_head_state(self, state, ("backbone",))

    def head_logits(self, raw: np.ndarray) -> np.ndarray:
        """The head's logits for raw cached features (N, D) or (N, crops, D) -> mean over crops."""
        with torch.no_grad():
            t = torch.from_numpy(np.asarray(raw, dtype=np.float32))
            logit = self.classifier(self.standardise(t))
        logit = logit.numpy().astype(np.float64)
        return logit.mean(axis=1) if logit.ndim == 2 else logit
