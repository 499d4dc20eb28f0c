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


def fit_threshold_at_fpr(labels: np.ndarray, scores: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold at which at most `target_fpr` of the real (label 0) validation scores are called
    generated (score >= threshold): a Neyman-Pearson operating point for users who must not accuse photos.

    Meant for out-of-fold scores of the training split (every real photo scored by a model that did not
    see it), which give far more real photos than a small hold-out."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    real = np.sort(scores[labels == 0])[::-1]
    if real.size == 0 or np.isnan(real).any():
        raise ValueError("cannot fit a threshold at a false-positive rate: no (finite) real scores")
    k = int(np.floor(target_fpr * real.size))  # real photos allowed above the threshold
    t = float(np.nextafter(real[k], np.inf))
    return min(max(t, 0.0), 1.0)
