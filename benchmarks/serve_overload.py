"""Overload test of `gendet serve`: explanations of large images, slow clients, and memory over time.

    python benchmarks/serve_overload.py [--clients 8] [--images 16] [--mpx 36] [--duration 60] [--seed 0]

Starts `gendet serve` (the shipped model, defaults otherwise) on 127.0.0.1 and samples the memory of the
server and its decoder processes (sum of PSS, so pages shared after fork count once) every 0.5 s:
  1. idle, 5 s (after a warm-up: one request of --images images, one explained image, 5 s of rest);
  2. --clients closed-loop clients, each POSTing --images JPEGs of --mpx megapixels with ?explain=true, for
     --duration s (the red-team attack: 8 x 16 x 36 Mpx);
  3. idle again, 30 s;
  4. --slow connections that send their headers a byte at a time, held while one normal client sends small
     images for 10 s.
Reports per phase: statuses (200 / 503 / other), latency p50/p99 of the answered requests, PSS at idle,
its peak under load and 30 s after, and the normal client's latency beside the slow connections.
Goals (issue 17): PSS <= 3 GB under load, 503s instead of unbounded latency, back within 10 % of idle 30 s
after; 0 HTTP 500; normal requests <= 2 s beside slow clients. Writes the numbers as JSON to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from proc_tree import descendants  # noqa: E402


def pss_bytes(pid: int, per_process: dict | None = None) -> int:
    """PSS of `pid` and all its descendants (from /proc/*/smaps_rollup); `per_process` gets {pid: MB}."""
    total = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    if per_process is not None:
                        per_process[p] = int(line.split()[1]) // 1024
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), pss_bytes(self.pid)))
            time.sleep(0.5)

    def between(self, t0: float, t1: float) -> list[int]:
        return [v for t, v in self.samples if t0 <= t <= t1]


def big_jpeg(mpx: float, seed: int) -> bytes:
    """A smooth photo-like JPEG of `mpx` megapixels (small on disk: 16 of them fit the 20 MB upload cap)."""
    w = int((mpx * 1e6 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    base = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(base).resize((w, h), Image.BICUBIC).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def explain_load(url: str, body: list[bytes], clients: int, duration: float) -> dict:
    statuses: Counter = Counter()
    latencies: list[float] = []
    end = time.monotonic() + duration
    async with httpx.AsyncClient(timeout=120) as c:
        async def client() -> None:
            while time.monotonic() < end:
                files = [("file", (f"{i}.jpg", b, "image/jpeg")) for i, b in enumerate(body)]
                t = time.monotonic()
                try:
                    r = await c.post(url + "/v1/detect?explain=true", files=files)
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        latencies.append(time.monotonic() - t)
                    elif r.status_code == 503:
                        await asyncio.sleep(float(r.headers.get("retry-after", 1)))
                except httpx.HTTPError as e:
                    statuses[type(e).__name__] += 1
        await asyncio.gather(*(client() for _ in range(clients)))
    return {"statuses": dict(statuses), **_pcts(latencies)}


def _pcts(lat: list[float]) -> dict:
    if not lat:
        return {"answered": 0}
    return {"answered": len(lat), "p50_s": round(float(np.percentile(lat, 50)), 2),
            "p99_s": round(float(np.percentile(lat, 99)), 2), "max_s": round(max(lat), 2)}


def slow_clients(port: int, n: int, seconds: float, small: bytes, url: str) -> dict:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    lat, statuses = [], Counter()
    end = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as c:
        while time.monotonic() < end:
            for s in socks:  # keep dribbling header bytes, as a slowloris client does
                try:
                    s.send(b"X")
                except OSError:
                    pass
            t = time.monotonic()
            r = c.post("/v1/detect", files={"file": ("s.jpg", small, "image/jpeg")})
            statuses[r.status_code] += 1
            lat.append(time.monotonic() - t)
    for s in socks:
        s.close()
    return {"slow_connections": n, "normal_statuses": dict(statuses), **_pcts(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--mpx", type=float, default=36.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--slow", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/serve_overload")
    ap.add_argument("--server-args", default="", help="extra `gendet serve` arguments")
    args = ap.parse_args()

    body = [big_jpeg(args.mpx, args.seed + i) for i in range(args.images)]
    small = big_jpeg(0.1, args.seed)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "gendet", "serve", "--port", str(port), "--log-level", "warning",
           *args.server_args.split()]
    server = subprocess.Popen(cmd, cwd=ROOT)
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        # warm-up, so "idle" is a warmed-up server: one full request (every decoder process decodes large images,
        # the model sees a full batch) and one explanation (lazy imports, the real-photo reference statistics)
        httpx.post(url + "/v1/detect", files=[("file", (f"{i}.jpg", b, "image/jpeg")) for i, b in enumerate(body)],
                   timeout=300)
        httpx.post(url + "/v1/detect?explain=true", files={"file": ("w.jpg", body[0], "image/jpeg")}, timeout=300)
        sampler = Sampler(server.pid)
        sampler.start()
        time.sleep(5)
        time.sleep(5)
        t1 = time.monotonic()
        idle_by_pid: dict = {}
        pss_bytes(server.pid, idle_by_pid)
        load = asyncio.run(explain_load(url, body, args.clients, args.duration))
        t2 = time.monotonic()
        time.sleep(30)
        after_by_pid: dict = {}
        pss_bytes(server.pid, after_by_pid)
        slow = slow_clients(port, args.slow, 10.0, small, url)
        health = httpx.get(url + "/health", timeout=10).json()
        sampler.stop.set()
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=60)
    idle = sum(idle_by_pid.values()) * 2**20  # the same instant and method for both
    peak = max(sampler.between(t1, t2))
    after = sum(after_by_pid.values()) * 2**20
    result = {
        "setup": {"clients": args.clients, "images_per_request": args.images, "mpx": args.mpx,
                  "request_mb": round(sum(map(len, body)) / 2**20, 1), "duration_s": args.duration,
                  "server": " ".join(cmd[2:])},
        "explain_load": load,
        "pss_mb": {"idle": round(idle / 2**20), "peak_under_load": round(peak / 2**20),
                   "30s_after": round(after / 2**20), "after_vs_idle": round(after / idle, 3),
                   "idle_by_process": idle_by_pid, "30s_after_by_process": after_by_pid},
        "beside_slow_clients": slow,
        "server_pipeline": health.get("pipeline"),
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_overload.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
