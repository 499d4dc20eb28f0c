"""gendet: detect generated images, benchmark detectors, improve generators with a detector.

Label convention everywhere in gendet: 1 = generated (fake), 0 = real.
Scores are P(generated).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gendet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

REAL: int = 0
FAKE: int = 1

__all__ = ["__version__", "REAL", "FAKE"]
