"""The run report on a synthetic run directory: every section, no external URLs, escaping, graceful omissions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from gendet.report import RunDirError, build_run_report, load_run
from gendet.report.confident import confident_examples
from gendet.report.run_data import PredictionTable

from .report_fixtures import make_run_dir

SECTIONS = ("Summary", "Metrics", "Cross-generator matrix", "Degraded images", "ROC curves", "Real vs fake accuracy",
            "Calibration", "Training curves", "Most confident right and wrong")


def _report(tmp_path: Path, **parts) -> tuple[str, str, Path]:
    run = make_run_dir(tmp_path, **parts)
    html_path, md_path = build_run_report(run, top_k=3)
    return html_path.read_text(), md_path.read_text(), run


def _imgs(html: str) -> int:
    return len(re.findall(r'src="data:image/png;base64,', html))


def test_full_report(tmp_path: Path):
    html, md, run = _report(tmp_path)
    for s in SECTIONS:
        assert f">{s}</h2>" in html and f"## {s}" in md
    for value in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html):
        assert value.startswith("data:") or value.startswith("#"), value
    assert "<script" not in html.lower() and "&lt;script&gt;" in html
    assert "<script" not in md.lower()
    # provenance: the exact commands, seed and alignment
    assert "gendet train --model tiny_cnn" in html and "--degradation jpeg_30" in html
    assert html.count("Produced by") == 8
    # figures: heat map, degradation bars, 2 ROC, real/fake, calibration, training + 3 right + 3 wrong thumbnails
    assert _imgs(html) == 7 + 6
    assert "broken.png" in html  # the undecodable most-confident file is skipped, and said so
    assert "No wrong predictions" not in html
    # clean evaluation listed before degradations, in protocol order
    assert html.index("<td>clean</td>") < html.index("<td>jpeg_30</td>") < html.index("<td>blur_5</td>")
    assert md.count("](report_files/") == 13
    assert "train_log.jsonl: 1 unreadable line" in html


def test_missing_optional_parts_are_notes(tmp_path: Path):
    html, _, _ = _report(tmp_path / "a", degraded_eval=False, train_log=False, predictions=False)
    assert "No degraded evaluation found" in html
    assert "No train_log.jsonl" in html
    assert "ROC curves cannot be drawn" in html
    assert "no reliability diagram" in html and "no example images" in html
    assert _imgs(html) == 2  # matrix and real/fake bars from the JSON alone

    html, _, _ = _report(tmp_path / "b", clean_eval=False, degraded_eval=False)
    assert "No eval/*.json files" in html and "no cross-generator matrix" in html
    assert _imgs(html) == 1  # training curves only

    html, _, _ = _report(tmp_path / "c", config=False)
    assert "config.json is missing" in html
    assert "Training command" not in html


def test_degradations_block_and_bad_files(tmp_path: Path):
    run = make_run_dir(tmp_path, degraded_eval=False)
    clean = json.loads((run / "eval/clean.json").read_text())
    clean["degradations"] = {"resize_64": {**{k: clean[k] for k in ("n", "acc", "auc")}, "real_acc": 0.9}}
    (run / "eval/clean.json").write_text(json.dumps(clean))
    (run / "eval/broken.json").write_text("{not json")
    (run / "eval/other.json").write_text(json.dumps({"hello": 1}))
    html = build_run_report(run, out_dir=tmp_path / "out")[0].read_text()
    assert "broken.json: could not be read" in html and "other.json: not a gendet eval file" in html
    assert "<td>resize_64</td>" in html and "Metrics under each degradation" in html


def test_not_a_run_dir(tmp_path: Path):
    with pytest.raises(RunDirError):
        load_run(tmp_path)
    with pytest.raises(RunDirError):
        load_run(tmp_path / "missing")


def test_confident_examples_ranks_by_margin(tmp_path: Path):
    from PIL import Image

    paths = []
    for i in range(6):
        Image.new("RGB", (50, 30), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
        paths.append(f"{i}.png")
    labels = np.array([1, 1, 0, 0, 1, 0], dtype=float)
    scores = np.array([0.9, 0.6, 0.1, 0.8, 0.3, np.nan])
    preds = PredictionTable(paths, labels, scores, ["g"] * 6, [""] * 6)
    ex = confident_examples(preds, threshold=0.5, top_k=2, roots=[tmp_path], thumb_px=16)
    assert (ex.n_right, ex.n_wrong) == (3, 2)  # the NaN score is neither
    assert [c.split("\n")[1] for _, c in ex.right] == ["g \u00b7 0.png", "g \u00b7 2.png"]
    assert [c.split("\n")[1] for _, c in ex.wrong] == ["g \u00b7 3.png", "g \u00b7 4.png"]
    assert ex.wrong[0][1].startswith("real called generated")
    assert max(ex.right[0][0].size) == 16
    assert confident_examples(preds, 0.5, top_k=0).right == []


def test_eval_with_all_degradations_in_one_file(tmp_path: Path):
    """`gendet eval --degradation all`: clean metrics on top, a degradations block, every row in one CSV."""
    import csv

    run = make_run_dir(tmp_path, degraded_eval=False)
    data = json.loads((run / "eval/clean.json").read_text())
    data["degradation"] = "all"
    data["degradations"] = {"none": dict(data), "jpeg_30": {**{k: data[k] for k in ("n", "auc")}, "acc": 0.5}}
    (run / "eval/clean.json").write_text(json.dumps(data))
    csv_path = run / "eval/clean.predictions.csv"
    rows = list(csv.DictReader(csv_path.open()))
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "degradation": "none"})
        for r in rows:  # degraded copies: all confidently wrong, so they must not reach the clean sections
            w.writerow({**r, "degradation": "jpeg_30", "score": str(1 - int(r["label"]))})
    loaded = load_run(run)
    assert loaded.clean_evals and len(loaded.clean_evals[0].clean_predictions) == len(rows)
    html = build_run_report(run, top_k=2)[0].read_text()
    assert "No degraded evaluation found" not in html and "<td>jpeg_30</td>" in html
    assert html.count("<td>none</td>") == 4  # all + 3 subsets; the block's "none" entry is not repeated
    assert "real called generated, score 1.000" not in html  # thumbnails come from the clean rows only
