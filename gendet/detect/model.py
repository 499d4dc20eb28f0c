"""The model a scan uses: a checkpoint (the shipped default unless told otherwise), its preprocessing and threshold."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import torch

from gendet.data.preprocess import Preprocess
from gendet.detect.shipped import SHIPPED, shipped_dir
from gendet.detect.writers import Record
from gendet.evaluation.protocol import resolve_threshold
from gendet.models.base import Detector
from gendet.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint
from gendet.provenance import Finding, decide


class ModelSetupError(Exception):
    """The checkpoint or threshold cannot be used; the message says what to do."""


def default_checkpoint_dir() -> Path:
    """Where the default detector ships: ``gendet/assets/default_model/`` inside the installed package."""
    return shipped_dir("default")


def is_onnx_file(source: str | os.PathLike | None) -> TypeGuard[str | os.PathLike]:
    """`source` names an existing .onnx file (from `gendet export`), which only the onnx engine can run."""
    return source is not None and str(source).endswith(".onnx") and Path(source).is_file()


NON_FINITE_SCORE = "the model returned a non-finite score"  # the error every engine and the server report


@dataclass
class ScanModel:
    """Everything a scan needs from a checkpoint."""

    detector: Detector
    config: dict[str, Any]
    preprocess: Preprocess
    threshold: float
    threshold_source: str
    name: str  # written into every record's "model" field
    checkpoint: Path
    version: str | None = None  # "sha256:<12 hex>" of the weights: every record's "model_version"

    @property
    def identity(self) -> str:
        """Name and version: what a resumed output must have been written by."""
        return f"{self.name} {self.version}" if self.version else self.name

    def label(self, score: float) -> str:
        """The pixel label for a finite score: "fake" iff score >= threshold."""
        return "fake" if score >= self.threshold else "real"

    def record(self, path: str, score: float | None, error: str | None,
               provenance: list[dict[str, Any]] | None = None) -> Record:
        """The record for one input: the pixel label, and the verdict by gendet.provenance.verdict.decide."""
        if error is None and score is not None and not math.isfinite(score):
            error = NON_FINITE_SCORE
        pixel = None if error is not None or score is None else float(score)
        findings = [Finding.from_dict(d) for d in provenance] if provenance is not None else None
        decision = decide(pixel, self.threshold, findings)
        if error is not None:
            reason = f"{decision.reason}; pixels not scored" if decision.verdict != "unknown" else None
            verdict = decision.verdict if reason else None
        else:
            verdict, reason = decision.verdict, decision.reason
        return Record(path, pixel, None if pixel is None else self.label(pixel), self.threshold, self.name, error,
                      self.version, verdict, reason, decision.conflict if verdict else None,
                      None if provenance is None else tuple(provenance))


def model_name(detector: Detector, config: dict[str, Any], checkpoint: Path) -> str:
    """The detector's report name (e.g. resnet50[arch=resnet18]), prefixed by the config's "name" if any."""
    variant = str(getattr(detector, "variant", detector.name))
    name = config.get("name")
    return f"{name} ({variant})" if name else variant


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; ValueError for unusable devices."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"--device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: only cpu and cuda are supported")
    return dev


def _config_threshold(config: dict[str, Any]) -> tuple[float, str]:
    """The checkpoint's own decision threshold (0.5 'fixed' when it records none)."""
    value = config.get("threshold")
    if value is None:
        return 0.5, "fixed"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelSetupError(f"checkpoint threshold {value!r} is not a number")
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ModelSetupError(f"checkpoint threshold {value!r} is not a probability in [0, 1]")
    return value, str(config.get("threshold_source") or "checkpoint")


def load_scan_model(
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    threshold: str | float | None = None,
) -> ScanModel:
    """Load `checkpoint` (default: the shipped model; a shipped model's name, e.g. "fast") for scanning,
    strictly, in eval mode.

    `threshold`: None uses the checkpoint's recorded threshold; otherwise
    "fixed" | "val" | a number, resolved like ``gendet eval --threshold``.
    """
    if checkpoint is not None and str(checkpoint) in SHIPPED and not Path(checkpoint).is_dir():
        checkpoint = shipped_dir(str(checkpoint)) if str(checkpoint) != "default" else None
    if checkpoint is None:
        ckpt = default_checkpoint_dir()
        if not (ckpt / WEIGHTS_FILE).is_file() or not (ckpt / CONFIG_FILE).is_file():
            raise ModelSetupError(
                f"the default model is not installed ({ckpt} has no {WEIGHTS_FILE} + {CONFIG_FILE}); "
                "pass a checkpoint directory from `gendet train` with --checkpoint DIR"
            )
    else:
        ckpt = Path(checkpoint)
        if is_onnx_file(ckpt):  # the torch engine needs the checkpoint it was exported from
            raise ModelSetupError(f"--checkpoint {ckpt} is an ONNX model from `gendet export`: scans and "
                                  "the server run it with --engine onnx; the torch model needs the checkpoint "
                                  "directory it was exported from")
        if not ckpt.is_dir():
            raise ModelSetupError(f"--checkpoint {ckpt}: not a directory")
    try:
        detector, config = load_checkpoint(ckpt, device)
        # The same preprocessing the checkpoint was trained and evaluated with (as `gendet eval` rebuilds it).
        if config.get("preprocess"):
            pp = Preprocess.from_dict(config["preprocess"])
        else:
            pp = detector.preprocess(config.get("align", "jpeg"))
    except (CheckpointError, KeyError, TypeError, ValueError) as e:  # KeyError/TypeError: unknown model/config keys
        raise ModelSetupError(f"cannot load checkpoint {ckpt}: {e}") from None
    detector.eval()
    if threshold is None:
        value, source = _config_threshold(config)
    else:
        try:
            value, source = resolve_threshold(threshold, config)
        except ValueError as e:
            raise ModelSetupError(str(e)) from None
    return ScanModel(detector, config, pp, value, source, model_name(detector, config, ckpt), ckpt,
                     weights_digest(ckpt))


def weights_digest(checkpoint: Path) -> str | None:
    """'sha256:<12 hex>' of the weights file: the version that names these exact weights."""
    path = Path(checkpoint) / WEIGHTS_FILE
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()[:12]}"
