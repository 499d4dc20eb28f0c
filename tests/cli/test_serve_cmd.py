"""`gendet serve`: argument checks (loopback-only without a key), what it hands to uvicorn, the worker-process
factory, and one real start as a subprocess (health, page, a scored upload, clean Ctrl-C)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
import torch
from detect.helpers import make_checkpoint, noise_image
from fastapi.testclient import TestClient

from gendet.cli import serve_cmd
from gendet.cli.main import main
from gendet.serve.app import API_KEY_ENV, SETTINGS_ENV, app_from_env


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """`gendet serve` sets the model's threads in-process; later tests must not inherit that."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", threshold=0.65, source="val")


@pytest.fixture
def uvicorn_calls(monkeypatch):
    """Capture uvicorn.run instead of binding a port."""
    import uvicorn

    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    return calls


def _png() -> bytes:
    import io

    buf = io.BytesIO()
    noise_image(40, 3).save(buf, format="PNG")
    return buf.getvalue()


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"):
        assert serve_cmd.is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert not serve_cmd.is_loopback(host), host


def test_public_bind_without_key_is_refused(capsys, ckpt, uvicorn_calls) -> None:
    rc = main(["serve", "--host", "0.0.0.0", "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err
    assert rc == 2 and "without an API key" in err and "GENDET_API_KEY" in err and "--insecure" in err
    assert uvicorn_calls == []


def test_loopback_default_serves_the_loaded_model(capsys, ckpt, uvicorn_calls) -> None:
    assert main(["serve", "--checkpoint", str(ckpt), "--port", "8123", "--device", "cpu", "--max-batch", "8"]) == 0
    [(args, kw)] = uvicorn_calls
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123 and "workers" not in kw
    with TestClient(args[0]) as c:
        r = c.post("/v1/detect", files={"file": ("a.png", _png(), "image/png")})
        assert r.status_code == 200 and r.json()["results"][0]["threshold"] == 0.65
        assert c.get("/v1/model").json()["max_batch"] == 8
    assert "http://localhost:8123/" in capsys.readouterr().err


def test_key_from_env_or_flag_allows_public_bind(monkeypatch, ckpt, uvicorn_calls) -> None:
    monkeypatch.setenv(API_KEY_ENV, "envkey")
    assert main(["serve", "--host", "0.0.0.0", "--checkpoint", str(ckpt), "--device", "cpu"]) == 0
    monkeypatch.delenv(API_KEY_ENV)
    assert main(["serve", "--host", "0.0.0.0", "--checkpoint", str(ckpt), "--api-key", "flagkey"]) == 0
    assert main(["serve", "--host", "0.0.0.0", "--checkpoint", str(ckpt), "--insecure"]) == 0
    apps = [args[0] for args, _ in uvicorn_calls]
    for app, key in zip(apps, ("envkey", "flagkey", None), strict=True):
        with TestClient(app) as c:
            status = c.get("/v1/model").status_code
            assert status == (401 if key else 200)
            if key:
                assert c.get("/v1/model", headers={"X-API-Key": key}).status_code == 200


def test_workers_use_the_env_factory(monkeypatch, ckpt, uvicorn_calls) -> None:
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    rc = main(["serve", "--checkpoint", str(ckpt), "--workers", "2", "--device", "cpu", "--api-key", "k",
               "--max-images", "3", "--batch-wait-ms", "2", "--threads", "1"])
    assert rc == 0
    [(args, kw)] = uvicorn_calls
    assert args == ("gendet.serve.app:app_from_env",) and kw["factory"] is True and kw["workers"] == 2
    settings = json.loads(os.environ[SETTINGS_ENV])
    assert settings["checkpoint"] == str(ckpt) and settings["limits"]["max_images"] == 3
    assert settings["batch_wait_ms"] == 2 and os.environ[API_KEY_ENV] == "k" and settings["torch_threads"] == 1
    with TestClient(app_from_env()) as c:  # what each worker process builds
        assert c.get("/v1/model", headers={"X-API-Key": "k"}).json()["server_limits"]["max_images"] == 3
    monkeypatch.delenv(SETTINGS_ENV)
    monkeypatch.delenv(API_KEY_ENV)


def test_an_onnx_checkpoint_picks_the_onnx_engine(monkeypatch, capsys, ckpt, uvicorn_calls, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    assert main(["serve", "--checkpoint", str(tmp_path / "m.onnx"), "--device", "cpu", "--workers", "2"]) == 0
    assert json.loads(os.environ[SETTINGS_ENV])["engine"] == "onnx"
    monkeypatch.delenv(SETTINGS_ENV)
    assert main(["serve", "--checkpoint", str(tmp_path / "m.onnx"), "--engine", "torch"]) == 2
    assert "--engine onnx" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "/nonexistent"], "not a directory"),
    (["--max-images", "0"], "max_images must be >= 1"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--max-batch", "0"], "--max-batch must be >= 1"),
    (["--port", "70000"], "--port"),
    (["--formats", ","], "at least one image format"),
])
def test_bad_arguments_exit_2(capsys, uvicorn_calls, ckpt, argv, message) -> None:
    if "--checkpoint" not in argv:
        argv = [*argv, "--checkpoint", str(ckpt)]
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err and uvicorn_calls == []


@pytest.mark.slow
def test_real_start_serves_page_and_api(ckpt) -> None:
    """`python -m gendet serve` as a user starts it: port 0 (the OS picks), then Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if k not in (API_KEY_ENV, SETTINGS_ENV)}
    proc = subprocess.Popen([sys.executable, "-m", "gendet", "serve", "--checkpoint", str(ckpt), "--port", "0",
                             "--device", "cpu"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        url, lines, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url, "".join(lines)
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/health").json()["status"] == "ok"
            assert "<title>gendet" in c.get("/").text
            r = c.post("/v1/detect", files={"file": ("a.png", _png(), "image/png")})
            assert r.status_code == 200 and r.json()["results"][0]["label"] in ("fake", "real")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_bracketed_ipv6_loopback_reaches_uvicorn_unbracketed_with_the_guards(uvicorn_calls, ckpt) -> None:
    from gendet.serve import protocol

    rc = main(["serve", "--checkpoint", str(ckpt), "--host", "[::1]", "--header-timeout", "3",
               "--max-connections", "100", "--max-requests", "7", "--decode-limit", "timeout_s=4"])
    (args, kw), = uvicorn_calls
    assert rc == 0 and kw["host"] == "::1" and kw["http"] == protocol.GuardedHttpToolsProtocol.PATH
    assert protocol.current().header_timeout_s == 3 and protocol.current().max_connections == 100
    protocol.configure(protocol.ConnectionGuards())


@pytest.mark.parametrize("extra", [["--decode-limit", "nope=1"], ["--header-timeout", "0"],
                                   ["--max-requests", "0"], ["--decode-workers", "0"]])
def test_bad_guard_options_are_usage_errors(uvicorn_calls, ckpt, capsys, extra) -> None:
    assert main(["serve", "--checkpoint", str(ckpt), *extra]) == 2 and not uvicorn_calls
