"""Kill a 5,000-image scan mid-way with SIGKILL, --resume it, and every path is there exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from detect.helpers import make_many_images, read_jsonl

N = 5000


def _gendet(args, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gendet", "detect", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


def _lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_and_resume(tmp_path, tiny_ckpt) -> None:
    images = tmp_path / "images"
    make_many_images(images, N)
    out = tmp_path / "out.jsonl"
    args = [str(images), "--checkpoint", str(tiny_ckpt), "--output", str(out), "--batch-size", "64"]

    proc = _gendet(args)
    deadline = time.monotonic() + 120
    while _lines(out) < 5 * 64 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the scan finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the scan and its decoding workers, like a crash or an OOM kill
    proc.communicate(timeout=60)
    killed_at = _lines(out)
    assert 5 * 64 <= killed_at < N

    # A kill can land mid-write; make sure the resumed run meets a truncated last line.
    data = out.read_bytes()
    if data.endswith(b"\n"):
        out.write_bytes(data + b'{"path": "' + os.fsencode(str(images)) + b'/img_0')

    proc = _gendet([*args, "--resume"])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert b"dropped a partial last record" in err and f"{killed_at} already done".encode() in err

    records = read_jsonl(out)
    paths = [r["path"] for r in records]
    assert len(paths) == N and len(set(paths)) == N
    assert set(paths) == {str(images / f"img_{i:05d}.png") for i in range(N)}
    assert all(r["error"] is None and 0.0 <= r["score"] <= 1.0 for r in records)
