"""Evaluation: inference, metrics, thresholds, and the GenImage protocol (Task 1 matrix, Task 2 degradations)."""

from gendet.evaluation.degradations import DEGRADATIONS, get_degradation
from gendet.evaluation.inference import Predictions, predict
from gendet.evaluation.metrics import METRIC_KEYS, compute_metrics, confusion
from gendet.evaluation.protocol import (
    cross_generator_matrix,
    degradation_mean,
    degradation_table,
    evaluate,
    resolve_threshold,
    write_predictions_csv,
)
from gendet.evaluation.thresholds import fit_threshold

__all__ = [
    "DEGRADATIONS",
    "METRIC_KEYS",
    "Predictions",
    "compute_metrics",
    "confusion",
    "cross_generator_matrix",
    "degradation_mean",
    "degradation_table",
    "evaluate",
    "fit_threshold",
    "get_degradation",
    "predict",
    "resolve_threshold",
    "write_predictions_csv",
]
