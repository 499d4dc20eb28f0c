"""compute_metrics against small cases checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gendet.evaluation.metrics import (
    METRIC_KEYS,
    compute_metrics,
    confusion,
    equal_error_rate,
    expected_calibration_error,
    tpr_at_fpr,
)


def test_keys_and_json_serialisable():
    m = compute_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], 0.5, "fixed")
    assert set(m) == set(METRIC_KEYS)
    json.dumps(m, allow_nan=False)
    for k in METRIC_KEYS:
        assert m[k] is None or type(m[k]) in (int, float, str), (k, type(m[k]))


def test_perfect_separation():
    m = compute_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert m["n"] == 4
    assert m["acc"] == m["real_acc"] == m["fake_acc"] == 1.0
    assert m["auc"] == 1.0 and m["ap"] == 1.0
    assert m["eer"] == 0.0 and m["tpr_at_fpr_1pct"] == 1.0
    # 15 bins: |0.1-0|, |0.2-0|, |0.8-1|, |0.9-1| averaged = 0.15
    assert m["ece"] == pytest.approx(0.15)
    assert "notes" not in m


def test_inverted_scores():
    m = compute_metrics([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])
    assert m["acc"] == m["real_acc"] == m["fake_acc"] == 0.0
    assert m["auc"] == 0.0 and m["eer"] == 1.0 and m["tpr_at_fpr_1pct"] == 0.0
    # precision 1/3 at recall 0.5 and 2/4 at recall 1 -> AP = 0.5/3 + 0.5*0.5
    assert m["ap"] == pytest.approx(0.5 / 3 + 0.25)


def test_interleaved_hand_checked():
    # positives {.2,.4}, negatives {.1,.3}: 3 of 4 pairs ordered -> AUC .75;
    # ranking P N P N -> AP = .5*1 + .5*(2/3)
    m = compute_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], threshold=0.25, threshold_source="user")
    assert m["auc"] == pytest.approx(0.75)
    assert m["ap"] == pytest.approx(0.5 + 1 / 3)
    assert m["eer"] == pytest.approx(0.5)  # at t=.3: FPR .5, FNR .5
    assert m["tpr_at_fpr_1pct"] == pytest.approx(0.5)
    assert m["acc"] == 0.5 and m["real_acc"] == 0.5 and m["fake_acc"] == 0.5
    assert m["threshold"] == 0.25 and m["threshold_source"] == "user"


def test_threshold_is_inclusive():
    m = compute_metrics([0, 1], [0.3, 0.5], threshold=0.5)
    assert m["fake_acc"] == 1.0  # score == threshold counts as generated
    assert confusion([0, 1, 1, 0], [0.5, 0.5, 0.2, 0.1], 0.5) == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}


def test_random_scores_near_chance():
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 4000), rng.random(4000)
    m = compute_metrics(y, s)
    assert abs(m["auc"] - 0.5) < 0.04 and abs(m["acc"] - 0.5) < 0.04 and abs(m["eer"] - 0.5) < 0.04
    assert m["tpr_at_fpr_1pct"] < 0.05
    assert m["ece"] == pytest.approx(0.25, abs=0.03)  # E|U - 0.5| for uniform scores and coin-flip labels


def test_ece_simple_cases():
    # one bin, confidence .8, 3 of 5 generated -> |.8 - .6| = .2
    assert expected_calibration_error(np.array([1, 1, 1, 0, 0]), np.full(5, 0.8)) == pytest.approx(0.2)
    # four separate bins: (.1 vs 0) (.2 vs 1) (.9 vs 1) (.95 vs 1) -> (.1 + .8 + .1 + .05) / 4
    ece = expected_calibration_error(np.array([0, 1, 1, 1]), np.array([0.1, 0.2, 0.9, 0.95]))
    assert ece == pytest.approx(0.2625)
    # perfectly calibrated: half of the 0.5-scored images are generated
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.5)) == pytest.approx(0.0)


def test_roc_readoffs_interpolate():
    fpr, tpr = np.array([0.0, 0.0, 0.02, 1.0]), np.array([0.0, 0.5, 0.7, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(0.6)
    assert tpr_at_fpr(np.array([0.0, 0.01, 0.01, 1.0]), np.array([0.0, 0.3, 0.8, 1.0]), 0.01) == 0.8
    # FNR = 1 - TPR meets FPR inside the segment (.2,.6)-(1,1) at 1/3
    assert equal_error_rate(np.array([0.0, 0.2, 1.0]), np.array([0.0, 0.6, 1.0])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_gives_nulls_with_notes(label):
    m = compute_metrics([label] * 3, [0.9, 0.8, 0.2])
    assert m["ap"] is None and m["auc"] is None and m["eer"] is None and m["tpr_at_fpr_1pct"] is None
    assert m["acc"] == pytest.approx(2 / 3 if label == 1 else 1 / 3)
    present, absent = ("fake_acc", "real_acc") if label == 1 else ("real_acc", "fake_acc")
    assert m[present] == pytest.approx(m["acc"]) and m[absent] is None
    assert m["ece"] is not None
    assert any("auc" in n for n in m["notes"]) and any(absent in n for n in m["notes"])


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics([0, 1], [0.2, float("nan")])
    with pytest.raises(ValueError, match="empty"):
        compute_metrics([], [])
    with pytest.raises(ValueError, match="equal length"):
        compute_metrics([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="labels must be 0"):
        compute_metrics([0, 2], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_metrics([0, 1], [-3.0, 2.0])  # logits instead of probabilities
