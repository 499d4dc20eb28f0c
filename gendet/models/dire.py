"""DIRE-style single-scale reconstruction-residual detector (Wang et al., ICCV 2023), the baseline HRR improves on.

DIRE reconstructs an image with a diffusion model and classifies |x - recon| with a ResNet-50.
Here the reconstruction is gendet's shipped pixel flow model, noised to t and integrated back
(the same retrospection code as HRR at scale 1 only), and the classifier is HRR's small fusion
CNN with a linear head and BCE, so HRR vs DIRE differs only by the extra scales and the refinement.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gendet.models.hrr.model import RetrospectionDetector


class DIRE(RetrospectionDetector):
    name = "dire"
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"label": "dire (pixel_flow reconstructor, t 0.15, 2 steps)", "config": {"image_size": 64},
                 "train": {"epochs": 4}, "in_default_run": False}}
    onnx_unsupported = "its reconstruction runs a flow sampler with Python-side step arithmetic (not one graph)"
    description = "DIRE-style: |x - flow reconstruction| at one scale into a small CNN with a linear head (BCE)"
    default_config: ClassVar[dict[str, Any]] = {**RetrospectionDetector.default_config, "scales": [1.0],
                                                "refine": "none"}
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "steps": 1, "width": 4, "channels": 8}
