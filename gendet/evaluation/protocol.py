"""The GenImage protocol on top of `predict` and `compute_metrics`.

Task 1 (cross-generator): a detector trained on one subset is evaluated on every
subset's test split; `cross_generator_matrix` turns the per-(train, test)
metrics into the table with row means. Task 2 (degraded images):
`degradation_table` evaluates the same samples undegraded ("none") and under
each of the six degradations. Thresholds come from `resolve_threshold`: a fixed
0.5, the one the trainer fitted on a held-out part of the *training* split, or
a user's number; never one fitted on the split being reported.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gendet.data.layouts import detect_layout, read_samples, select_split
from gendet.data.preprocess import ImageOp, Preprocess
from gendet.data.sample import Sample
from gendet.evaluation.degradations import DEGRADATIONS, get_degradation
from gendet.evaluation.inference import Predictions, predict
from gendet.evaluation.metrics import compute_metrics
from gendet.io import atomic_write_text
from gendet.models.base import Detector

PREDICTION_COLUMNS = ("path", "label", "score", "generator", "degradation")


def metrics_for(predictions: Predictions, threshold: float, threshold_source: str) -> dict[str, Any]:
    """Metrics over all predictions, plus "subsets" when they span more than one generator."""
    out = compute_metrics(predictions.labels, predictions.scores, threshold, threshold_source)
    generators = sorted(set(predictions.generators))
    if len(generators) > 1:
        out["subsets"] = {
            g: compute_metrics(sub.labels, sub.scores, threshold, threshold_source)
            for g in generators
            for sub in (predictions.subset(g),)
        }
    return out


def read_eval_samples(data: str | os.PathLike, layout: str = "auto", subset: str | None = None,
                      split: str = "auto") -> tuple[list[Sample], str]:
    """The labelled samples to evaluate and the layout read: `split` "auto" = the data's test/val split (all of
    it when it has no split); ValueError/FileNotFoundError when unusable or unlabelled."""
    layout = detect_layout(data) if layout == "auto" else layout
    samples = read_samples(data, layout=layout, subset=subset, split=None if split == "auto" else split)
    if split == "auto":
        samples = select_split(samples, "eval")
    unlabelled = sum(s.label is None for s in samples)
    if unlabelled:
        raise ValueError(f"{unlabelled} images in {data} have no label; evaluation needs labelled data")
    return samples, layout


def evaluate(
    detector: Detector,
    samples: Sequence[Sample],
    pp: Preprocess,
    threshold: float,
    threshold_source: str,
    degradation: str | ImageOp | None = None,
    batch_size: int = 64,
    workers: int = 0,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool | str = False,
    dedupe_files: bool = False,
) -> tuple[dict[str, Any], Predictions]:
    """Score `samples` and compute metrics (dedupe_files: see inference.predict).

    Returns (metrics, predictions); metrics has the top-level keys of
    compute_metrics, "subsets" when several generators are present, and
    "errors": [[path, reason], ...] for files that could not be decoded.
    Raises ValueError when a sample has no label or no file could be decoded.
    """
    samples = list(samples)
    unlabelled = [str(s.path) for s in samples if s.label is None]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} samples have no label (e.g. {unlabelled[0]}); evaluation needs labels")
    if degradation is None or degradation == "none":
        op = None
    else:
        op = get_degradation(degradation) if isinstance(degradation, str) else degradation
    preds = predict(
        detector, samples, pp, degradation=op, batch_size=batch_size, workers=workers,
        device=device, seed=seed, progress=progress, dedupe_files=dedupe_files,
    )
    if not preds.samples:
        why = f"; first error: {preds.errors[0][0]}: {preds.errors[0][1]}" if preds.errors else ""
        raise ValueError(f"none of the {len(samples)} images could be evaluated{why}")
    out = metrics_for(preds, threshold, threshold_source)
    out["errors"] = [[str(p), str(r)] for p, r in preds.errors]
    return out, preds


def resolve_threshold(mode: str | float, checkpoint_config: Mapping[str, Any]) -> tuple[float, str]:
    """(threshold, source) for `--threshold fixed|val|FLOAT`.

    "fixed" -> (0.5, "fixed"); "val" -> the trainer's `threshold_val` (fitted on a
    held-out part of the training split) with source "val"; a number in [0, 1]
    -> (number, "user").
    """
    if isinstance(mode, str):
        key = mode.strip().lower()
        if key == "fixed":
            return 0.5, "fixed"
        if key == "val":
            value = checkpoint_config.get("threshold_val")
            if value is None:
                raise ValueError(
                    "--threshold val: this checkpoint has no 'threshold_val' in config.json (the trainer writes "
                    "it when its held-out validation part has both classes); use --threshold fixed or a number"
                )
            value = float(value)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"checkpoint threshold_val {value!r} is not a probability in [0, 1]")
            return value, "val"
        try:
            number = float(key)
        except ValueError:
            raise ValueError(f"threshold must be 'fixed', 'val' or a number in [0, 1], got {mode!r}") from None
    else:
        number = float(mode)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"threshold must be a probability in [0, 1], got {mode!r}")
    return number, "user"


def cross_generator_matrix(per_train: Mapping[str, Mapping[str, Mapping[str, Any]]], metric: str = "acc") -> dict:
    """Task 1's table from {train subset: {test subset: metrics}}.

    Returns {"metric", "rows" (train subsets), "columns" (test subsets, in order of
    first appearance), "values" (rows x columns, None where missing or undefined),
    "row_mean" (mean over the defined values of each row, Table 3's "mean"),
    "col_mean" and "mean" (over all defined values)}.
    """
    rows = list(per_train)
    columns: list[str] = []
    for tests in per_train.values():
        columns.extend(c for c in tests if c not in columns)

    def value(r: str, c: str) -> float | None:
        m = per_train[r].get(c)
        v = None if m is None else m.get(metric)
        return None if v is None else float(v)

    values = [[value(r, c) for c in columns] for r in rows]
    return {
        "metric": metric,
        "rows": rows,
        "columns": columns,
        "values": values,
        "row_mean": [_mean(row) for row in values],
        "col_mean": [_mean(row[j] for row in values) for j in range(len(columns))],
        "mean": _mean(v for row in values for v in row),
    }


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def degradation_table(
    detector: Detector,
    samples: Sequence[Sample],
    pp: Preprocess,
    threshold: float,
    threshold_source: str,
    names: Sequence[str] | None = None,
    clean: Predictions | None = None,
    **kwargs: Any,
) -> tuple[dict[str, dict[str, Any]], dict[str, Predictions]]:
    """Task 2: evaluate "none" and each degradation (default: all six) on the same samples.

    Returns ({name: metrics}, {name: predictions}); `kwargs` go to `evaluate`
    (batch_size, workers, device, seed, progress: truthy shows one bar per setting).
    clean: predictions already made on exactly `samples` without degradation, used as "none".
    """
    names = list(DEGRADATIONS) if names is None else list(names)
    progress = kwargs.pop("progress", False)
    table: dict[str, dict[str, Any]] = {}
    preds: dict[str, Predictions] = {}
    if clean is not None:
        if sorted(str(x.path) for x in clean.samples) != sorted(str(x.path) for x in samples):
            raise ValueError("clean predictions are for other samples than the degradation table's")
        table["none"], preds["none"] = {**metrics_for(clean, threshold, threshold_source), "errors": []}, clean
    for name in ["none", *[n for n in names if n != "none"]]:
        if name in table:
            continue
        table[name], preds[name] = evaluate(
            detector, samples, pp, threshold, threshold_source, degradation=name,
            progress=name if progress else False, **kwargs,
        )
    return table, preds


def degradation_mean(table: Mapping[str, Mapping[str, Any]], metric: str = "acc") -> float | None:
    """Mean of `metric` over the degraded settings in `table` ("none" excluded): Table 5's number."""
    return _mean(None if m.get(metric) is None else float(m[metric]) for k, m in table.items() if k != "none")


def write_predictions_csv(
    path: str | os.PathLike,
    predictions: Predictions | Mapping[str, Predictions],
    degradation: str | None = None,
) -> Path:
    """One row per scored image: path,label,score,generator,degradation.

    `predictions` is either one Predictions (tagged with `degradation`, default
    "none") or {degradation name: Predictions} for several settings in one file.
    Paths are written absolute so the file can be read from any working directory.
    """
    blocks = predictions if isinstance(predictions, Mapping) else {degradation or "none": predictions}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for name, preds in blocks.items():
        for s, score in zip(preds.samples, preds.scores, strict=True):
            writer.writerow([os.path.abspath(s.path), s.label, repr(float(score)), s.generator, name])
    out = Path(path)
    atomic_write_text(out, buf.getvalue())
    return out
