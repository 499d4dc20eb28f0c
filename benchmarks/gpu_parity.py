"""Scores on one device three ways against float32 torch, with their speed: torch under bf16 autocast (what
`gendet detect --device cuda` runs), onnxruntime (`--engine onnx`: the CUDA provider when the installed
onnxruntime has it, which the run reports, else the CPU provider) and float32 torch itself.

On the CPU autocast is off (scan, server and evaluation run float32 there), so its column matches float32
exactly: the CPU run only checks the script. The GPU figures go into README "Deploying with ONNX" from
`bash benchmarks/gpu_check.sh` on a lent GPU machine.

  python benchmarks/gpu_parity.py --device cuda --n 64
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detect_throughput import make_images  # noqa: E402 - the benchmarks' shared JPEG crops

from gendet.data.decode import decode_image  # noqa: E402
from gendet.data.preprocess import ImageTransform  # noqa: E402
from gendet.detect import ScanModel, load_scan_model  # noqa: E402
from gendet.detect.pipeline import score_batch  # noqa: E402


def timed_scores(model: ScanModel, x: torch.Tensor, batch: int, device: torch.device,
                 fp32: bool = False) -> tuple[np.ndarray, float]:
    """P(generated) for every image and images per second (second pass; the first warms up)."""
    def once() -> np.ndarray:
        out = []
        for i in range(0, len(x), batch):
            if fp32:
                with torch.inference_mode():
                    prob = model.detector({"image": x[i:i + batch].to(device)})["prob"]
                out.append(prob.float().cpu().numpy().astype(np.float64))
            else:
                out.append(score_batch(model, x[i:i + batch], device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return np.concatenate(out)

    once()
    start = time.perf_counter()
    scores = once()
    return scores, len(x) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--checkpoint", default=None, help="checkpoint dir or shipped name (default: the shipped model)")
    ap.add_argument("--n", type=int, default=64, help="JPEG crops of the shipped photos")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime column")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_scan_model(args.checkpoint, device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp) / "images", args.n, 256)
        transform = ImageTransform(model.preprocess, train=False)
        rng = np.random.default_rng(0)
        x = torch.stack([transform(decode_image(p), rng) for p in paths])
        print(f"model {model.name} ({model.preprocess.size} px), {args.n} images, batch {args.batch_size}, "
              f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
        ref, ref_rate = timed_scores(model, x, args.batch_size, device, fp32=True)
        rows = [("torch float32", ref, ref_rate)]
        scores, rate = timed_scores(model, x, args.batch_size, device)
        rows.append(("torch bf16 autocast" if device.type == "cuda" else "torch (autocast off on CPU)", scores, rate))
        if not args.no_onnx:
            from gendet.detect.onnx_export import export_onnx
            from gendet.detect.onnx_model import load_onnx_model

            cpu_model = model if device.type == "cpu" else load_scan_model(args.checkpoint, "cpu")  # export on CPU
            onnx_model = load_onnx_model(export_onnx(cpu_model, Path(tmp) / "model.onnx"), device)
            providers = onnx_model.detector._session.get_providers()
            scores, rate = timed_scores(onnx_model, x, args.batch_size, device)
            rows.append((f"onnxruntime {providers[0]}", scores, rate))
    t = model.threshold
    print(f"{'engine':<36} {'img/s':>9} {'max |d score|':>14} {'mean |d score|':>15} {'labels changed':>15}")
    for name, scores, rate in rows:
        d = np.abs(scores - ref)
        flips = int(np.sum((scores >= t) != (ref >= t)))
        print(f"{name:<36} {rate:9.1f} {d.max():14.2e} {d.mean():15.2e} {flips:15d}")


if __name__ == "__main__":
    main()
