"""The server sheds load instead of breaking: 503 + Retry-After when the pipeline is full, 408 for slow
clients, a connection limit that keeps normal requests answered, cancelled work for clients that left,
400 for deeply nested JSON, and the red-team uploads refused with their reasons (never a 500)."""

from __future__ import annotations

import base64
import socket
import threading
import time

import httpx
import pytest
from data.hostile_corpus import (
    many_markers_jpeg_bytes,
    many_scans_jpeg_bytes,
    many_text_chunks_png_bytes,
    wide_png_bytes,
)
from fastapi.testclient import TestClient

from gendet.data.decode import DecodeLimits
from gendet.serve import protocol as guards_mod
from gendet.serve.app import create_app
from gendet.serve.inference import ServedModel
from gendet.serve.limits import Limits
from serve.helpers import image_bytes, running_server


def post_files(client, *blobs: bytes, explain: bool = False):
    files = [("file", (f"f{i}.bin", b, "application/octet-stream")) for i, b in enumerate(blobs)]
    return client.post("/v1/detect" + ("?explain=true" if explain else ""), files=files)


def test_redteam_uploads_get_their_statuses(serve_model) -> None:
    cases = {"wide": (wide_png_bytes(), 422, "aspect ratio"),
             "markers": (many_markers_jpeg_bytes(2000), 422, "max_jpeg_markers"),
             "scans": (many_scans_jpeg_bytes(300), 422, "max_jpeg_scans"),
             "chunks": (many_text_chunks_png_bytes(5000), 422, "max_png_chunks")}
    with TestClient(create_app(model=serve_model)) as c:
        for name, (data, status, reason) in cases.items():
            r = post_files(c, data)
            assert r.status_code == status and reason in r.json()["detail"], (name, r.json())
        assert post_files(c, image_bytes()).status_code == 200


def test_a_decode_past_the_time_budget_is_422_and_the_server_goes_on(serve_model) -> None:
    slow = many_scans_jpeg_bytes(1000, 512)
    limits = Limits(decode=DecodeLimits(max_jpeg_markers=10**9, max_jpeg_scans=10**9, timeout_s=0.05))
    with TestClient(create_app(model=serve_model, limits=limits)) as c:
        r = post_files(c, slow)
        assert r.status_code == 422 and "longer than 0.05 s" in r.json()["detail"]
        assert post_files(c, image_bytes()).status_code == 200


def test_deeply_nested_json_is_400(client) -> None:
    body = '{"images": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = client.post("/v1/detect", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]


def test_a_full_pipeline_answers_503_with_retry_after(serve_model) -> None:
    with TestClient(create_app(model=serve_model, limits=Limits(max_queue=2, max_explain_queue=1))) as c:
        r = post_files(c, image_bytes(seed=1), image_bytes(seed=2), image_bytes(seed=3))
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and "pipeline" in r.json()["detail"]
        r = post_files(c, image_bytes(seed=1), image_bytes(seed=2), explain=True)
        first, second = r.json()["results"]
        assert r.status_code == 200 and "explanation" in first and "explanation" not in second
        assert "explains the first 1 images" in second["explanation_error"] and second["score"] is not None
        assert c.get("/health").json()["pipeline"]["rejected"] == 1


def test_admission_bounds_requests_images_and_explanations() -> None:
    from gendet.serve.admission import Admission
    from gendet.serve.limits import ClientError

    gate = Admission(Limits(max_queue=4, max_requests=1, max_explain_queue=2))
    with gate.request():
        with pytest.raises(ClientError, match="requests in progress") as busy:
            with gate.request():
                pass
        assert busy.value.status == 503 and busy.value.retry_after >= 1
    with gate.work(3, 2):
        with pytest.raises(ClientError, match="explanations waiting"):
            with gate.work(1, 1):
                pass
        with pytest.raises(ClientError, match="images in the pipeline"):
            with gate.work(2):
                pass
        with gate.work(1):
            assert gate.images == 4
    assert (gate.requests, gate.images, gate.explains, gate.rejected) == (0, 0, 0, 3)


def test_a_client_that_leaves_has_its_work_cancelled(serve_model, monkeypatch) -> None:
    release = threading.Event()

    def slow_explain(self, image, score=None):
        release.wait(10)
        return {}

    monkeypatch.setattr(ServedModel, "explain", slow_explain)
    with running_server(create_app(model=serve_model)) as url:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(url + "/v1/detect?explain=true", files={"file": ("a.png", image_bytes())}, timeout=1.0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = httpx.get(url + "/health").json()["pipeline"]
            if health["cancelled"] == 1:
                break
            time.sleep(0.05)
        release.set()
        assert health["cancelled"] == 1 and health["requests"] == 0 and health["images"] == 0


def _raw(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    return s


def test_slow_clients_get_408_and_cannot_lock_others_out(serve_model) -> None:
    guards_mod.configure(guards_mod.ConnectionGuards(header_timeout_s=1.0, body_timeout_s=1.0, max_connections=8))
    try:
        with running_server(create_app(model=serve_model)) as url:
            port = int(url.rsplit(":", 1)[1])
            slow = [_raw(port, b"POST /v1/detect HTTP/1.1\r\nHost: x\r\n") for _ in range(6)]  # headers never end
            body = _raw(port, b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                              b"Content-Type: application/json\r\n\r\n{\"images\"")
            with httpx.Client(base_url=url, timeout=5) as c:
                t = time.monotonic()
                assert c.post("/v1/detect", files={"file": ("a.png", image_bytes())}).status_code == 200
                assert time.monotonic() - t < 2.0
            # more idle connections than the limit: the oldest waiting ones are closed, normal requests still served
            extra = [_raw(port, b"GET /health HTTP/1.1\r\n") for _ in range(10)]
            r = httpx.post(url + "/v1/detect", json={"images": [base64.b64encode(image_bytes()).decode()]},
                           timeout=5)
            assert r.status_code == 200
            time.sleep(1.5)
            for s in [*slow, body]:
                s.settimeout(2)
                got = s.recv(200)
                assert got == b"" or got.startswith(b"HTTP/1.1 408"), got
            for s in slow + [body] + extra:
                s.close()
    finally:
        guards_mod.configure(guards_mod.ConnectionGuards())
