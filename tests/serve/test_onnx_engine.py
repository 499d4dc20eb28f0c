"""`gendet serve --engine onnx`: the torch server's scores (within 1e-4); explanations say they need torch."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gendet.serve.app import create_app
from serve.helpers import image_bytes

pytest.importorskip("onnxruntime")


def test_onnx_server_scores_like_the_torch_server(client, serve_model, serve_ckpt, tmp_path) -> None:
    from gendet.detect.onnx_export import export_onnx

    path = export_onnx(serve_model, tmp_path / "m.onnx")
    files = [("file", (f"i{k}.png", image_bytes(48, k), "image/png")) for k in range(3)]
    want = client.post("/v1/detect", files=files).json()["results"]
    with TestClient(create_app(str(path), engine="onnx")) as c:
        got = c.post("/v1/detect", files=files).json()["results"]
        explained = c.post("/v1/detect?explain=true", files=files[:1]).json()["results"][0]
        card = c.get("/v1/model").json()
    for a, b in zip(want, got, strict=True):
        assert abs(a["score"] - b["score"]) < 1e-4 and a["label"] == b["label"] and a["model"] == b["model"]
    assert explained["status"] == 200 and "--engine torch" in explained["explanation_error"]
    assert card["version"] == serve_model.version and card["parameters"] > 0
