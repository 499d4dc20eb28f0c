"""gendet: detect generated images, benchmark detectors, improve generators with a detector.

Label convention everywhere in gendet: 1 = generated (fake), 0 = real.
Scores are P(generated).
"""

import os

# OpenMP threads that spin while waiting starve each other (and data workers) on small
# CPUs: measured 20 tiny_cnn steps 10.2 s spinning vs 0.11 s passive on a loaded 2-core box.
# Only effective when gendet is imported before torch; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gendet.version import VERSION as __version__  # noqa: E402 - after the OpenMP setting above

REAL: int = 0
FAKE: int = 1


def load(model: "str | os.PathLike | None" = None, *, device: str = "auto", engine: str = "torch",
         threshold: "str | float | None" = None, provenance: str = "on", watermark: bool = False,
         c2pa_trust: "str | os.PathLike | None" = None) -> "gendet.api.Model":  # noqa: F821
    """A detector for Python code: the shipped default (None), a shipped name, a checkpoint directory or an
    exported .onnx file; see `gendet.api.load`. (gendet.api is imported on first use: `import gendet` stays light.)"""
    from gendet.api import load as _load  # on first use: `import gendet` stays light

    return _load(model, device=device, engine=engine, threshold=threshold, provenance=provenance,
                 watermark=watermark, c2pa_trust=c2pa_trust)


def __getattr__(name: str) -> object:
    if name in ("Model", "Verdict"):
        from gendet import api

        return getattr(api, name)
    raise AttributeError(f"module 'gendet' has no attribute {name!r}")


__all__ = ["__version__", "REAL", "FAKE", "load", "Model", "Verdict"]
