"""Hostile uploads: every file of the detect issue's corpus gets exactly its expected status (valid images
are scored, the rest get a 4xx with a reason), plus oversize, wrong content types, limits and malformed
bodies. No client input may produce a 500, and a genuine server bug gives a 500 without killing the server."""

from __future__ import annotations

import base64
import mimetypes
import os

import pytest
from data.hostile_corpus import INVALID, VALID, build_hostile_corpus
from fastapi.testclient import TestClient
from PIL import Image

from gendet.serve.app import create_app
from gendet.serve.limits import Limits
from serve.helpers import encode, image_bytes

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# The corpus names that are file-system conditions, not bytes one could upload.
NOT_UPLOADABLE = {"broken_symlink", "dir_jpg"} | (set() if IS_ROOT else {"unreadable"})
EXPECTED = {
    **{name: 200 for name in VALID},
    "unreadable": 200,  # as root it is an ordinary JPEG
    "zero_bytes": 400,
    "truncated_jpeg": 400,
    "text_as_png": 415,
    "decompression_bomb": 413,
}
REASON = {"zero_bytes": "empty", "truncated_jpeg": "truncated", "text_as_png": "not a recognised image format",
          "decompression_bomb": "too large"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    paths = build_hostile_corpus(tmp_path_factory.mktemp("hostile"))
    uploads = {}
    for name, path in paths.items():
        if name in NOT_UPLOADABLE:
            continue
        with open(os.fsencode(path), "rb") as fh:
            # a client can only send text names; the raw-bytes name case is test_non_utf8_filename_in_multipart
            shown = os.path.basename(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            uploads[name] = (shown, fh.read())
    os.chmod(paths["unreadable"], 0o644)
    return uploads


def test_every_corpus_case_is_decided() -> None:
    assert set(EXPECTED) | NOT_UPLOADABLE == VALID | INVALID  # a new corpus case needs a decision here


@pytest.mark.parametrize("transport", ["multipart", "json"])
def test_corpus_gets_exact_statuses(client, corpus, transport) -> None:
    for name, (filename, data) in corpus.items():
        if transport == "multipart":
            ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"  # as a browser declares it
            res = client.post("/v1/detect", files={"file": (filename, data, ctype)})
        else:
            res = client.post("/v1/detect", json={"images": [base64.b64encode(data).decode()]})
        body = res.json()
        assert res.status_code == EXPECTED[name], (name, body)
        [r] = body["results"]
        if EXPECTED[name] == 200:
            assert r["error"] is None and 0.0 <= r["score"] <= 1.0, name
        else:
            assert r["score"] is None and r["status"] == res.status_code and REASON[name] in r["error"], (name, r)
            assert body["detail"] == r["error"]


def test_good_and_bad_in_one_request(client, corpus) -> None:
    files = [("file", corpus[n]) for n in ("plain_jpeg", "text_as_png", "decompression_bomb", "png16")]
    res = client.post("/v1/detect", files=files)
    assert res.status_code == 200  # something was scored; each result says how it went
    assert [r["status"] for r in res.json()["results"]] == [200, 415, 413, 200]


def test_non_utf8_filename_in_multipart(client, corpus) -> None:
    data = corpus["plain_jpeg"][1]
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bad\xff\xfe.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--XyZ--\r\n")
    res = client.post("/v1/detect", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert res.status_code == 200 and res.json()["results"][0]["score"] is not None


MULTIPART_B = "multipart/form-data; boundary=b"


def chunked_upload(data: bytes, chunk: int = 8192):
    """A well-formed one-file multipart body sent in chunks without Content-Length."""
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="h.png"\r\nContent-Type: image/png\r\n\r\n'
    for i in range(0, len(data), chunk):
        yield data[i:i + chunk]
    yield b"\r\n--b--\r\n"


@pytest.fixture(scope="module")
def small_client(serve_model):
    limits = Limits(max_upload_bytes=50_000, max_pixels=1_000_000, max_images=2, formats=("PNG", "JPEG"))
    with TestClient(create_app(model=serve_model, limits=limits)) as c:
        yield c


def test_size_limits_are_413(small_client) -> None:
    big = os.urandom(60_000)  # over max_upload_bytes, under the raw body cap
    r = small_client.post("/v1/detect", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "50000" in r.json()["detail"]
    huge = os.urandom(200_000)  # over the body cap: refused from Content-Length, before reading
    r = small_client.post("/v1/detect", files={"file": ("huge.png", huge, "image/png")})
    assert r.status_code == 413 and "request body" in r.json()["detail"]
    r = small_client.post("/v1/detect", content=chunked_upload(huge), headers={"content-type": MULTIPART_B})
    assert r.status_code == 413 and "request body exceeds" in r.json()["detail"]  # cut off while streaming
    r = small_client.post("/v1/detect", json={"images": [base64.b64encode(os.urandom(60_000)).decode()]})
    assert r.status_code == 413
    pixels = encode(Image.new("RGB", (1500, 1000), (9, 9, 9)), "PNG")  # small file, 1.5 MP
    r = small_client.post("/v1/detect", files={"file": ("wide.png", pixels, "image/png")})
    assert r.status_code == 413 and "1500x1000 pixels" in r.json()["detail"]
    three = [("file", (f"{i}.png", image_bytes(20, i), "image/png")) for i in range(3)]
    r = small_client.post("/v1/detect", files=three)
    assert r.status_code == 413 and "too many images" in r.json()["detail"]
    r = small_client.post("/v1/detect", json={"images": [base64.b64encode(image_bytes(20, i)).decode()
                                                         for i in range(3)]})
    assert r.status_code == 413 and "too many images" in r.json()["detail"]


def test_formats_and_content_types_are_415(small_client) -> None:
    img = Image.open(__import__("io").BytesIO(image_bytes(24, 1)))
    for fmt in ("WEBP", "GIF", "PPM"):
        r = small_client.post("/v1/detect", files={"file": (f"x.{fmt.lower()}", encode(img, fmt), "image/x")})
        assert r.status_code == 415 and f"format {fmt} is not accepted" in r.json()["detail"], fmt
    r = small_client.post("/v1/detect", files={"file": ("a.png", image_bytes(24, 1), "text/plain")})
    assert r.status_code == 415 and "declared content type 'text/plain'" in r.json()["detail"]
    r = small_client.post("/v1/detect", content=image_bytes(24, 1), headers={"content-type": "image/png"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = small_client.post("/v1/detect", content=b"x")  # no content type at all
    assert r.status_code == 415


@pytest.mark.parametrize("ctype, body", [
    ("multipart/form-data", b"no boundary"),
    ("multipart/form-data; boundary=zz", b"--zz\r\ngarbage without headers end"),
    ("multipart/form-data; boundary=zz", b"--zz--\r\n"),  # no parts
    ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nhi\r\n--zz--"),
    ("application/json", b"{not json"),
    ("application/json", b"[1, 2]"),
    ("application/json", b'{"images": "abc"}'),
    ("application/json", b'{"images": [12]}'),
    ("application/json", b'{"images": ["%%%not base64%%%"]}'),
    ("application/json", b'{"images": [{"name": "x"}]}'),
    ("application/json", b'{"images": []}'),
    ("application/json", b"\xff\xfe\x00"),
])
def test_malformed_bodies_are_400(client, ctype, body) -> None:
    r = client.post("/v1/detect", content=body, headers={"content-type": ctype})
    assert r.status_code == 400, r.json()
    assert r.json()["detail"]


def test_other_client_mistakes_are_4xx(client) -> None:
    assert client.post("/v1/detect?explain=maybe", files={"file": ("a.png", image_bytes(), "image/png")}
                       ).status_code == 422
    assert client.get("/v1/detect").status_code == 405
    assert client.get("/v1/nothing").status_code == 404
    r = client.post("/v1/detect", content=b"{}", headers={"content-type": "application/json",
                                                           "content-length": "abc"})
    assert r.status_code == 400


def test_server_bug_is_500_and_server_survives(serve_ckpt) -> None:
    from gendet.detect import load_scan_model

    broken = load_scan_model(serve_ckpt, "cpu")

    def explode(batch):
        raise RuntimeError("simulated model bug")

    with TestClient(create_app(model=broken), raise_server_exceptions=False) as c:
        broken.detector.forward = explode  # after start-up, whose warm-up forward must succeed
        r = c.post("/v1/detect", files={"file": ("a.png", image_bytes(), "image/png")})
        assert r.status_code == 500 and "simulated" not in r.text  # no internals leaked
        assert c.get("/health").json()["batching"]["failed_batches"] == 1
        r = c.post("/v1/detect", files={"file": ("a.txt", b"text", "text/plain")})
        assert r.status_code == 415  # still answering, still 4xx for client mistakes


def test_streaming_cap_on_a_real_server(serve_model) -> None:
    """Through uvicorn, a chunked upload is cut off at the cap (413), the connection stays usable."""
    import httpx

    from serve.helpers import running_server

    with running_server(create_app(model=serve_model, limits=Limits(max_upload_bytes=50_000))) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            r = c.post("/v1/detect", content=chunked_upload(os.urandom(3_000_000)),
                       headers={"content-type": MULTIPART_B})
            assert r.status_code == 413 and "request body exceeds" in r.json()["detail"]
            assert c.get("/health").status_code == 200
