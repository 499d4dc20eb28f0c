"""Protocol helpers: evaluate, thresholds, Task 1 matrix, Task 2 table, predictions CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from gendet.data.layouts import read_samples, select_split
from gendet.data.sample import Sample
from gendet.evaluation.degradations import DEGRADATIONS, get_degradation
from gendet.evaluation.metrics import METRIC_KEYS, compute_metrics
from gendet.evaluation.protocol import (
    cross_generator_matrix,
    degradation_mean,
    degradation_table,
    evaluate,
    resolve_threshold,
    write_predictions_csv,
)
from gendet.models import create_detector


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return create_detector("tiny_cnn", image_size=32, width=8).eval()


@pytest.fixture(scope="module")
def val_samples(genimage_root):
    return select_split(read_samples(genimage_root), "eval")


def test_evaluate_overall_and_subsets(detector, val_samples):
    pp = detector.preprocess("jpeg")
    m, preds = evaluate(detector, val_samples, pp, 0.5, "fixed", batch_size=7)
    assert set(METRIC_KEYS) <= set(m) and m["errors"] == []
    assert m["n"] == len(val_samples) == len(preds.samples) == 32
    assert set(m["subsets"]) == {"gen_a", "gen_b"}
    assert sum(s["n"] for s in m["subsets"].values()) == m["n"]
    # the top level is exactly the metrics of the returned scores
    ref = compute_metrics(preds.labels, preds.scores, 0.5, "fixed")
    assert {k: m[k] for k in METRIC_KEYS} == {k: ref[k] for k in METRIC_KEYS}
    one, _ = evaluate(detector, [s for s in val_samples if s.generator == "gen_a"], pp, 0.5, "fixed")
    assert "subsets" not in one and one["acc"] == m["subsets"]["gen_a"]["acc"]


def test_evaluate_degradation_by_name_or_op(detector, val_samples):
    pp = detector.preprocess("jpeg")
    few = val_samples[:6]
    by_name, p1 = evaluate(detector, few, pp, 0.5, "fixed", degradation="blur_5")
    by_op, p2 = evaluate(detector, few, pp, 0.5, "fixed", degradation=get_degradation("blur_5"))
    clean, p3 = evaluate(detector, few, pp, 0.5, "fixed", degradation="none")
    np.testing.assert_array_equal(p1.scores, p2.scores)
    assert not np.allclose(p1.scores, p3.scores)
    with pytest.raises(ValueError, match="unknown degradation"):
        evaluate(detector, few, pp, 0.5, "fixed", degradation="blur_7")


def test_evaluate_reports_bad_files_and_refuses_unlabelled(detector, tmp_path, val_samples):
    pp = detector.preprocess("jpeg")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    m, preds = evaluate(detector, [*val_samples[:4], Sample(bad, 1, "val", "gen_a")], pp, 0.5, "fixed")
    assert m["n"] == 4 and m["errors"][0][0] == str(bad) and m["errors"][0][1]
    with pytest.raises(ValueError, match="could be evaluated"):
        evaluate(detector, [Sample(bad, 1, "val")], pp, 0.5, "fixed")
    with pytest.raises(ValueError, match="no label"):
        evaluate(detector, [Sample(val_samples[0].path, None, "val")], pp, 0.5, "fixed")


def test_resolve_threshold():
    assert resolve_threshold("fixed", {}) == (0.5, "fixed")
    assert resolve_threshold("val", {"threshold_val": 0.37}) == (0.37, "val")
    assert resolve_threshold("0.7", {}) == (0.7, "user")
    assert resolve_threshold(0.2, {"threshold_val": 0.9}) == (0.2, "user")
    with pytest.raises(ValueError, match="threshold_val"):
        resolve_threshold("val", {"threshold": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        resolve_threshold("1.5", {})
    with pytest.raises(ValueError, match="fixed"):
        resolve_threshold("best", {})


def test_cross_generator_matrix():
    per_train = {
        "sd": {"sd": {"acc": 1.0}, "adm": {"acc": 0.6}, "glide": {"acc": 0.5}},
        "adm": {"sd": {"acc": 0.7}, "adm": {"acc": 0.9}},  # glide missing
    }
    t = cross_generator_matrix(per_train, "acc")
    assert t["rows"] == ["sd", "adm"] and t["columns"] == ["sd", "adm", "glide"]
    assert t["values"] == [[1.0, 0.6, 0.5], [0.7, 0.9, None]]
    assert t["row_mean"] == pytest.approx([0.7, 0.8])
    assert t["col_mean"] == pytest.approx([0.85, 0.75, 0.5])
    assert t["mean"] == pytest.approx(3.7 / 5)
    auc = cross_generator_matrix({"sd": {"sd": {"auc": None}}}, "auc")
    assert auc["values"] == [[None]] and auc["row_mean"] == [None]


def test_degradation_table_and_csv(detector, val_samples, tmp_path):
    pp = detector.preprocess("png")
    few = val_samples[:4] + val_samples[-4:]
    table, preds = degradation_table(detector, few, pp, 0.5, "fixed", batch_size=8)
    assert list(table) == ["none", *DEGRADATIONS]
    assert all(table[k]["n"] == 8 for k in table)
    accs = [table[k]["acc"] for k in DEGRADATIONS]
    assert degradation_mean(table, "acc") == pytest.approx(sum(accs) / 6)

    out = write_predictions_csv(tmp_path / "p.csv", preds)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "score", "generator", "degradation"]
    assert len(rows) == 7 * 8
    jpeg = [r for r in rows if r["degradation"] == "jpeg_30"]
    np.testing.assert_allclose([float(r["score"]) for r in jpeg], preds["jpeg_30"].scores)
    assert [Path(r["path"]) for r in jpeg] == [s.path for s in preds["jpeg_30"].samples]

    single = write_predictions_csv(tmp_path / "one.csv", preds["none"], "none")
    assert single.read_text().count("\n") == 9


def test_identical_files_are_scored_once_with_the_same_result(detector, val_samples, tmp_path, monkeypatch):
    import shutil

    from gendet.evaluation import inference

    few = val_samples[:6]
    copies = []
    for i, s in enumerate(few[:3]):  # byte-identical copies under another subset name, as GenImage repeats reals
        dst = tmp_path / f"copy{i}{s.path.suffix}"
        shutil.copyfile(s.path, dst)
        copies.append(Sample(dst, s.label, s.split, "other"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    samples = [*few, *copies, Sample(broken, 1, "val", "other"), Sample(tmp_path / "broken2.png", 1, "val", "other")]
    shutil.copyfile(broken, samples[-1].path)
    pp = detector.preprocess("jpeg")
    plain, plain_preds = evaluate(detector, samples, pp, 0.5, "fixed", batch_size=4)
    scored = []
    real_predict = inference.predict

    def counting(det, smp, *a, **kw):
        scored.append(len(list(smp)))
        return real_predict(det, smp, *a, **kw)

    monkeypatch.setattr(inference, "predict", counting)
    fast, fast_preds = evaluate(detector, samples, pp, 0.5, "fixed", batch_size=4, dedupe_files=True)
    assert scored[-1] == len(few) + 1  # the copies and the second broken file were not decoded again
    assert [str(s.path) for s in fast_preds.samples] == [str(s.path) for s in plain_preds.samples]
    np.testing.assert_allclose(fast_preds.scores, plain_preds.scores, rtol=1e-5, atol=1e-6)
    assert sorted(p for p, _ in fast["errors"]) == sorted(p for p, _ in plain["errors"]) == [str(broken),
                                                                                           str(samples[-1].path)]
    assert fast["auc"] == pytest.approx(plain["auc"])


def test_degradation_table_reuses_clean_predictions(detector, val_samples):
    pp = detector.preprocess("png")
    few = val_samples[:4] + val_samples[-4:]
    _, clean = evaluate(detector, few, pp, 0.5, "fixed", batch_size=8)
    fresh, _ = degradation_table(detector, few, pp, 0.5, "fixed", names=["jpeg_30"], batch_size=8)
    reused, preds = degradation_table(detector, few, pp, 0.5, "fixed", names=["jpeg_30"], batch_size=8, clean=clean)
    assert preds["none"] is clean
    assert reused["none"]["acc"] == fresh["none"]["acc"] and reused["jpeg_30"] == fresh["jpeg_30"]
    with pytest.raises(ValueError, match="other samples"):
        degradation_table(detector, few[:4], pp, 0.5, "fixed", names=["jpeg_30"], clean=clean)
