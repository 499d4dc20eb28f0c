"""Pixel metrics on masks with known answers, per-kind grouping, and predictions from a gamma model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gendet.data.manipulations.codes import SOURCE_COPIED, SOURCE_GENERATED, SOURCE_REAL, encode_source_map
from gendet.data.sample import Sample
from gendet.evaluation.pixel_metrics import (
    PixelPredictions,
    mask_metrics,
    pixel_report,
    predict_pixels,
    sample_kind,
    source_accuracy,
)
from gendet.models import create_detector


def _truth() -> np.ndarray:
    t = np.zeros((2, 4, 4), dtype=bool)
    t[0, 0, :] = True  # 4 pixels
    t[1, :2, :2] = True  # 4 pixels
    return t


def test_perfect_and_inverted() -> None:
    t = _truth()
    perfect = mask_metrics(t, t.astype(float))
    assert perfect["f1"] == perfect["iou"] == perfect["pixel_auc"] == 1.0 and perfect["fp_rate"] == 0.0
    inverted = mask_metrics(t, (~t).astype(float))
    assert inverted["f1"] == inverted["iou"] == inverted["pixel_auc"] == 0.0 and inverted["fp_rate"] == 1.0


def test_known_partial_overlap() -> None:
    t = _truth()[:1]
    p = np.zeros((1, 4, 4))
    p[0, 0, :2] = 0.9  # 2 of the 4 true pixels
    p[0, 1, :2] = 0.8  # and 2 false positives
    m = mask_metrics(t, p)
    assert m["f1"] == pytest.approx(0.5) and m["iou"] == pytest.approx(1 / 3)  # tp 2, fp 2, fn 2
    assert m["fp_rate"] == pytest.approx(2 / 12) and m["pred_area"] == pytest.approx(4 / 16)
    # AUC: positives score 0.9, 0.9, 0, 0; negatives 0.8, 0.8 and ten zeros
    assert m["pixel_auc"] == pytest.approx((2 * 12 + 2 * 5) / (4 * 12))


def test_images_without_a_true_mask_are_left_out_of_f1() -> None:
    t = np.zeros((2, 4, 4), dtype=bool)
    t[0, :2] = True
    p = np.zeros((2, 4, 4))
    p[0, :2] = 1.0
    p[1, 0, 0] = 1.0  # one false positive on the clean image
    m = mask_metrics(t, p)
    assert m["n"] == 2 and m["n_with_mask"] == 1 and m["f1"] == 1.0 and m["fp_rate"] == pytest.approx(1 / 24)
    none = mask_metrics(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4)))
    assert none["f1"] is None and none["iou"] is None and none["pixel_auc"] is None
    with pytest.raises(ValueError):
        mask_metrics(t, p[:, :2])


def test_auc_subsamples_large_inputs_deterministically() -> None:
    rng = np.random.default_rng(0)
    t = rng.random((4, 64, 64)) > 0.7
    p = np.where(t, rng.uniform(0.3, 1, t.shape), rng.uniform(0, 0.7, t.shape))
    full = mask_metrics(t, p)["pixel_auc"]
    a, b = mask_metrics(t, p, max_pixels=3000, seed=1), mask_metrics(t, p, max_pixels=3000, seed=1)
    assert a["pixel_auc"] == b["pixel_auc"] and abs(a["pixel_auc"] - full) < 0.05


def test_source_accuracy() -> None:
    truth = np.array([[SOURCE_REAL, SOURCE_GENERATED, SOURCE_COPIED, SOURCE_COPIED]])
    pred = np.array([[SOURCE_GENERATED, SOURCE_GENERATED, SOURCE_GENERATED, SOURCE_COPIED]])
    assert source_accuracy(truth, pred) == pytest.approx(2 / 3)  # over manipulated pixels only
    assert source_accuracy(np.zeros((2, 2)), np.ones((2, 2))) is None


def test_report_groups_by_kind() -> None:
    samples = [Sample(Path(f"{i}.png"), lab, extra={"kind": k} if k else {})
               for i, (lab, k) in enumerate([(1, "splice"), (1, "copy_move"), (0, None), (1, None)])]
    truth = np.zeros((4, 4, 4), dtype=np.uint8)
    truth[0, :2], truth[1, 2:], truth[3] = SOURCE_COPIED, SOURCE_COPIED, SOURCE_GENERATED
    prob = (truth != SOURCE_REAL).astype(np.float32)
    preds = PixelPredictions(samples, prob, truth.copy(), truth, np.array([0.9, 0.2, 0.1, 0.8]), [])
    report = pixel_report(preds)
    assert set(report) == {"splice", "copy_move", "real", "fully_generated", "partial"}
    assert [sample_kind(s) for s in samples] == ["splice", "copy_move", "real", "fully_generated"]
    assert report["partial"]["n"] == 2 and report["partial"]["f1"] == 1.0 and report["partial"]["source_acc"] == 1.0
    assert report["real"]["fp_rate"] == 0.0 and report["real"]["f1"] is None
    assert report["copy_move"]["image_acc"] == 0.0 and report["splice"]["image_acc"] == 1.0


def test_predict_pixels_reads_true_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = np.zeros((32, 32), dtype=np.uint8)
    src[4:12, 4:20] = SOURCE_GENERATED
    encode_source_map(src).save(tmp_path / "m.png")
    paths = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    samples = [Sample(paths[0], 1, mask=tmp_path / "m.png", extra={"kind": "inpaint_x"}), Sample(paths[1], 0),
               Sample(paths[2], 1)]
    torch.manual_seed(0)
    det = create_detector("gamma", **create_detector("gamma").small_config)
    preds = predict_pixels(det, samples, det.preprocess(align="png"), batch_size=2)
    assert preds.prob.shape == (3, 32, 32) and preds.truth.shape == (3, 32, 32)
    assert np.array_equal(preds.truth[0], src) and (preds.truth[1] == 0).all() and (preds.truth[2] == 1).all()
    assert ((preds.prob >= 0) & (preds.prob <= 1)).all() and preds.image_prob.shape == (3,)
    with pytest.raises(ValueError, match="no segmentation heads"):
        predict_pixels(create_detector("gamma", **{**det.small_config, "seg_heads": False}), samples,
                       det.preprocess(align="png"))
