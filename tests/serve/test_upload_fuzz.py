"""Fuzzing the upload parser (hypothesis, derandomised): any multipart or JSON body, well-formed or not, gets a
200 or a 4xx with a reason — never a 500 — and the server keeps answering."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gendet.serve.app import create_app
from serve.helpers import image_bytes

FUZZ = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PNG = image_bytes(24)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
    | st.just(base64.b64encode(PNG).decode()),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["images", "image", "name", "data", "x"]), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_client(serve_model):
    with TestClient(create_app(model=serve_model), raise_server_exceptions=False) as c:
        yield c


def _ok_or_4xx(r) -> None:
    assert r.status_code == 200 or 400 <= r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300])
    body = r.json()
    if r.status_code != 200:
        assert body["detail"]


@FUZZ
@given(json_values)
def test_any_json_document(fuzz_client, doc) -> None:
    _ok_or_4xx(fuzz_client.post("/v1/detect", content=json.dumps(doc), headers={"content-type": "application/json"}))


@FUZZ
@given(st.binary(max_size=512), st.sampled_from(["application/json", "multipart/form-data; boundary=b",
                                                  "multipart/form-data", "image/png", ""]))
def test_any_bytes_under_any_content_type(fuzz_client, body: bytes, ctype: str) -> None:
    _ok_or_4xx(fuzz_client.post("/v1/detect", content=body, headers={"content-type": ctype} if ctype else {}))


@FUZZ
@given(st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=64) | st.just(PNG),
                          st.sampled_from(["image/png", "text/plain", "application/octet-stream", ""])),
                min_size=1, max_size=4))
def test_any_multipart_parts(fuzz_client, parts) -> None:
    files = [("file", (name or "x", data, ctype or None)) for name, data, ctype in parts]
    _ok_or_4xx(fuzz_client.post("/v1/detect", files=files))
    assert fuzz_client.get("/health").status_code == 200
