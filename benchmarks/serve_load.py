"""Load test of `gendet serve`: many concurrent clients on loopback, with and without request batching,
against the model-only bound measured in the same run.

For each server setting (request batching up to --max-batch, then batch size 1), a fresh
`gendet serve` subprocess is started on 127.0.0.1 and --clients concurrent aiohttp client loops
POST one JPEG each (multipart) for --duration seconds after --warmup seconds. Reported per setting:
completed requests, errors (any non-200 or exception), throughput (images/s), latency p50/p95/p99
at that concurrency, and the mean batch the server formed (from /health). Bounds, same run:
  model-only: the forward pass alone on tensors decoded beforehand, at the served batch size and
    at 1, measured in this process while no server runs;
  HTTP: the same clients on GET /health of the batching server (what server + clients cost per
    request with no image work);
  cores: cores / (decode + preprocess core-ms + model core-ms on 1 thread), the limit when the
    image work and the model share the machine's cores (server and clients share them too).
In a closed loop, latency ~ clients / throughput (Little's law).

The clients use aiohttp: with httpx.AsyncClient, 200 pooled connections cost so much client CPU
that even /health topped out near 130 req/s on 2 cores (aiohttp: ~3,700), hiding the server.

  python benchmarks/serve_load.py --duration 30 --clients 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detect_throughput import make_images, pick_checkpoint  # noqa: E402

import gendet  # noqa: E402,F401 - sets OMP_WAIT_POLICY before torch does work
from gendet.data.decode import decode_image  # noqa: E402
from gendet.data.preprocess import ImageTransform  # noqa: E402
from gendet.detect import ScanModel, load_scan_model  # noqa: E402
from gendet.detect.pipeline import score_batch  # noqa: E402


def model_only_bound(model: ScanModel, x: torch.Tensor, batch: int, device: torch.device, seconds: float) -> float:
    """Images/s of the forward pass alone on pre-decoded tensors, batches of `batch`, for ~`seconds`."""
    reps = -(-batch // len(x))
    xb = x.repeat(reps, *[1] * (x.ndim - 1))[:batch]
    score_batch(model, xb, device)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        score_batch(model, xb, device)
        n += batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: Path, port: int, max_batch: int, wait_ms: float, device: str, log: Path,
                 threads: int | None = None, engine: str = "torch", max_requests: int = 256,
                 decode_workers: int | None = None, workers: int = 1) -> subprocess.Popen:
    # admission control answers 503 past --max-requests in the pipeline: allow every client one request
    cmd = [sys.executable, "-m", "gendet", "serve", "--checkpoint", str(ckpt), "--port", str(port), "--device",
           device, "--max-batch", str(max_batch), "--batch-wait-ms", str(wait_ms), "--log-level", "warning",
           "--engine", engine, "--max-requests", str(max_requests), "--max-queue", str(2 * max_requests)]
    if threads:
        cmd += ["--threads", str(threads)]
    if decode_workers:
        cmd += ["--decode-workers", str(decode_workers)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if k != "GENDET_API_KEY"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)  # noqa: SIM115
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def load(url: str, images: list[bytes], clients: int, warmup: float, duration: float, seed: int,
               path: str = "/v1/detect", server_pid: int | None = None) -> dict:
    """Closed loop: each client sends its next request as soon as the last one returns.

    path "/health" sends GETs instead of uploads (the HTTP bound). With `server_pid`, the CPU time
    the server and this client process spent inside the measured window is reported too."""
    records: list[tuple[float, float, int]] = []  # (start, end, status); status 0 = exception
    failures: dict[str, int] = {}
    t_start = time.perf_counter()
    t0, t1 = t_start + warmup, t_start + warmup + duration
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        async def request(data: bytes) -> int:
            if path == "/health":
                async with client.get(path) as r:
                    await r.read()
                    return r.status
            form = aiohttp.FormData()
            form.add_field("file", data, filename="img.jpg", content_type="image/jpeg")
            async with client.post(path, data=form) as r:
                await r.read()
                return r.status

        async def one_client(k: int) -> None:
            order = np.random.default_rng(seed * 10_000 + k).permutation(len(images))
            i = 0
            while time.perf_counter() < t1:
                data = images[order[i % len(order)]]
                i += 1
                s = time.perf_counter()
                try:
                    status = await request(data)
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    status = 0
                    failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
                records.append((s, time.perf_counter(), status))

        async def health_at(t: float) -> dict:  # own connection: the clients hold all of theirs
            await asyncio.sleep(max(0.0, t - time.perf_counter()))
            cpu = {"server_cpu": process_cpu_seconds(server_pid) if server_pid else float("nan"),
                   "client_cpu": time.process_time()}
            async with httpx.AsyncClient(base_url=url, timeout=120) as probe:
                return {**(await probe.get("/health")).json()["batching"], **cpu}

        h0 = asyncio.ensure_future(health_at(t0))
        h1 = asyncio.ensure_future(health_at(t1))
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        b0, b1 = await h0, await h1
    done = [(s, e, st) for s, e, st in records if t0 <= e <= t1]  # completed inside the measured window
    ok = [e - s for s, e, st in done if st == 200]
    lat = np.array(ok) * 1000 if ok else np.array([np.nan])
    batches = b1["batches"] - b0["batches"]
    return {
        "completed": len(done), "errors": sum(st != 200 for _, _, st in done),
        "errors_all": sum(st != 200 for _, _, st in records), "throughput": len(ok) / duration,
        "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)),
        "mean_batch": (b1["images"] - b0["images"]) / batches if batches else float("nan"),
        "server_core_ms": 1000 * (b1["server_cpu"] - b0["server_cpu"]) / max(len(ok), 1),
        "client_core_ms": 1000 * (b1["client_cpu"] - b0["client_cpu"]) / max(len(ok), 1),
        "failures": {**failures, **{f"HTTP {st}": n for st, n in Counter(st for *_, st in records
                                                                         if st not in (0, 200)).items()}},
    }


def image_core_ms(model: ScanModel, images: list[bytes], x: torch.Tensor, batch: int, device: torch.device) -> float:
    """Core-ms per image of decode + preprocess (one thread) plus the forward at 1 thread (the cores bound)."""
    transform = ImageTransform(model.preprocess, train=False)
    t = time.process_time()
    for data in images:
        transform(decode_image(data), np.random.default_rng(0))
    prep = (time.process_time() - t) / len(images)
    runtime = model.detector if hasattr(model.detector, "set_num_threads") else torch  # onnxruntime or torch
    threads = runtime.get_num_threads()
    runtime.set_num_threads(1)
    try:
        fwd = 1.0 / model_only_bound(model, x, batch, device, 2.0)
    finally:
        runtime.set_num_threads(threads)
    return 1000 * (prep + fwd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model, else a stand-in)")
    ap.add_argument("--stand-in-size", type=int, default=64, help="input size of the stand-in model")
    ap.add_argument("--lite0", action="store_true",
                    help="a Lite0 probe at 224 px, untrained head (as detect_throughput.py --lite0)")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds per setting (default 30)")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each measurement")
    ap.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    ap.add_argument("--max-batch", type=int, default=32, help="the batching server's --max-batch")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0, help="the batching server's --batch-wait-ms")
    ap.add_argument("--n-images", type=int, default=64, help="distinct JPEGs the clients cycle through")
    ap.add_argument("--image-size-on-disk", type=int, default=256, help="shorter side of the JPEGs")
    ap.add_argument("--bound-seconds", type=float, default=5.0, help="seconds per model-only bound")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--server-threads", type=int, default=None, help="gendet serve --threads (default: its own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server-workers", type=int, default=1,
                    help="gendet serve --workers: server processes, each with its own event loop and model")
    ap.add_argument("--decode-workers", type=int, default=None,
                    help="gendet serve --decode-workers (default: its own, the CPU cores)")
    ap.add_argument("--engine", default="torch", choices=("torch", "onnx"),
                    help="the server's --engine; onnx: the model exported first, the bounds measured on onnxruntime")
    args = ap.parse_args()
    device = torch.device(args.device)
    print("command: python " + shlex.join(sys.argv))
    with tempfile.TemporaryDirectory(prefix="gendet_serve_load_") as tmp_s:
        tmp = Path(tmp_s)
        ckpt, origin = pick_checkpoint(args, tmp)
        model = load_scan_model(ckpt, device)
        if args.engine == "onnx":
            from gendet.detect.onnx_export import export_onnx
            from gendet.detect.onnx_model import load_onnx_model

            ckpt = export_onnx(model, tmp / "model.onnx")
            model = load_onnx_model(ckpt, device)
            origin += ", exported to ONNX (--engine onnx)"
        paths = make_images(tmp / "images", args.n_images, args.image_size_on_disk, seed=args.seed)
        images = [p.read_bytes() for p in paths]
        transform = ImageTransform(model.preprocess, train=False)
        x = torch.stack([transform(decode_image(p), np.random.default_rng(0)) for p in paths])
        print(f"model: {model.name} from {ckpt} ({origin}); input {model.preprocess.size} px; device {device}")
        print(f"images: {len(images)} JPEGs {args.image_size_on_disk * 4 // 3}x{args.image_size_on_disk} "
              f"(mean {np.mean([len(b) for b in images]) / 1024:.0f} KiB); clients {args.clients}; "
              f"warm-up {args.warmup:g} s + {args.duration:g} s measured per setting; seed {args.seed}")
        print(f"server: --workers {args.server_workers}, --threads {args.server_threads or 'default'}, "
              f"--decode-workers {args.decode_workers or 'default'}")
        print(f"machine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, load average "
              f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} at start; server and clients on the same machine")
        settings = [("batching", args.max_batch, args.batch_wait_ms), ("batch size 1", 1, 0.0)]
        sizes = (args.max_batch, 1)
        # The bound before and after the served runs, best of each: on a shared machine the load changes.
        bounds = {b: [model_only_bound(model, x, b, device, args.bound_seconds)] for b in sizes}
        results, http_bound = {}, None
        for name, max_batch, wait in settings:
            port = free_port()
            proc = start_server(ckpt, port, max_batch, wait, args.device, tmp / f"server_{max_batch}.log",
                                args.server_threads, args.engine, max(256, args.clients + 8), args.decode_workers,
                                args.server_workers)
            try:
                url = f"http://127.0.0.1:{port}"
                results[name] = asyncio.run(load(url, images, args.clients, args.warmup, args.duration, args.seed,
                                                 server_pid=proc.pid))
                if http_bound is None:
                    http_bound = asyncio.run(load(url, images, args.clients, 1.0, min(10.0, args.duration),
                                                  args.seed, path="/health"))["throughput"]
            finally:
                stop_server(proc)
        for b in sizes:
            bounds[b].append(model_only_bound(model, x, b, device, args.bound_seconds))
        bound = {b: max(v) for b, v in bounds.items()}
        core_ms = image_core_ms(model, images, x, args.max_batch, device) if device.type == "cpu" else None
    print(f"load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"\n{'setting':<14} {'max_batch':>9} {'done':>6} {'errors':>6} {'img/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'mean batch':>10}")
    for (name, max_batch, _), r in zip(settings, results.values(), strict=True):
        print(f"{name:<14} {max_batch:>9} {r['completed']:>6} {r['errors']:>6} {r['throughput']:>7.1f} "
              f"{r['p50']:>8.0f} {r['p95']:>8.0f} {r['p99']:>8.0f} {r['mean_batch']:>10.1f}")
    runs = "; ".join(f"batch {b}: " + ", ".join(f"{v:.1f}" for v in bounds[b]) for b in sizes)
    print(f"model-only bound (forward on pre-decoded tensors, best of before/after: {runs}): "
          f"batch {args.max_batch}: {bound[args.max_batch]:.1f} img/s; batch 1: {bound[1]:.1f} img/s")
    batched, single = results["batching"], results["batch size 1"]
    print(f"served / bound: batching {batched['throughput'] / bound[args.max_batch]:.2f} (goal >= 0.8), "
          f"batch size 1 {single['throughput'] / bound[1]:.2f}")
    cores = os.cpu_count() or 1
    for name, r in results.items():
        if args.server_workers > 1:  # the counted pid is uvicorn's supervisor, not the serving processes
            print(f"CPU per image served ({name}): not measured with --server-workers > 1")
            continue
        most = cores * 1000 / (r["server_core_ms"] + r["client_core_ms"])
        print(f"CPU per image served ({name}): server {r['server_core_ms']:.2f} core-ms, clients "
              f"{r['client_core_ms']:.2f} core-ms -> at most {most:.0f} img/s on {cores} cores")
    print(f"HTTP bound (the same clients on GET /health): {http_bound:.1f} req/s")
    if core_ms is not None:
        core_bound = cores * 1000 / core_ms
        print(f"cores bound: {core_bound:.1f} img/s ({core_ms:.2f} core-ms/img of decode + preprocess + model on "
              f"{cores} cores, before any HTTP or client work); batching / cores bound "
              f"{batched['throughput'] / core_bound:.2f}")
    print(f"batching / batch size 1 throughput: {batched['throughput'] / max(single['throughput'], 1e-9):.2f}x; "
          f"p99 at {args.clients} clients: {batched['p99']:.0f} ms vs {single['p99']:.0f} ms")
    total_errors = sum(r["errors_all"] for r in results.values())
    kinds = {name: r["failures"] for name, r in results.items() if r["failures"]}
    print(f"errors (incl. warm-up): {total_errors} (goal 0){f'; {kinds}' if kinds else ''}")


if __name__ == "__main__":
    main()
