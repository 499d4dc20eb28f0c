"""Detection metrics from labels (1 = generated, 0 = real) and scores (P(generated)).

Computed with scikit-learn and torchmetrics, never by hand, except the two
read-offs of the ROC curve that sklearn has no function for (EER and TPR at a
fixed FPR), which interpolate linearly between sklearn's ROC points.

A sample is called generated iff ``score >= threshold``. A metric that the data
cannot define (AUC with one class present, fake accuracy without fakes) is
``None`` and ``"notes"`` says why; empty input, NaN scores or labels other than
0/1 are a ``ValueError`` instead, because they mean the caller has a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, roc_auc_score, roc_curve

METRIC_KEYS: tuple[str, ...] = (
    "n", "acc", "real_acc", "fake_acc", "ap", "auc", "eer", "ece", "tpr_at_fpr_1pct", "threshold", "threshold_source",
)
ECE_BINS = 15


ArrayLike = Sequence[int] | Sequence[float] | np.ndarray


def _validate(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"labels and scores must be 1-D and of equal length, got shapes {y.shape} and {s.shape}")
    if len(y) == 0:
        raise ValueError("no samples to evaluate (empty labels and scores)")
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise ValueError(f"{n_nan} of {len(s)} scores are NaN: the detector produced invalid outputs")
    if s.min() < 0.0 or s.max() > 1.0:
        raise ValueError(
            f"scores must be probabilities in [0, 1] (P(generated)), got range [{s.min():.4g}, {s.max():.4g}]"
        )
    bad = sorted(set(np.unique(y).tolist()) - {0, 1})
    if bad:
        raise ValueError(f"labels must be 0 (real) or 1 (generated), found {bad}")
    return y.astype(np.int64), s


def confusion(
    labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5
) -> dict[str, int]:
    """Counts at `threshold`: tn/fp over reals, fn/tp over generated images."""
    y, s = _validate(labels, scores)
    pred = (s >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The rate where FPR equals FNR (= 1 - TPR), interpolated along the ROC curve."""
    d = (1.0 - tpr) - fpr  # decreases from 1 at (0, 0) to -1 at (1, 1)
    i = int(np.argmax(d <= 0.0))
    if d[i] == 0.0 or i == 0:
        return float(fpr[i])
    # both FPR and FNR are linear along the segment, so they are equal where d crosses zero
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """TPR at FPR = target on the ROC curve (upper point on a vertical step, linear in between)."""
    i = int(np.searchsorted(fpr, target, side="right")) - 1  # last ROC point with fpr <= target
    if fpr[i] == target or i == len(fpr) - 1:
        return float(tpr[i])
    t = (target - fpr[i]) / (fpr[i + 1] - fpr[i])
    return float(tpr[i] + t * (tpr[i + 1] - tpr[i]))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of P(generated) with equal-width bins (torchmetrics' binary L1 calibration error)."""
    from torchmetrics.functional.classification import binary_calibration_error  # slow import: on use

    return float(
        binary_calibration_error(torch.from_numpy(scores), torch.from_numpy(labels), n_bins=n_bins, norm="l1")
    )


def compute_metrics(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float = 0.5,
    threshold_source: str = "fixed",
) -> dict[str, Any]:
    """All protocol metrics as plain Python numbers (JSON-serialisable).

    Keys: n, acc, real_acc, fake_acc, ap, auc, eer, ece, tpr_at_fpr_1pct,
    threshold, threshold_source, and "notes" (a list of strings) when any metric
    is None. ap/auc/eer/tpr_at_fpr_1pct need both classes; ece is the
    calibration of P(generated) over 15 equal-width bins.
    """
    y, s = _validate(labels, scores)
    threshold = float(threshold)
    pred = (s >= threshold).astype(np.int64)
    notes: list[str] = []
    real, fake = y == 0, y == 1

    out: dict[str, Any] = {
        "n": int(len(y)),
        "acc": float(accuracy_score(y, pred)),
        "real_acc": float(accuracy_score(y[real], pred[real])) if real.any() else None,
        "fake_acc": float(accuracy_score(y[fake], pred[fake])) if fake.any() else None,
        "ap": None,
        "auc": None,
        "eer": None,
        "ece": expected_calibration_error(y, s),
        "tpr_at_fpr_1pct": None,
        "threshold": threshold,
        "threshold_source": str(threshold_source),
    }
    if not real.any():
        notes.append("real_acc is null: no real images (label 0) in this set")
    if not fake.any():
        notes.append("fake_acc is null: no generated images (label 1) in this set")
    if real.any() and fake.any():
        fpr, tpr, _ = roc_curve(y, s)
        out["ap"] = float(average_precision_score(y, s))
        out["auc"] = float(roc_auc_score(y, s))
        out["eer"] = equal_error_rate(fpr, tpr)
        out["tpr_at_fpr_1pct"] = tpr_at_fpr(fpr, tpr, 0.01)
    else:
        notes.append("ap, auc, eer and tpr_at_fpr_1pct are null: they need both real and generated images")
    if notes:
        out["notes"] = notes
    return out
