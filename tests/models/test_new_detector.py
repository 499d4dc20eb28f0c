"""Adding a detector is one class plus one registry line: defined here, it trains, evaluates, scans, serves and
explains through the CLI, the server and the Python API with no other change to gendet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from detect.helpers import make_good_images
from torch import nn

import gendet
from gendet.cli.main import main
from gendet.models import registry
from gendet.models.base import Detector


class ColourStats(Detector):
    """Mean and spread of each colour channel, then a linear head: small enough for a test."""

    name = "colour_stats"
    description = "channel means and standard deviations + a linear head (a test detector)"
    default_config: ClassVar[dict[str, Any]] = {"image_size": 32}
    bench: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {"label": "colour stats", "train": {"epochs": 1}}}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.head = nn.Linear(6, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(registry.DETECTORS, "colour_stats", f"{__name__}:ColourStats")  # the one registry line
    return "colour_stats"


def test_train_eval_detect_serve_explain(registered: str, genimage_root: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ckpt = tmp_path / "ckpt"
    assert main(["train", "--model", registered, "--data", str(genimage_root), "--subset", "gen_a", "--out",
                 str(ckpt), "--epochs", "1", "--batch-size", "8", "--holdout", "0.25", "--no-progress"]) == 0
    assert json.loads((ckpt / "config.json").read_text())["model"] == registered

    report = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(genimage_root), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["model"] == registered

    images = make_good_images(tmp_path / "scan", 3)
    out = tmp_path / "scan.jsonl"
    assert main(["detect", str(tmp_path / "scan"), "--checkpoint", str(ckpt), "--output", str(out),
                 "--workers", "0", "--no-progress"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == sorted(p.name for p in images)
    assert all(0.0 <= r["score"] <= 1.0 for r in records)

    from fastapi.testclient import TestClient

    from gendet.serve.app import create_app

    with TestClient(create_app(ckpt)) as client:
        r = client.post("/v1/detect", files={"file": ("a.png", images[0].read_bytes(), "image/png")})
        assert r.status_code == 200, r.text
        served = r.json()["results"][0]["score"]
    scanned = next(r["score"] for r in records if Path(r["path"]).name == images[0].name)
    assert served == pytest.approx(scanned, abs=1e-5)

    assert main(["explain", str(images[0]), "--checkpoint", str(ckpt), "--out", str(tmp_path / "why")]) == 0

    v = gendet.load(ckpt).predict(images[0])
    assert v.score == pytest.approx(scanned, abs=1e-5)


def test_its_bench_entry_makes_it_a_column_of_the_preset(registered: str) -> None:
    from gendet.bench.presets import TINY

    spec = next(s for s in TINY.detectors if s.name == registered)
    assert spec.label == "colour stats" and spec.train == {**TINY.train, "epochs": 1} and spec.in_default_run


def test_a_detector_that_cannot_score_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="classifier"):
        class FeaturesOnly(Detector):  # noqa: F841 - defining it is the test
            def features(self, x: torch.Tensor) -> torch.Tensor:
                return x

