"""Name -> detector class. Adding a detector = one file + one line in DETECTORS.

Entries are "module:Class" strings imported on first use, so a heavy optional
dependency (open_clip) costs nothing until its detector is asked for. Import
errors are raised, never swallowed.
"""

from __future__ import annotations

from typing import Any

import torch

from gendet.lazy_import import resolve_entry
from gendet.models.base import Detector

DETECTORS: dict[str, str] = {
    "tiny_cnn": "gendet.models.tiny_cnn:TinyCNN",
    "resnet50": "gendet.models.resnet:ResNetDetector",
    "cnnspot": "gendet.models.cnnspot:CNNSpot",
    "spec": "gendet.models.spec:SpecDetector",
    "npr": "gendet.models.npr:NPRDetector",
    "univfd": "gendet.models.univfd:UnivFD",
    "unigendet": "gendet.models.unigendet:UniGenDet",
    "unigendet_lite": "gendet.models.unigendet.pretrained:UniGenDetLite",
    "gamma": "gendet.models.gamma:GammaDetector",
    "gamma_lite": "gendet.models.gamma.pretrained:GammaLite",
    "hrr": "gendet.models.hrr:HRR",
    "hrr_lite": "gendet.models.hrr.pretrained:HRRLite",
    "dire_lite": "gendet.models.hrr.pretrained:DIRELite",
    "dire": "gendet.models.dire:DIRE",
    "probe": "gendet.models.probe:Probe",
    "lite": "gendet.models.lite:LiteDetector",
}


def get_detector_class(name: str) -> type[Detector]:
    return resolve_entry(DETECTORS, name, Detector, "detector")


def create_detector(name: str, **config: Any) -> Detector:
    """Build a registered detector; `config` overrides its default_config."""
    return get_detector_class(name)(**config)


def count_parameters(name: str, **config: Any) -> int:
    """Parameters of a registered detector, counted on the meta device (no memory: univfd's CLIP is 1.2 GB)."""
    with torch.device("meta"):
        return create_detector(name, **config).num_parameters


def list_detectors() -> list[str]:
    return sorted(DETECTORS)
