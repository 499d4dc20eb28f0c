"""`gendet provenance`: the survey of a labelled set, its files and exit codes."""

from __future__ import annotations

import json

from provenance.helpers import camera_jpeg, comfy_prompt, png_bytes, text, with_chunks, xmp_packet

from gendet.cli.main import main


def labelled(root, real_extra: bytes | None = None):
    (root / "0_real").mkdir(parents=True)
    (root / "1_fake").mkdir()
    (root / "0_real" / "camera.jpg").write_bytes(camera_jpeg())
    (root / "0_real" / "captured.jpg").write_bytes(camera_jpeg(make="", xmp=xmp_packet(
        "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture")))
    (root / "1_fake" / "comfy.png").write_bytes(with_chunks(png_bytes(), text("prompt", comfy_prompt())))
    (root / "1_fake" / "plain.png").write_bytes(png_bytes())
    if real_extra is not None:
        (root / "0_real" / "odd.png").write_bytes(real_extra)
    return root


def test_survey_counts_signals_per_class(capsys, tmp_path) -> None:
    data = labelled(tmp_path / "set")
    assert main(["provenance", "--data", str(data), "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    s = json.loads((tmp_path / "out" / "survey.json").read_text())["survey"]
    assert s["files"] == {"real": 2, "generated": 2}
    assert s["signals"]["generator-metadata generated/declared"] == {"generated": 1}
    assert s["signals"]["camera-exif captured/heuristic"] == {"real": 1}
    assert s["signals"]["iptc-digital-source-type captured/declared"] == {"real": 1}
    assert s["decisive_generated"] == {"real": 0, "generated": 1} and s["generators"] == {"ComfyUI": 1}
    assert s["real_flagged_generated"] == []
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000
    assert "generator-metadata generated/declared" in capsys.readouterr().out


def test_a_real_file_flagged_generated_fails_the_survey(capsys, tmp_path) -> None:
    data = labelled(tmp_path / "set", real_extra=with_chunks(png_bytes(), text("Software", "NovelAI")))
    assert main(["provenance", "--data", str(data), "--out", str(tmp_path / "out"), "--workers", "0"]) == 1
    assert "odd.png" in capsys.readouterr().err
