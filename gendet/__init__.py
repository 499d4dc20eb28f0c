"""gendet: detect generated images, benchmark detectors, improve generators with a detector.

Label convention everywhere in gendet: 1 = generated (fake), 0 = real.
Scores are P(generated).
"""

import os
from typing import TYPE_CHECKING

# OpenMP threads that spin while waiting starve each other (and data workers) on small
# CPUs: measured 20 tiny_cnn steps 10.2 s spinning vs 0.11 s passive on a loaded 2-core box.
# Only effective when gendet is imported before torch; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gendet.version import VERSION as __version__  # noqa: E402 - after the OpenMP setting above

if TYPE_CHECKING:
    from gendet.api import EvalResult, Model, TrainResult

REAL: int = 0
FAKE: int = 1


def load(model: "str | os.PathLike | None" = None, *, device: str = "auto", engine: str = "torch",
         threshold: "str | float | None" = None, provenance: str = "on", watermark: bool = False,
         c2pa_trust: "str | os.PathLike | None" = None) -> "Model":
    """A detector for Python code: the shipped default (None), a shipped name, a checkpoint directory or an
    exported .onnx file; see `gendet.api.load`. (gendet.api is imported on first use: `import gendet` stays light.)"""
    from gendet.api import load as _load  # on first use: `import gendet` stays light

    return _load(model, device=device, engine=engine, threshold=threshold, provenance=provenance,
                 watermark=watermark, c2pa_trust=c2pa_trust)


def train(model: str, data: "str | os.PathLike", out: "str | os.PathLike", **options: object) -> "TrainResult":
    """Train registered detector `model` on `data`, the checkpoint to `out`; see `gendet.api.train`."""
    from gendet.api.train import train as _train

    return _train(model, data, out, **options)  # type: ignore[arg-type]


def evaluate(model: "str | os.PathLike | None", data: "str | os.PathLike", **options: object) -> "EvalResult":
    """Metrics of a checkpoint (or shipped name; None: the default) on labelled `data`; see `gendet.api.evaluate`."""
    from gendet.api.evaluate import evaluate as _evaluate

    return _evaluate(model, data, **options)  # type: ignore[arg-type]


def __getattr__(name: str) -> object:
    if name in ("Model", "Verdict", "TrainResult", "EvalResult"):
        from gendet import api

        return getattr(api, name)
    raise AttributeError(f"module 'gendet' has no attribute {name!r}")


__all__ = ["__version__", "REAL", "FAKE", "load", "train", "evaluate", "Model", "Verdict", "TrainResult", "EvalResult"]
