"""Provenance in `gendet serve`: the same findings and verdict as `gendet detect`, or none when turned off."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from provenance.helpers import comfy_prompt, png_bytes, signed_jpeg, text, with_chunks

from gendet.detect import Input, ScanTask, iter_record_batches
from gendet.serve.app import create_app


def test_results_carry_findings_and_the_detect_verdict(client, serve_model, tmp_path) -> None:
    pytest.importorskip("c2pa")
    signed, _ = signed_jpeg(tmp_path)
    comfy = with_chunks(png_bytes(), text("prompt", comfy_prompt("flux1-dev.safetensors")))
    files = [("file", ("signed.jpg", signed, "image/jpeg")), ("file", ("comfy.png", comfy, "image/png"))]
    results = client.post("/v1/detect", files=files).json()["results"]
    assert [r["status"] for r in results] == [200, 200]
    c2pa = {f["signal"]: f for f in results[0]["provenance"]}["c2pa"]
    assert (c2pa["says"], c2pa["strength"]) == ("generated", "declared")
    assert results[1]["provenance"][0]["model"] == "flux1-dev.safetensors"
    for r, name, data in zip(results, ("signed.jpg", "comfy.png"), (signed, comfy), strict=True):
        (tmp_path / name).write_bytes(data)
        [[rec]] = list(iter_record_batches([Input(str(tmp_path / name))], serve_model, batch_size=1, workers=0,
                                           task=ScanTask()))
        assert r["verdict"] == rec.verdict == "generated" and r["reason"] == rec.reason
        assert r["provenance"] == list(rec.provenance)


def test_provenance_off(serve_model) -> None:
    comfy = with_chunks(png_bytes(), text("prompt", comfy_prompt()))
    with TestClient(create_app(model=serve_model, provenance="off")) as c:
        [r] = c.post("/v1/detect", files={"file": ("c.png", comfy, "image/png")}).json()["results"]
    assert r["provenance"] is None and r["verdict"] == ("generated" if r["label"] == "fake" else "real")
    with pytest.raises(ValueError):
        create_app(model=serve_model, provenance="only")
