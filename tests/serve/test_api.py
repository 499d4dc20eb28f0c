"""POST /v1/detect on good images (multipart, JSON base64, several at once), explanations, /health, /v1/model,
the page and OpenAPI docs; the served score equals `gendet detect`'s for the same file."""

from __future__ import annotations

import base64
import io
import json
import math

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gendet.detect import Input, iter_record_batches, load_scan_model
from gendet.detect.model import weights_digest
from gendet.serve.app import create_app
from serve.helpers import image_bytes

FIELDS = {"name", "score", "label", "threshold", "model", "error", "status"}


def _check_scored(r: dict, threshold: float = 0.65) -> None:
    assert set(r) >= FIELDS and r["error"] is None and r["status"] == 200
    assert 0.0 <= r["score"] <= 1.0 and math.isfinite(r["score"])
    assert r["label"] == ("fake" if r["score"] >= threshold else "real")
    assert r["threshold"] == threshold and r["model"] == "tiny_cnn"


def test_one_png_multipart(client) -> None:
    res = client.post("/v1/detect", files={"file": ("a.png", image_bytes(40, 1), "image/png")})
    assert res.status_code == 200
    [r] = res.json()["results"]
    _check_scored(r)
    assert r["name"] == "a.png" and "explanation" not in r


def test_several_images_and_json_base64_agree(client) -> None:
    datas = [image_bytes(40, s, fmt) for s, fmt in ((1, "PNG"), (2, "JPEG"), (3, "WEBP"))]
    files = [("file", (f"img{i}", d, "application/octet-stream")) for i, d in enumerate(datas)]
    multi = client.post("/v1/detect", files=files).json()["results"]
    b64 = [base64.b64encode(d).decode() for d in datas]
    body = {"images": [b64[0], {"data": b64[1], "name": "second.jpg"}, "data:image/webp;base64," + b64[2]]}
    js = client.post("/v1/detect", json=body).json()["results"]
    assert [r["name"] for r in multi] == ["img0", "img1", "img2"]
    assert [r["name"] for r in js] == ["image-1", "second.jpg", "image-3"]
    for a, b in zip(multi, js, strict=True):
        _check_scored(a)
        _check_scored(b)
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)
    assert len({round(r["score"], 6) for r in multi}) == 3  # different images, different scores
    single = client.post("/v1/detect", json={"image": b64[0]}).json()["results"]
    assert single[0]["score"] == pytest.approx(multi[0]["score"], abs=1e-6)


def test_score_matches_gendet_detect(client, serve_model, tmp_path) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(image_bytes(57, 9, "JPEG"))
    [[rec]] = list(iter_record_batches([Input(str(path))], serve_model, batch_size=1, workers=0))
    res = client.post("/v1/detect", files={"file": ("x.jpg", path.read_bytes(), "image/jpeg")}).json()["results"][0]
    assert res["score"] == pytest.approx(rec.score, abs=1e-5) and res["label"] == rec.label


def test_explain_adds_heatmap_and_evidence(client) -> None:
    res = client.post("/v1/detect?explain=true", files={"file": ("e.png", image_bytes(48, 4), "image/png")})
    assert res.status_code == 200
    r = res.json()["results"][0]
    _check_scored(r)
    ex = r["explanation"]
    assert ex["text"].startswith("Scored ") and ("generated" in ex["text"] or "real" in ex["text"])
    assert ex["relevance_source"] == "gradient" and ex["input_size"] == [32, 32]
    assert ex["score"] == pytest.approx(r["score"], abs=1e-5)
    heat = Image.open(io.BytesIO(base64.b64decode(ex["heatmap_png"])))
    seen = Image.open(io.BytesIO(base64.b64decode(ex["input_png"])))
    assert heat.format == "PNG" and heat.mode == "RGBA" and heat.size == (32, 32)
    assert seen.mode == "RGB" and seen.size == (32, 32)
    alpha = heat.getchannel("A")
    assert alpha.getextrema()[1] > 100  # the most relevant pixels are visible, ...
    assert alpha.getextrema()[0] < alpha.getextrema()[1]  # ... and opacity follows relevance
    assert 1 <= len(ex["top_regions"]) <= 3 and all(len(t["box"]) == 4 for t in ex["top_regions"])


def test_health_model_card_page_docs(client, serve_model) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model"] == "tiny_cnn" and h["device"] == "cpu"
    assert set(h["batching"]) >= {"batches", "images", "mean_batch", "max_batch_seen"}
    card = client.get("/v1/model").json()
    assert card["threshold"] == 0.65 and card["threshold_source"] == "val" and card["model"] == "tiny_cnn"
    assert card["version"] == weights_digest(serve_model.checkpoint) and card["version"].startswith("sha256:")
    assert card["metrics"] is None and "no evaluation metrics" in card["notes"][0]  # no card.json here
    assert card["server_limits"]["max_upload_bytes"] == 20 * 1024 * 1024 and card["max_batch"] == 32
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and 'id="verdict"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: everything is served here
    for asset in ("/static/app.js", "/static/style.css"):
        got = client.get(asset)
        assert got.status_code == 200 and "https://" not in got.text
    spec = client.get("/openapi.json").json()
    assert {"/v1/detect", "/v1/model", "/health"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_model_card_comes_from_card_json(serve_ckpt, tmp_path) -> None:
    ckpt = tmp_path / "with_card"
    ckpt.mkdir()
    for f in serve_ckpt.iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    card = {"name": "my-detector", "training_data": {"description": "my data"}, "limits": ["64 px only"],
            "evaluation": {"split": "val", "metrics": {"none": {"auc": 0.9}}}, "gendet_version": "9.9"}
    (ckpt / "card.json").write_text(json.dumps(card))
    with TestClient(create_app(model=load_scan_model(ckpt, "cpu"))) as c:
        got = c.get("/v1/model").json()
    assert got["name"] == "my-detector" and got["training_data"] == {"description": "my data"}
    assert got["metrics"]["metrics"]["none"]["auc"] == 0.9 and got["limits"] == ["64 px only"]
    assert got["gendet_version"] == "9.9" and got["notes"] == [] and got["threshold"] == 0.65
