from gendet.models.base import Detector
from gendet.models.registry import DETECTORS, create_detector, get_detector_class, list_detectors

__all__ = ["Detector", "DETECTORS", "create_detector", "get_detector_class", "list_detectors"]
