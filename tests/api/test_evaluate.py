"""gendet.evaluate: the same numbers as `gendet eval`, as a typed result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from detect.helpers import make_checkpoint

import gendet
from gendet.cli.main import main


def test_agrees_with_gendet_eval(genimage_root: Path, tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "ckpt", threshold=0.4, source="val")
    report = gendet.evaluate(ckpt, genimage_root)
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(genimage_root), "--json", str(out),
                 "--threshold", "0.4"]) == 0
    cli = json.loads(out.read_text())
    for key in ("n", "auc", "ap", "acc", "real_acc", "fake_acc", "eer", "ece"):
        assert getattr(report, key) == pytest.approx(cli[key]), key
    assert (report.threshold, report.threshold_source) == (0.4, "val")  # the checkpoint's own threshold
    assert set(report.subsets) == set(cli["subsets"]) == {"gen_a", "gen_b"}
    assert len(report.paths) == len(report.labels) == len(report.scores) == report.n
    assert report.metrics["auc"] == report.auc
    assert gendet.evaluate(ckpt, genimage_root, threshold="fixed").threshold == 0.5


def test_broken_files_are_listed_not_fatal(genimage_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(genimage_root, data)
    broken = data / "gen_a" / "val" / "ai" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    report = gendet.evaluate(make_checkpoint(tmp_path / "ckpt"), data)
    assert [Path(p).name for p, _ in report.errors] == ["broken.png"]
    assert report.n == 32 and np.isfinite(report.scores).all()
