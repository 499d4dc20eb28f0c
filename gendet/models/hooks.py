"""The optional parts of the detector contract, as typed Protocols.

A detector (gendet.models.base.Detector) must score images; these are what some detectors can do
besides, and what the rest of gendet looks for with `isinstance(detector, Protocol)`:
- `HeadFitting`: a frozen feature extractor plus a head fitted on cached features (the probe, the
  `*_lite` systems): the genuine benchmark, its studies and `gendet train --solver head` use it;
- `OwnFeatureKey`: features that depend on more frozen parts than a backbone (the feature cache's key);
- `Relevance`: the detector's own heat map (attention, a predicted mask) for `gendet explain`;
- `Explains`: generated text explanations (UniGenDet's text head);
- `RegionMasks`: per-region probabilities of being generated (GAMMA on pretrained features).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class HeadFitting(Protocol):
    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen features of a batch of model inputs (what the feature cache stores)."""

    def fit_head(self, raw: np.ndarray, labels: np.ndarray, seed: int = 0) -> None:
        """Fit the trainable head on cached features (N, ...) and labels (N,)."""

    def head_state(self) -> dict[str, Any]:
        """The fitted head's parameters (to keep one cell's head while fitting another)."""

    def load_head_state(self, state: dict[str, Any]) -> None: ...

    def head_logits(self, raw: np.ndarray) -> np.ndarray:
        """Logits of cached features: (N, F) -> (N,), or (N, crops, F) -> (N,) (mean over crops)."""


@runtime_checkable
class OwnFeatureKey(Protocol):
    def feature_key(self) -> str:
        """What the cached features depend on (every frozen part's identity)."""


@runtime_checkable
class Relevance(Protocol):
    def relevance(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """(B, h, w) maps of where the evidence is, or None to fall back to input x gradient."""


@runtime_checkable
class Explains(Protocol):
    def generate_explanation(self, batch: dict[str, Any], max_len: int | None = None) -> list[str] | None:
        """One text per image of the batch, or None when this model has no trained text head."""


@runtime_checkable
class RegionMasks(Protocol):
    def region_mask(self, feats: np.ndarray) -> np.ndarray:
        """Per-region probabilities of being generated for cached features of one image's crops."""
