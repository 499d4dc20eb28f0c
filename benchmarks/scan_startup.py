"""What a scan pays before and while its first records come: a decoder's start, the time to the first batch of
records and the whole scan, for a small folder scanned from a Python script (this file is that script: it imports
torch and gendet, as a user's script does).

  decoder start  - DecodePool(1): submit a trivial task to a fresh decoder, until its answer (the forkserver is
                   already running; its one-time start is printed apart)
  first records  - iter_record_batches() (the scan behind scan() and `gendet detect`, no output file) over --n
                   files, until its first batch of records
  scan           - all of them, in img/s

Each is the median of --repeats. Compare commits by running this file from a checkout of each, one after the other.

  python benchmarks/scan_startup.py --lite0 --engine onnx --n 128 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detect_throughput import lite0_checkpoint, make_images  # noqa: E402 - the benchmarks' shared images, Lite0

from gendet.data.decode_pool import DecodePool  # noqa: E402
from gendet.detect import Input, ScanModel, iter_inputs, iter_record_batches, load_scan_model  # noqa: E402


def decoder_start_ms() -> float:
    start = time.perf_counter()
    with DecodePool(1, timeout_s=30) as pool:
        _, error = pool.outcome(pool.submit(os.getpid))
    if error is not None:
        raise RuntimeError(error.reason)
    return 1000 * (time.perf_counter() - start)


def timed_scan(inputs: list[Input], model: ScanModel, batch_size: int, workers: int) -> tuple[float, float]:
    """(seconds to the first batch of records, seconds for all)."""
    start = time.perf_counter()
    first = None
    for _ in iter_record_batches(inputs, model, batch_size=batch_size, workers=workers, threads="auto"):
        first = first if first is not None else time.perf_counter() - start
    return float(first or 0.0), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="checkpoint dir or shipped name (default: the shipped model)")
    ap.add_argument("--lite0", action="store_true", help="a Lite0 probe at 224 px (untrained head) instead")
    ap.add_argument("--engine", default="torch", choices=("torch", "onnx"))
    ap.add_argument("--n", type=int, default=128, help="files per scan")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = str(lite0_checkpoint(tmp / "lite0")) if args.lite0 else args.checkpoint
        if args.engine == "onnx":
            from gendet.detect.onnx_model import load_onnx_model

            model = load_onnx_model(ckpt)
        else:
            model = load_scan_model(ckpt, "cpu")
        paths = make_images(tmp / "images", args.n, 256)
        inputs = list(iter_inputs([str(tmp / "images")]))
        t = time.perf_counter()
        decoder_start_ms()
        print(f"python {sys.version.split()[0]}; model {model.name} ({args.engine}); {args.n} files, batch "
              f"{args.batch_size}, {args.workers} decoder(s); forkserver start (once per process): "
              f"{time.perf_counter() - t:.1f} s")
        starts = [decoder_start_ms() for _ in range(args.repeats)]
        scans = [timed_scan(inputs, model, args.batch_size, args.workers) for _ in range(args.repeats)]
    first = statistics.median(s[0] for s in scans)
    rates = [len(paths) / s[1] for s in scans]
    print(f"decoder start : {statistics.median(starts):7.1f} ms  (median of {args.repeats}: "
          + ", ".join(f"{v:.0f}" for v in starts) + ")")
    print(f"first records : {1000 * first:7.1f} ms")
    print(f"scan          : {statistics.median(rates):7.1f} img/s  (" + ", ".join(f"{v:.1f}" for v in rates) + ")")


if __name__ == "__main__":
    main()
