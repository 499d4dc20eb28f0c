"""`gendet.train(model, data, out)` -> TrainResult: `gendet train` from Python, same data handling and solvers.

A detector with a head fitted on cached frozen features (gendet.models.hooks.HeadFitting: the probe and the
`*_lite` systems) is fitted by the head solver unless `solver="sgd"`; every other detector, by the epoch
trainer (gendet.training.trainer; its settings as keyword arguments: epochs, batch_size, lr, ...).
UniGenDet's two-stage training (GDUF, DIGA) runs from the CLI (`gendet train --model unigendet`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gendet.api.model import Model, load
from gendet.data.preprocess import DEFAULT_JPEG_QUALITY
from gendet.models import create_detector
from gendet.models.base import Detector
from gendet.models.checkpoint import save_checkpoint
from gendet.models.hooks import HeadFitting
from gendet.training.data import TrainingData, load_training_data
from gendet.training.run_dir import check_out_dir, clear_run
from gendet.training.state import seed_everything

SOLVERS = ("auto", "head", "sgd")


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    model: str
    solver: str  # "head" or "sgd"
    threshold: float
    threshold_source: str
    val_metrics: dict[str, Any] | None  # on the held-out part (head solver, threshold "fpr": out-of-fold scores)
    n_train: int
    n_val: int
    seconds: float
    decode_errors: list[tuple[str, str]]  # (path, reason) of training files that could not be read

    @property
    def val_auc(self) -> float | None:
        return None if not self.val_metrics else self.val_metrics.get("auc")

    def load(self, **options: Any) -> Model:
        """The trained model, ready to predict (options as for `gendet.load`)."""
        return load(self.checkpoint, **options)


def fit_head_run(detector: Detector, data: TrainingData, out: Path, *, align: str = "jpeg",
                 jpeg_quality: int = DEFAULT_JPEG_QUALITY, seed: int = 0, threshold: str = "fixed",
                 target_fpr: float = 0.02, device: str = "cpu", workers: int = 0,
                 cache_dir: str | os.PathLike | None = None, progress: bool = False,
                 record: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """The head solver on `data`, the checkpoint written to `out` (an old run there removed only once the fit
    succeeded, with `overwrite`); returns what its config.json records."""
    from gendet.bench.genuine import fit_probe
    from gendet.evaluation.fidelity import default_cache_dir

    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    summary = fit_probe(detector, data.train, data.val, cache, align=align, seed=seed, threshold_mode=threshold,
                        target_fpr=target_fpr, device=device, workers=workers, progress=progress)
    pp = detector.preprocess(align, jpeg_quality)
    config = {"data_root": str(Path(data.root).resolve()), "layout": data.layout,
              "backbone": f"packaged {detector.config.get('backbone')} "
                          f"(sha256 {detector.config.get('backbone_sha256')})",
              "preprocess": pp.to_dict(), "align": align, "seed": seed, "threshold_mode": threshold,
              **(record or {}), **summary}
    if overwrite:
        clear_run(out)
    save_checkpoint(out, detector, config)
    return config


def train(model: str, data: str | os.PathLike, out: str | os.PathLike, *, config: dict[str, Any] | None = None,
          solver: str = "auto", subset: str | None = None, layout: str = "auto", holdout: float = 0.1, seed: int = 0,
          align: str = "jpeg", threshold: str = "fixed", target_fpr: float = 0.02, device: str = "cpu",
          workers: int = 0, cache_dir: str | os.PathLike | None = None, overwrite: bool = False,
          progress: bool = False, **trainer: Any) -> TrainResult:
    """Train registered detector `model` (its `config` overriding defaults) on the train split of `data` (any layout
    `gendet train` reads), holding out `holdout` of it (by near-duplicate cluster) for the threshold; the checkpoint
    goes to `out`. threshold: "fixed" (0.5), "val" (balanced accuracy on the hold-out) or, head solver only, "fpr"
    (at most `target_fpr` of the training photos called generated, on out-of-fold scores)."""
    from gendet.training.trainer import TrainConfig
    from gendet.training.trainer import train as train_epochs

    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if model == "unigendet":
        raise ValueError("unigendet trains in two stages from the CLI: gendet train --model unigendet --stage gduf")
    out = Path(out).expanduser()
    check_out_dir(out, False, overwrite)
    d = load_training_data(data, layout, subset, holdout, seed)
    seed_everything(seed)
    detector = create_detector(model, **(config or {}))
    use_head = isinstance(detector, HeadFitting) and solver != "sgd"
    if solver == "head" and not use_head:
        raise ValueError(f"solver 'head' needs a detector with a head on cached features; {model!r} has none")
    if use_head and trainer:
        raise TypeError(f"the head solver takes no epoch-trainer settings, got {sorted(trainer)}")
    record = {"subset": subset, "overrides": dict(config or {}), "command": "gendet.train (Python API)"}
    if use_head:
        summary = fit_head_run(detector, d, out, align=align, seed=seed, threshold=threshold, target_fpr=target_fpr,
                               device=device, workers=workers, cache_dir=cache_dir, progress=progress, record=record,
                               overwrite=overwrite)
        errors = [(e["path"], e["reason"]) for e in summary["decode_errors"]["files"]]
    else:
        if threshold == "fpr":
            raise ValueError("threshold 'fpr' needs out-of-fold scores: the head solver only")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(trainer) - known)
        if unknown:
            raise TypeError(f"unknown epoch-trainer settings {unknown}; known: {sorted(known)}")
        cfg = TrainConfig(**{"seed": seed, "device": device, "workers": workers, "holdout": holdout,
                             "threshold_mode": threshold, "progress": progress, **trainer})
        pp = detector.preprocess(align)
        if overwrite:
            clear_run(out)
        summary = train_epochs(detector, d.train, d.val, pp, cfg, out,
                               extra_config={**record, "data_root": str(d.root.resolve()), "layout": d.layout})
        errors = [(p, r) for p, r in summary["decode_errors"]["files"]]
    return TrainResult(checkpoint=out, model=model, solver="head" if use_head else "sgd",
                       threshold=float(summary["threshold"]), threshold_source=str(summary["threshold_source"]),
                       val_metrics=summary.get("val_metrics"), n_train=int(summary["n_train"]),
                       n_val=int(summary["n_val"]), seconds=float(summary["seconds"]), decode_errors=errors)
