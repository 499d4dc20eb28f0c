"""`gendet detect` with provenance: a folder mixing ComfyUI outputs, a C2PA-signed image, a watermarked image,
camera photos and hostile metadata; every record names its findings and verdict."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time

import pytest
from PIL import Image
from provenance.helpers import (
    GENUINE,
    camera_jpeg,
    chunk,
    comfy_prompt,
    png_bytes,
    signed_jpeg,
    text,
    textured,
    watermarked,
    with_chunks,
    xmp_packet,
)

from detect.helpers import make_checkpoint
from gendet.cli.main import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", threshold=0.5, source="val")


def comfy_file() -> bytes:
    """A real ComfyUI example when the genuine set is here, else one with the same chunks made here."""
    real = sorted((GENUINE / "generated").glob("*/comfyanonymous__ComfyUI_examples__*.png"))
    if real:
        return real[0].read_bytes()
    return with_chunks(png_bytes(), text("prompt", comfy_prompt()), text("workflow", '{"nodes": []}'))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "comfy.png").write_bytes(comfy_file())
    with Image.open(io.BytesIO(comfy_file())) as img:
        img.save(folder / "comfy_stripped.png")  # the same pixels, no text chunks
    (folder / "signed.jpg").write_bytes(signed_jpeg(folder)[0])
    pytest.importorskip("imwatermark")
    watermarked(textured()).save(folder / "watermarked.png")
    (folder / "camera.jpg").write_bytes(camera_jpeg())
    # hostile metadata
    (folder / "huge_chunk.png").write_bytes(with_chunks(png_bytes(), text("parameters", "Steps: 1\n" + "x" * 10**7)))
    (folder / "bad_xmp.jpg").write_bytes(camera_jpeg(make="", xmp="<x:xmpmeta><rdf:RDF><broken"))
    (folder / "garbage_jumbf.png").write_bytes(with_chunks(png_bytes(), chunk(b"caBX", b"\x00\x00\x00\x30jumb"
                                                                              + b"\xfe" * 40)))
    (folder / "deep_workflow.png").write_bytes(with_chunks(png_bytes(), text("workflow", "[" * 100_000)))
    (folder / "bad_crc.png").write_bytes(with_chunks(png_bytes(), chunk(b"tEXt", b"parameters\x00Steps: 2", crc=7)))
    return folder


def scan(capsys, folder, ckpt, out, *extra):
    start = time.perf_counter()
    rc = main(["detect", str(folder), "--checkpoint", str(ckpt), "--output", str(out), "--workers", "1", *extra])
    seconds = time.perf_counter() - start
    capsys.readouterr()
    if str(out).endswith(".csv"):
        with open(out, newline="") as fh:
            return rc, {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(fh)}, seconds
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return rc, {r["path"].rsplit("/", 1)[-1]: r for r in records}, seconds


def signals(rec) -> dict[str, dict]:
    return {f["signal"]: f for f in rec["provenance"]}


def test_each_record_names_its_findings_and_verdict(capsys, ckpt, mixed, tmp_path) -> None:
    rc, recs, seconds = scan(capsys, mixed, ckpt, tmp_path / "scan.jsonl", "--watermark")
    assert rc == 1 and len(recs) == 10  # bad_crc.png: Pillow refuses the pixels; every other file is scored

    comfy = recs["comfy.png"]
    assert signals(comfy)["generator-metadata"]["generator"] == "ComfyUI"
    assert comfy["verdict"] == "generated" and comfy["reason"].startswith("provenance: generator-metadata")
    # the pixel detector never sees metadata: same pixels, same score
    assert comfy["score"] == recs["comfy_stripped.png"]["score"]
    assert recs["comfy_stripped.png"]["provenance"] == [] and not recs["comfy_stripped.png"]["reason"].startswith(
        "provenance")

    c2pa = signals(recs["signed.jpg"])["c2pa"]
    assert (c2pa["says"], c2pa["strength"]) == ("generated", "declared") and recs["signed.jpg"]["verdict"] == \
        "generated"
    wm = signals(recs["watermarked.png"])["invisible-watermark"]
    assert (wm["says"], wm["strength"]) == ("generated", "embedded") and recs["watermarked.png"]["verdict"] == \
        "generated"
    camera = recs["camera.jpg"]
    assert signals(camera)["camera-exif"]["says"] == "captured"
    assert camera["verdict"] == ("generated" if camera["label"] == "fake" else "real")  # heuristic: pixels decide
    assert (camera["conflict"] is not None) == (camera["label"] == "fake")

    # hostile metadata: findings with errors, records otherwise ordinary, the scan bounded
    for name in ("huge_chunk.png", "bad_xmp.jpg", "garbage_jumbf.png", "deep_workflow.png"):
        rec = recs[name]
        assert rec["error"] is None and rec["score"] is not None, name
        assert any(f["error"] for f in rec["provenance"]), name
    assert not any(f["error"] is None and f["says"] == "generated" for f in recs["deep_workflow.png"]["provenance"])
    bad = recs["bad_crc.png"]
    assert bad["error"] and "CRC" in " ".join(f["error"] or "" for f in bad["provenance"])
    assert seconds < 60


def test_off_only_and_csv(capsys, ckpt, mixed, tmp_path) -> None:
    _, off, _ = scan(capsys, mixed, ckpt, tmp_path / "off.jsonl", "--provenance", "off")
    assert all(r["provenance"] is None for r in off.values())
    assert off["comfy.png"]["verdict"] == ("generated" if off["comfy.png"]["label"] == "fake" else "real")
    rc, only, _ = scan(capsys, mixed, ckpt, tmp_path / "only.jsonl", "--provenance", "only")
    assert rc == 0 and all(r["score"] is None and r["label"] is None for r in only.values())
    assert only["comfy.png"]["verdict"] == only["signed.jpg"]["verdict"] == "generated"
    assert only["camera.jpg"]["verdict"] == "unknown" and only["watermarked.png"]["verdict"] == "unknown"
    _, rows, _ = scan(capsys, mixed, ckpt, tmp_path / "scan.csv")
    assert rows["signed.jpg"]["provenance"].startswith("c2pa=generated/declared:TestDiffusion")
    assert "C2PA manifest by gendet-test-generator" in rows["signed.jpg"]["provenance_detail"]
    assert rows["signed.jpg"]["verdict"] == "generated"


def test_trust_anchors_make_a_signer_signed_and_bad_options_are_usage_errors(capsys, ckpt, tmp_path) -> None:
    data, ca = signed_jpeg(tmp_path)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "signed.jpg").write_bytes(data)
    (tmp_path / "ca.pem").write_bytes(ca)
    _, recs, _ = scan(capsys, tmp_path / "one", ckpt, tmp_path / "t.jsonl", "--c2pa-trust", str(tmp_path / "ca.pem"))
    assert signals(recs["signed.jpg"])["c2pa"]["strength"] == "signed"
    assert main(["detect", str(tmp_path / "one"), "--checkpoint", str(ckpt), "--c2pa-trust", str(tmp_path)]) == 2
    assert main(["detect", str(tmp_path / "one"), "--checkpoint", str(ckpt), "--watermark", "--provenance",
                 "off"]) == 2
    assert "--watermark" in capsys.readouterr().err


def test_one_file_prints_its_findings(capsys, ckpt, tmp_path) -> None:
    path = tmp_path / "xmp.jpg"
    path.write_bytes(camera_jpeg(make="", xmp=xmp_packet()))
    assert main(["detect", str(path), "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "GENERATED (fake)" in out and "reason: provenance: iptc-digital-source-type" in out
    assert "provenance: iptc-digital-source-type says generated (declared)" in out


def test_copying_a_file_keeps_its_findings(tmp_path) -> None:
    """Provenance travels with the bytes (a copy), and only with them: a re-encode drops it."""
    from gendet.provenance import read_provenance

    src = tmp_path / "a.png"
    src.write_bytes(comfy_file())
    shutil.copy(src, tmp_path / "b.png")
    assert read_provenance((tmp_path / "b.png").read_bytes()) == read_provenance(src.read_bytes())
    buf = io.BytesIO()
    Image.open(src).convert("RGB").save(buf, "JPEG")
    assert [f for f in read_provenance(buf.getvalue()) if f.decisive] == []
