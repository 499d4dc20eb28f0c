"""The Python API (`gendet.load`, `Model.predict`, `Model.scan`, `Verdict`), and the README's examples run as
written."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_genimage_tree
from detect.helpers import make_checkpoint, make_good_images
from PIL import Image
from provenance.helpers import comfy_prompt, png_bytes, text, with_chunks

import gendet
from gendet.detect import Input, iter_record_batches, load_scan_model

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("api") / "tiny", threshold=0.6, source="val")


def readme_python_blocks() -> list[str]:
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_examples_run(tmp_path, monkeypatch) -> None:
    blocks = readme_python_blocks()
    assert blocks, "README has a '## Python API' section with python blocks"
    monkeypatch.chdir(tmp_path)
    Image.open(io.BytesIO(png_bytes())).convert("RGB").save("img.jpg", quality=90)
    make_good_images(tmp_path / "folder", 2, size=64)
    make_genimage_tree(tmp_path / "data", generators=("gen_a",), n_train=10, n_val=6, size=48)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own README, run as documentation tests


def test_predict_takes_every_kind_of_image_and_agrees_with_detect(ckpt, tmp_path) -> None:
    det = gendet.load(str(ckpt), device="cpu")
    path = make_good_images(tmp_path / "imgs", 1, size=48)[0]
    pil = Image.open(path).convert("RGB")
    arr = np.array(pil)
    inputs = [str(path), path, path.read_bytes(), pil, arr, arr.astype(np.float32) / 255,
              torch.from_numpy(arr).permute(2, 0, 1), torch.from_numpy(arr)]
    verdicts = det.predict(inputs)
    assert [type(v) for v in verdicts] == [gendet.Verdict] * len(inputs)
    scores = {round(v.score, 5) for v in verdicts}
    assert len(scores) == 1 and all(v.error is None for v in verdicts)
    [[rec]] = list(iter_record_batches([Input(str(path))], load_scan_model(ckpt), batch_size=1))
    one = det.predict(str(path))
    assert one.score == pytest.approx(rec.score, abs=1e-6) and one.verdict == rec.verdict and one.label == rec.label
    assert one.threshold == 0.6 and verdicts[3].provenance is None and one.provenance == ()


def test_bad_inputs_are_verdicts_with_errors_and_wrong_types_raise(ckpt, tmp_path) -> None:
    det = gendet.load(str(ckpt), device="cpu")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    bad, shape = det.predict([str(tmp_path / "broken.png"), np.zeros((4, 4, 7), np.uint8)])
    assert bad.error and bad.score is None and shape.error and "shape" in shape.error
    with pytest.raises(TypeError):
        det.predict(42)


def test_provenance_and_scan(ckpt, tmp_path) -> None:
    det = gendet.load(str(ckpt), device="cpu")
    v = det.predict(with_chunks(png_bytes(), text("prompt", comfy_prompt())))
    assert v.verdict == "generated" and v.is_generated and v.provenance[0].generator == "ComfyUI"
    assert gendet.load(str(ckpt), device="cpu", provenance="off").predict(png_bytes()).provenance is None
    folder = tmp_path / "scan"
    make_good_images(folder, 3)
    got = list(det.scan([folder], workers=1))
    assert sorted(Path(v.source).name for v in got) == sorted(p.name for p in folder.iterdir())
    assert all(v.score is not None for v in got)
    with pytest.raises(ValueError):
        gendet.load(str(ckpt), engine="tensorrt")


def test_load_picks_the_onnx_engine_for_an_exported_file_as_the_cli_does(ckpt, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    import shutil

    from gendet.cli.main import main
    from gendet.detect.onnx_model import OnnxDetector

    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    assert isinstance(gendet.load(tmp_path / "m.onnx", device="cpu").scan_model.detector, OnnxDetector)
    # a checkpoint directory is a torch model whatever its name ends with
    shutil.copytree(ckpt, tmp_path / "named.onnx")
    assert not isinstance(gendet.load(tmp_path / "named.onnx", device="cpu").scan_model.detector, OnnxDetector)
