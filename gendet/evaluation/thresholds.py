"""Decision thresholds: a fixed 0.5, or one fitted on a validation split (never a test split)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve


def fit_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold maximising balanced accuracy (Youden's J) on validation scores.

    Balanced accuracy rather than accuracy so an imbalanced validation split does
    not buy real accuracy with fake accuracy (a common complaint about 0.5).
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or np.isnan(scores).any():
        raise ValueError("cannot fit a threshold: empty scores or NaN scores")
    if len(np.unique(labels)) < 2:
        raise ValueError("cannot fit a threshold: the validation split has only one class")
    fpr, tpr, thr = roc_curve(labels, scores)
    j = tpr - fpr
    best = int(np.argmax(j))
    t = float(thr[best])
    if not np.isfinite(t):  # roc_curve's first threshold is +inf
        t = float(np.nextafter(scores.max(), np.inf))
    return min(max(t, 0.0), 1.0)
