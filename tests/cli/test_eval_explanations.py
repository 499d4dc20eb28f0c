"""`gendet eval` adds explanation metrics for a UniGenDet with a text head on FakeClue-format data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gendet.cli.main import main
from gendet.data.layouts import read_samples
from gendet.models import create_detector
from gendet.models.checkpoint import save_checkpoint
from gendet.models.unigendet.build import build_unigendet
from gendet.training.unified import UnifiedConfig, train_unified

# the shipped latent_flow autoencoder fixes ae_channels [24, 48, 96], z_ch 4, ae_blocks 1 (the defaults)
TINY = {"image_size": 32, "hidden": 32, "depth": 2, "heads": 2, "vision_patch": 8, "max_text_len": 16}
TEXTS = {1: "This is a fake image. The texture is blocky.", 0: "This is a real image. The lighting is natural."}


def _image(label: int, rng: np.random.Generator) -> Image.Image:
    if label:  # blocky: 4x4 nearest up-sampling of noise
        arr = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((4, 4, 1)))
    else:  # smooth gradient with a little noise
        ramp = np.linspace(40, 220, 32)
        arr = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1) + rng.normal(0, 3, (32, 32, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _fakeclue(root: Path, n_per_split: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        records = []
        for i in range(n_per_split):
            label = i % 2  # gendet: 1 = generated
            rel = f"{split}/{'fake' if label else 'real'}/{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            _image(label, rng).save(root / rel)
            records.append({"image": rel, "label": 1 - label,  # FakeClue: 1 = real
                            "cate": "animal" if i < n_per_split // 2 else "doc",
                            "conversations": [{"from": "human", "value": "<image>\nReal or fake?"},
                                              {"from": "gpt", "value": TEXTS[label]}]})
        (root / f"{split}.json").write_text(json.dumps(records))
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny tensors: with other jobs on the cores, intra-op threads spin-wait and run ~50x slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _fakeclue(tmp_path_factory.mktemp("fakeclue"))


@pytest.fixture(scope="module")
def unigendet_ckpt(tmp_path_factory, data: Path) -> Path:
    torch.manual_seed(0)
    train = read_samples(data, split="train")
    model = build_unigendet(TINY, train, autoencoder=None)
    assert model.tokenizer is not None  # the vocabulary came from the explanations
    pp = model.preprocess("png")
    # 20 steps at a high rate with the EMA off (it is what gets saved): enough to emit explanation-like words
    cfg = UnifiedConfig(steps=20, det_batch=4, lr=1e-2, warmup=0.0, ema_decay=0.0, progress=False,
                        save_every_steps=100)
    out = tmp_path_factory.mktemp("ckpt")
    train_unified(model, train, [], pp, cfg, out, extra_config={"model": "unigendet", "data_root": str(data)})
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_eval_adds_explanation_block_and_texts_csv(unigendet_ckpt: Path, data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "e.json"
    rc = main(["eval", "--checkpoint", str(unigendet_ckpt), "--data", str(data), "--json", str(out),
               "--batch-size", "3"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["n"] == 8 and res["splits"] == ["test"]
    e = res["explanation"]
    assert e["n"] == e["n_with_reference"] == 8
    for k in ("rouge_l", "tfidf_cosine", "exact_match"):
        assert 0.0 <= e[k] <= 1.0
    assert e["rouge_l"] > 0.2 and e["tfidf_cosine"] > 0.2  # the model learnt some of the words
    assert set(e["subsets"]) == {"animal", "doc"} and e["degradation"] == "none"
    rows = _rows(out.parent / e["explanations_file"])
    assert e["explanations_file"] == "e.explanations.csv"
    assert len(rows) == 8
    assert {r["reference"] for r in rows} == set(TEXTS.values())
    assert all(r["generated"] for r in rows)
    assert all(r["reference"] == TEXTS[int(r["label"])] for r in rows)  # each text next to its own image
    assert all(Path(r["path"]).is_absolute() and Path(r["path"]).exists() for r in rows)
    assert np.mean([float(r["rouge_l"]) for r in rows]) == pytest.approx(e["rouge_l"], abs=1e-5)
    assert "explanations: n=8 rouge_l=" in capsys.readouterr().out


def test_no_explanations_flag_skips_the_block(unigendet_ckpt: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    rc = main(["eval", "--checkpoint", str(unigendet_ckpt), "--data", str(data), "--json", str(out),
               "--no-explanations"])
    assert rc == 0
    assert "explanation" not in json.loads(out.read_text())
    assert not (tmp_path / "e.explanations.csv").exists()


def test_model_without_text_head_says_nothing(data: Path, tmp_path: Path, capsys) -> None:
    det = create_detector("tiny_cnn", image_size=32, width=8)
    pp = det.preprocess("png")
    ckpt = save_checkpoint(tmp_path / "cnn", det, {"preprocess": pp.to_dict(), "align": "png"})
    out = tmp_path / "c.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--json", str(out)]) == 0
    assert "explanation" not in json.loads(out.read_text())
    assert "explanations" not in capsys.readouterr().out


def test_report_shows_the_explanation_metrics(unigendet_ckpt: Path, data: Path, tmp_path: Path) -> None:
    assert main(["eval", "--checkpoint", str(unigendet_ckpt), "--data", str(data)]) == 0  # into DIR/eval/
    res = json.loads(next((unigendet_ckpt / "eval").glob("*.json")).read_text())
    assert main(["report", str(unigendet_ckpt), "--out", str(tmp_path), "--top-k", "1"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "Generated explanations vs the reference texts" in md
    row = next(line for line in md.splitlines() if "ROUGE-L" in line and line.startswith("|"))
    assert "TF-IDF cosine" in row
    values = next(line for line in md.splitlines()[md.splitlines().index(row) + 2:] if line.startswith("|"))
    assert f"{res['explanation']['rouge_l']:.3f}" in values
