"""HRR (Hierarchical Retrospection Refinement, arXiv 2502.17862) and the detector family it shares with DIRE.

x -> per-scale views u_s -> flow reconstructions r_s (frozen shipped generator, cached) -> residuals
u_s - r_s -> fusion network -> named feature components -> head -> logit.

Heads: `refine="afr"` is the additive feature refinement (correntropy sparse additive machine,
see refinement.py), trained jointly with the fusion network; `refine="none"` is a linear head with
BCE (DIRE, and HRR's "without refinement" ablation). The reconstructor is no part of the
weights: it is loaded from the package assets, and `reconstructor_sha256` in the config (filled
in at build time) makes a checkpoint refuse other weights (`ReconstructorMismatch`).

No train-time augmentation: a random augmentation would change the image bytes every epoch, and
with them the reconstruction cache key, so every epoch would pay for reconstruction again.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from gendet.models.base import Detector
from gendet.models.hrr.fusion import FusionNetwork
from gendet.models.hrr.refinement import AdditiveRefiner, linear_head_loss, margin_residual, robust_loss
from gendet.models.hrr.retrospection import Retrospection, RetrospectionSettings

HEADS = ("afr", "none")


class RetrospectionDetector(Detector):
    """Residuals of flow reconstructions at one or more scales -> fusion network -> head."""

    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 64,
        "resize": True,
        "mean": [0.5, 0.5, 0.5],  # the network sees [-1, 1], the reconstructor's own range
        "std": [0.5, 0.5, 0.5],
        "reconstructor": "pixel_flow",
        "reconstructor_sha256": None,  # filled in from the installed weights; a checkpoint's must match
        "scales": [1.0, 0.5, 0.25],
        "t": 0.15,
        "steps": 2,
        "sampler": "euler",
        "noise_seed": 0,
        "recon_batch_size": 64,
        "residual": "input",  # x - r_s ("input") or u_s - r_s ("view"); see docs/decisions.md
        "width": 16,
        "channels": 32,
        "refine": "afr",
        "refine_loss": "welsch",
        "welsch_sigma": 1.0,
        "n_basis": 6,
        "group_lambda": 5e-2,
        "kl_beta": 1e-3,
        "keep_tol": 0.05,
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        c = self.config
        if c["refine"] not in HEADS:
            raise ValueError(f"refine must be one of {HEADS}, got {c['refine']!r}")
        settings = RetrospectionSettings(
            reconstructor=str(c["reconstructor"]), scales=tuple(float(s) for s in c["scales"]), t=float(c["t"]),
            steps=int(c["steps"]), sampler=str(c["sampler"]), noise_seed=int(c["noise_seed"]),
            batch_size=int(c["recon_batch_size"]),
        )
        # a plain attribute, not a submodule: the frozen reconstructor is not part of the weights
        self.retrospection = Retrospection(settings, c["reconstructor_sha256"])
        c["reconstructor_sha256"] = self.retrospection.sha256
        self.fusion = FusionNetwork(settings.scales, int(c["width"]), int(c["channels"]))
        n = self.fusion.n_components
        if c["refine"] == "afr":
            robust_loss(torch.zeros(1), str(c["refine_loss"]))  # validates the loss name now
            self.refiner = AdditiveRefiner(n, int(c["n_basis"]), float(c["keep_tol"]))
        else:
            self.head = nn.Sequential(nn.BatchNorm1d(n, affine=False), nn.Linear(n, 1))

    # -- model side ---------------------------------------------------------------------
    def to_reconstructor_range(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the detector's normalisation, then map [0, 1] pixels to the flow model's [-1, 1]."""
        mean = torch.tensor(self.config["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.config["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * std + mean) * 2.0 - 1.0

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_scales, 3, N, N) residuals u_s - r_s of a normalised batch (for inspection and explanations)."""
        return self.retrospection.residuals(self.to_reconstructor_range(x), str(self.config["residual"]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.residuals(x))

    def _head(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.config["refine"] == "afr":
            return self.refiner(feats)
        return self.head(feats).squeeze(-1), None

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self._head(feats)[0]

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        feats = self.features(batch["image"])
        logit, kl = self._head(feats)
        out = {"logit": logit, "prob": torch.sigmoid(logit), "features": feats}
        if kl is not None:
            out["kl"] = kl
        return out

    def loss(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        label = batch["label"]
        if c["refine"] != "afr":
            bce = linear_head_loss(out["logit"], label)
            return {"loss": bce, "bce": bce}
        fit = robust_loss(margin_residual(out["logit"], label), str(c["refine_loss"]), float(c["welsch_sigma"])).mean()
        group = self.refiner.penalty()
        kl = out["kl"]
        total = fit + float(c["group_lambda"]) * group + float(c["kl_beta"]) * kl
        return {"loss": total, str(c["refine_loss"]): fit, "group_norm": group.detach(), "kl": kl.detach()}

    # -- reporting ----------------------------------------------------------------------
    def refinement_report(self) -> dict[str, Any] | None:
        """Kept components of the additive refinement (None without one)."""
        if self.config["refine"] != "afr":
            return None
        return self.refiner.report(self.fusion.component_names())

    def retrospection_info(self) -> dict[str, Any]:
        return self.retrospection.describe()


class HRR(RetrospectionDetector):
    name = "hrr"
    # cached flow reconstructions, 4 epochs (gendet.bench.hrr_ablation)
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"label": "hrr (pixel_flow reconstructor, t 0.15, 2 steps)", "config": {"image_size": 64},
                 "train": {"epochs": 4}, "in_default_run": False}}
    onnx_unsupported = "its reconstruction runs a flow sampler with Python-side step arithmetic (not one graph)"
    description = ("HRR (Yuan et al. 2025): flow-model reconstruction residuals at scales 1, 1/2, 1/4, a fusion CNN, "
                   "and a correntropy sparse additive refinement with a KL bottleneck")
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "scales": [1.0, 0.5], "steps": 1, "width": 4,
                                              "channels": 8}

