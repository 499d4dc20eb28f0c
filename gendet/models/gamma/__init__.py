"""GAMMA (SPEC §2): manipulation-augmented training with pixel-level source attribution."""

from gendet.models.gamma.model import CPU_CONFIG, GammaDetector

__all__ = ["CPU_CONFIG", "GammaDetector"]
