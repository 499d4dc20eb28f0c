"""Reading what `gendet train` and `gendet eval` leave in a run directory.

Every part except "some config.json or some eval file" is optional: a missing or
malformed part becomes a note that the report shows, never an exception.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "config.json"
TRAIN_LOG_JSONL = "train_log.jsonl"
TRAIN_LOG_CSV = "train_log.csv"
EVAL_DIR = "eval"
# the protocol's six degradations, in the order GenImage reports them
DEGRADATION_ORDER = ("resize_112", "resize_64", "jpeg_65", "jpeg_30", "blur_3", "blur_5")
# names meaning "no degradation": in a JSON's "degradation" ("all" = clean at top level plus a
# "degradations" block) and in the predictions CSV's degradation column
CLEAN_NAMES = ("", "none", "clean", "all")
METRIC_KEYS = ("n", "acc", "real_acc", "fake_acc", "ap", "auc", "eer", "ece", "tpr_at_fpr_1pct")


class RunDirError(ValueError):
    """The directory is not something a report can be made from."""


@dataclass
class PredictionTable:
    """Rows of a `<stem>.predictions.csv`: path, label (1 = generated), score = P(generated)."""

    paths: list[str]
    labels: np.ndarray
    scores: np.ndarray
    generators: list[str]
    degradations: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, mask: np.ndarray) -> PredictionTable:
        idx = np.flatnonzero(mask)
        return PredictionTable(
            [self.paths[i] for i in idx], self.labels[idx], self.scores[idx],
            [self.generators[i] for i in idx], [self.degradations[i] for i in idx],
        )

    def where(self, column: str, value: str) -> PredictionTable:
        col = self.generators if column == "generator" else self.degradations
        return self.subset(np.array([v == value for v in col], dtype=bool))


@dataclass
class EvalResult:
    """One `eval/<tag>.json` and its predictions (None when the CSV is missing or unreadable)."""

    path: Path
    data: dict[str, Any]
    predictions: PredictionTable | None = None

    @property
    def tag(self) -> str:
        return self.path.stem

    @property
    def degradation(self) -> str | None:
        d = self.data.get("degradation")
        return None if d is None or str(d).lower() in CLEAN_NAMES else str(d)

    @property
    def clean_predictions(self) -> PredictionTable | None:
        """Predictions without degradation (a `--degradation all` CSV also holds the degraded rows)."""
        p = self.predictions
        if p is None or self.degradation is not None:
            return None
        mask = np.array([d.lower() in CLEAN_NAMES for d in p.degradations], dtype=bool)
        return p.subset(mask) if mask.any() else None

    def metrics(self) -> dict[str, Any]:
        return {k: self.data.get(k) for k in METRIC_KEYS}


@dataclass
class RunData:
    run_dir: Path
    config: dict[str, Any] | None
    train_log: list[dict[str, Any]]
    evals: list[EvalResult]
    notes: list[str] = field(default_factory=list)

    @property
    def clean_evals(self) -> list[EvalResult]:
        return [e for e in self.evals if e.degradation is None]


def _read_json(path: Path, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        notes.append(f"{path.name}: could not be read ({e}); skipped")
        return None


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _maybe_number(v: Any) -> Any:
    f = _float(v)
    return v if math.isnan(f) and v not in ("nan", "NaN") else f


def read_predictions(path: str | os.PathLike) -> PredictionTable:
    """Parse a predictions CSV; raises ValueError when required columns are missing."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label", "score"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"missing columns {sorted(missing)}")
        rows = list(reader)
    return PredictionTable(
        paths=[r["path"] for r in rows],
        labels=np.array([_float(r["label"]) for r in rows], dtype=float),
        scores=np.array([_float(r["score"]) for r in rows], dtype=float),
        generators=[(r.get("generator") or "").strip() for r in rows],
        degradations=[(r.get("degradation") or "").strip() for r in rows],
    )


def _read_train_log(run_dir: Path, notes: list[str]) -> list[dict[str, Any]]:
    jl, cs = run_dir / TRAIN_LOG_JSONL, run_dir / TRAIN_LOG_CSV
    if jl.is_file():
        rows, bad = [], 0
        for line in jl.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1  # a run killed mid-write leaves a partial last line
                continue
            if isinstance(row, dict):
                rows.append(row)
        if bad:
            notes.append(f"{TRAIN_LOG_JSONL}: {bad} unreadable line(s) skipped")
        return rows
    if cs.is_file():
        with open(cs, newline="", encoding="utf-8") as fh:
            return [{k: _maybe_number(v) for k, v in r.items() if k} for r in csv.DictReader(fh)]
    return []


def load_eval(path: Path, notes: list[str]) -> EvalResult | None:
    data = _read_json(path, notes)
    if not isinstance(data, dict) or not any(k in data for k in ("acc", "auc", "n")):
        if data is not None:
            notes.append(f"{path.name}: not a gendet eval file (no metric keys); skipped")
        return None
    result = EvalResult(path=path, data=data)
    pred_name = data.get("predictions_file") or f"{path.stem}.predictions.csv"
    pred_path = path.parent / str(pred_name)
    if pred_path.is_file():
        try:
            result.predictions = read_predictions(pred_path)
        except (OSError, UnicodeDecodeError, ValueError, csv.Error) as e:
            notes.append(f"{pred_path.name}: could not be read ({e})")
    else:
        notes.append(f"{path.name}: predictions file {pred_name} not found (ROC, calibration and thumbnails skip it)")
    return result


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Read config.json, the training log and eval/*.json; raises RunDirError if there is nothing to report."""
    root = Path(run_dir)
    if not root.is_dir():
        raise RunDirError(f"{root} is not a directory")
    notes: list[str] = []
    config = None
    if (root / CONFIG_FILE).is_file():
        config = _read_json(root / CONFIG_FILE, notes)
        if config is not None and not isinstance(config, dict):
            notes.append(f"{CONFIG_FILE}: not a JSON object; ignored")
            config = None
    evals = []
    for p in sorted((root / EVAL_DIR).glob("*.json")) if (root / EVAL_DIR).is_dir() else []:
        ev = load_eval(p, notes)
        if ev is not None:
            evals.append(ev)
    # undegraded results first, then degradations in protocol order
    rank = {n: i for i, n in enumerate(DEGRADATION_ORDER)}
    evals.sort(key=lambda e: (e.degradation is not None, rank.get(e.degradation or "", len(rank)), e.tag))
    if config is None and not evals:
        raise RunDirError(f"{root} has no readable {CONFIG_FILE} and no {EVAL_DIR}/*.json metric files: "
                          "is it a gendet run directory?")
    return RunData(run_dir=root, config=config, train_log=_read_train_log(root, notes), evals=evals, notes=notes)
