"""`gendet.evaluate(model, data)` -> EvalResult: `gendet eval` from Python (the same samples, threshold, metrics)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gendet.detect.shipped import resolve_model_dir
from gendet.evaluation.degradations import get_degradation
from gendet.evaluation.eval_job import evaluate_blocks
from gendet.evaluation.protocol import read_eval_samples, resolve_threshold
from gendet.models.checkpoint import checkpoint_preprocess, load_checkpoint


@dataclass(frozen=True)
class EvalResult:
    """Metrics at `threshold` (from the checkpoint's training data unless given; never from these images)."""

    n: int
    auc: float | None
    ap: float | None
    acc: float | None
    real_acc: float | None  # 1 - false-positive rate
    fake_acc: float | None  # true-positive rate
    eer: float | None
    ece: float | None
    threshold: float
    threshold_source: str
    subsets: dict[str, dict[str, Any]]  # the same metrics per generator, when there are several
    errors: list[tuple[str, str]]  # (path, reason) of files that could not be decoded
    paths: list[str]
    labels: np.ndarray
    scores: np.ndarray  # P(generated), aligned with paths and labels

    @property
    def metrics(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n", "auc", "ap", "acc", "real_acc", "fake_acc", "eer", "ece")}


def evaluate(model: str | os.PathLike | None, data: str | os.PathLike, *, subset: str | None = None,
             split: str = "auto", layout: str = "auto", degradation: str = "none",
             threshold: str | float | None = None, batch_size: int = 32, workers: int = 0, device: str = "cpu",
             seed: int = 0) -> EvalResult:
    """Evaluate a checkpoint directory or shipped name (None: the default) on the labelled images of `data`
    (split "auto": its test/val split). degradation: one of the protocol's six, or "none". threshold: "val"
    threshold: None = the checkpoint's operating threshold (what `gendet detect` applies), "val" = the one fitted
    on its held-out training data, "fixed" = 0.5, or a number."""
    ckpt = resolve_model_dir(model if model is not None else "default")
    detector, config = load_checkpoint(ckpt, device)
    pp = checkpoint_preprocess(detector, config)
    if threshold is None:
        thr, source = float(config.get("threshold", 0.5)), str(config.get("threshold_source", "fixed"))
    else:
        thr, source = resolve_threshold(threshold, config)
    if degradation != "none":
        get_degradation(degradation)  # one of the six ("all" is the CLI's table, not one result)
    samples, _ = read_eval_samples(data, layout, subset, split)
    blocks = evaluate_blocks(detector, samples, pp, thr, source, degradation, batch_size, workers, device, seed,
                             progress=False)
    metrics, preds = blocks.table[blocks.main], blocks.preds[blocks.main]
    return EvalResult(
        n=int(metrics["n"]), auc=metrics["auc"], ap=metrics["ap"], acc=metrics["acc"],
        real_acc=metrics["real_acc"], fake_acc=metrics["fake_acc"], eer=metrics["eer"], ece=metrics["ece"],
        threshold=thr, threshold_source=source, subsets=dict(metrics.get("subsets", {})),
        errors=[(str(p), str(r)) for p, r in blocks.errors],
        paths=[str(Path(s.path)) for s in preds.samples], labels=np.asarray(preds.labels),
        scores=np.asarray(preds.scores))
