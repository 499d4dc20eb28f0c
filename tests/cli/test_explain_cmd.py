"""`gendet explain` end to end (in-process): figures + JSON per image, stem collisions, exit codes 0/1/2."""

from __future__ import annotations

import json

import pytest
from detect.helpers import make_checkpoint, noise_image
from PIL import Image

from gendet.cli.main import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", threshold=0.65, source="val")


def explain(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["explain", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_good_images_explained_and_broken_file_reported(capsys, ckpt, tmp_path) -> None:
    a_png, a_jpg, bad = tmp_path / "a.png", tmp_path / "sub" / "a.jpg", tmp_path / "broken.png"
    noise_image(40, 1).save(a_png)
    a_jpg.parent.mkdir()
    noise_image(36, 2).save(a_jpg)
    bad.write_bytes(b"\x89PNG not really")
    out_dir = tmp_path / "out"
    rc, out, err = explain(capsys, str(a_png), str(bad), str(a_jpg), "--checkpoint", str(ckpt), "--out",
                           str(out_dir), "--device", "cpu", "--grid", "2", "--top", "2")
    assert rc == 1
    assert f"{bad}: error: not a recognised image format" in err and "1 of 3 inputs failed" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["a-2_explain.json", "a-2_explain.png",
                                                         "a_explain.json", "a_explain.png"]
    first = json.loads((out_dir / "a_explain.json").read_text())
    second = json.loads((out_dir / "a-2_explain.json").read_text())
    assert first["path"] == str(a_png.resolve()) and second["path"] == str(a_jpg.resolve())
    assert first["threshold"] == 0.65 and first["threshold_source"] == "val" and first["model"] == "tiny_cnn"
    assert first["checkpoint"] == str(ckpt) and first["relevance_source"] == "gradient"
    assert first["label"] == ("fake" if first["prob"] >= 0.65 else "real")
    assert first["grid"] == 2 and len(first["regions"]) == 4 and len(first["top_regions"]) == 2
    assert set(first["cues"]) == {"hf_share", "spectral_peak", "noise_residual", "recon_error"}
    assert first["autoencoder"] == "shipped latent_flow" and first["figure"] == "a_explain.png"
    assert first["command"].startswith("gendet explain ")
    assert f"{a_png}: {first['text']}" in out and f"{a_jpg}: {second['text']}" in out
    with Image.open(out_dir / "a_explain.png") as im:
        assert im.format == "PNG" and im.width > 600


def test_all_good_exits_0(capsys, ckpt, tmp_path) -> None:
    img = tmp_path / "x.png"
    noise_image(32, 3).save(img)
    rc, out, _ = explain(capsys, str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                         "--occlusion", "mean")
    assert rc == 0 and out.startswith(f"{img}: Scored ")
    assert json.loads((tmp_path / "o" / "x_explain.json").read_text())["occlusion"] == "mean"


def test_default_checkpoint_is_the_shipped_model(capsys, tmp_path) -> None:
    img = tmp_path / "x.png"
    noise_image(240, 4).save(img)
    rc, out, _ = explain(capsys, str(img), "--out", str(tmp_path / "o"), "--device", "cpu")
    assert rc == 0
    record = json.loads((tmp_path / "o" / "x_explain.json").read_text())
    assert "default_model" in record["checkpoint"] and record["model"].startswith("probe")
    assert record["input_size"] == [260, 260] and record["threshold_source"].startswith("fpr")
    # the verdict is the scan's (mean over the crop grid); the note says the map explains the centre crop
    assert any("mean logit over 4 crops" in n for n in record["notes"])


@pytest.mark.parametrize("extra", [["--grid", "0"], ["--top", "0"], ["--grid", "99"], ["--device", "tpu"]])
def test_usage_errors_exit_2(capsys, ckpt, tmp_path, extra) -> None:
    img = tmp_path / "x.png"
    noise_image(32, 3).save(img)
    rc, out, err = explain(capsys, str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), *extra)
    assert rc == 2 and out == "" and "gendet explain: error:" in err


def test_missing_checkpoint_exits_2(capsys, tmp_path) -> None:
    rc, _, err = explain(capsys, "x.png", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert rc == 2 and "not a directory" in err


def test_provenance_is_listed_with_the_verdict(capsys, ckpt, tmp_path) -> None:
    from provenance.helpers import comfy_prompt, png_bytes, text, with_chunks

    path = tmp_path / "comfy.png"
    path.write_bytes(with_chunks(png_bytes(), text("prompt", comfy_prompt("flux1-dev.safetensors"))))
    rc, out, _ = explain(capsys, str(path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), "--grid", "2")
    record = json.loads((tmp_path / "o" / "comfy_explain.json").read_text())
    assert rc == 0 and record["verdict"] == "generated" and record["reason"].startswith("provenance:")
    assert record["provenance"][0]["generator"] == "ComfyUI"
    assert "provenance: generator-metadata says generated (declared)" in out and "verdict: generated" in out
