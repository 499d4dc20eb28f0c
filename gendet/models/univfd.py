"""UnivFD (Ojha et al., CVPR 2023): a linear probe on frozen CLIP image embeddings.

Backbone: the open_clip vision tower of `clip_model` (default ViT-L-14 with QuickGELU,
the OpenAI CLIP UnivFD uses), 224 px, CLIP mean/std. Its weights come only from a local
file via `load_backbone_weights(path)` (OpenAI/open_clip state dict with "visual.*" keys,
a vision-only state dict, safetensors, or OpenAI's TorchScript .pt). A model whose
backbone was never loaded refuses to run, unless `allow_random_backbone=True`, which
is meant for tests and tiny CPU runs and is then not UnivFD (a warning says so).

Head: `fc`, Linear(embed_dim, 1) on the raw projected embedding (as in their code),
so their `fc_weights.pth` maps onto it directly. The backbone is frozen: no gradients
and eval mode even while the detector trains (`train()` is overridden).
Inputs of another size than the tower's are resized (bicubic) to it inside the model.
`clip_vision_cfg` + `clip_embed_dim` build a custom (e.g. tiny) tower from open_clip's
config classes instead of a named model. Train-time augmentation: horizontal flip only.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gendet.data.augment import make_augment, merge_augment
from gendet.data.preprocess import ImageOp
from gendet.extras import require
from gendet.models.base import Detector
from gendet.models.import_weights import load_strict, read_state_file, weights_record

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_clip_vision(
    clip_model: str, vision_cfg: dict[str, Any] | None = None, embed_dim: int | None = None, quick_gelu: bool = True
) -> nn.Module:
    """An open_clip vision tower, randomly initialised (nothing is downloaded)."""
    open_clip = require("open_clip", "the univfd detector (CLIP)")
    if vision_cfg is None:
        cfg = open_clip.get_model_config(clip_model)
        if cfg is None:
            raise ValueError(f"unknown open_clip model {clip_model!r}; known: {', '.join(open_clip.list_models())}")
        vision_cfg, embed_dim = cfg["vision_cfg"], cfg["embed_dim"]
        quick_gelu = quick_gelu or bool(cfg.get("quick_gelu", False))
    elif embed_dim is None:
        raise ValueError("clip_vision_cfg needs clip_embed_dim")
    return open_clip.model._build_vision_tower(int(embed_dim), dict(vision_cfg), quick_gelu=quick_gelu)


class UnivFD(Detector):
    name = "univfd"
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"label": "univfd (CLIP ViT, local weights)", "config": {"image_size": 224}, "needs_weights": True},
        "standard": {"label": "univfd", "needs_weights": True}}
    description = (
        "UnivFD (Ojha et al. 2023): frozen CLIP ViT-L/14 image embedding + linear head; CLIP weights only "
        "from a local file (--weights); allow_random_backbone=True is for tests and is not UnivFD"
    )
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "resize": True,
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "clip_model": "ViT-L-14",
        "clip_quick_gelu": True,  # OpenAI's CLIP weights were trained with QuickGELU
        "clip_vision_cfg": None,
        "clip_embed_dim": None,
        "allow_random_backbone": False,
        "backbone_weights": None,  # {"path", "sha256"} once loaded
        "augment": {"flip_prob": 0.5},
    }
    small_config: ClassVar[dict[str, Any]] = {
        "image_size": 32,
        "clip_model": "tiny-vit",
        "clip_vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "clip_embed_dim": 32,
        "allow_random_backbone": True,
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        c = self.config
        self.visual = build_clip_vision(
            str(c["clip_model"]), c["clip_vision_cfg"], c["clip_embed_dim"], bool(c["clip_quick_gelu"])
        )
        self.visual.requires_grad_(False)
        self.visual.eval()
        self.fc = nn.Linear(int(self.visual.output_dim), 1)
        # Saved with the weights, so a checkpoint remembers whether its backbone is real CLIP.
        self.register_buffer("backbone_loaded", torch.zeros((), dtype=torch.bool))
        self._warned_random = False

    def train(self, mode: bool = True) -> UnivFD:
        super().train(mode)
        self.visual.eval()  # frozen: dropout off, and no state changes while the head trains
        return self

    def train_augment(self) -> ImageOp | None:
        return make_augment(**self.config["augment"])

    def _check_backbone(self) -> None:
        if bool(self.backbone_loaded):
            return
        if not self.config["allow_random_backbone"]:
            raise RuntimeError(
                f"univfd: no CLIP weights loaded for {self.config['clip_model']}. Give a local CLIP state dict "
                "with --weights PATH (e.g. OpenAI ViT-L-14; gendet never downloads), or set "
                "allow_random_backbone=True for tests (then this is not UnivFD)."
            )
        if not self._warned_random:
            warnings.warn("univfd is running on a RANDOM CLIP backbone (allow_random_backbone=True): "
                          "fine for tests, meaningless as UnivFD", stacklevel=3)
            self._warned_random = True

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_backbone()
        size = tuple(self.visual.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        return self.visual(x)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats).squeeze(-1)

    def load_backbone_weights(self, path: str) -> None:
        """CLIP weights from a local file: a full CLIP state dict ("visual.*" used) or a vision-only one."""
        state = read_state_file(path)
        if any(k.startswith("visual.") for k in state):
            state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        load_strict(self.visual, state, path)
        self.backbone_loaded.fill_(True)
        self.config["backbone_weights"] = weights_record(path)
