"""The optional API key: /v1/* needs it (X-API-Key or Bearer), /health and the page do not."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gendet.serve.app import create_app
from serve.helpers import image_bytes


@pytest.fixture(scope="module")
def keyed(serve_model):
    with TestClient(create_app(model=serve_model, api_key="s3cret")) as c:
        yield c


def _detect(c: TestClient, headers: dict | None = None):
    return c.post("/v1/detect", files={"file": ("a.png", image_bytes(), "image/png")}, headers=headers or {})


def test_missing_or_wrong_key_is_401(keyed) -> None:
    for headers in (None, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        r = _detect(keyed, headers)
        assert r.status_code == 401 and "API key" in r.json()["detail"], headers
        assert r.headers["www-authenticate"] == "Bearer"
    assert keyed.get("/v1/model").status_code == 401


def test_right_key_in_either_header(keyed) -> None:
    assert _detect(keyed, {"X-API-Key": "s3cret"}).status_code == 200
    assert _detect(keyed, {"Authorization": "Bearer s3cret"}).status_code == 200
    assert keyed.get("/v1/model", headers={"x-api-key": "s3cret"}).status_code == 200


def test_liveness_and_page_need_no_key(keyed) -> None:
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/").status_code == 200 and keyed.get("/static/app.js").status_code == 200


def test_no_key_configured_means_open(client) -> None:
    assert _detect(client, {"X-API-Key": "anything"}).status_code == 200
