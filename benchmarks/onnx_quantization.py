"""What INT8 dynamic quantization of an exported model changes: score drift and AUC, fp32 vs int8 ONNX vs torch,
on the same images, plus file size and forward speed.

Images: the genuine manifest's val split (both classes); scores are the default model's (or --checkpoint's).
The shipped default model was trained on the train split, so the AUC here is not its held-out figure (that is
the leave-one-group-out number in the README); it is the same images scored three ways, which is what a
quantization check needs.

  python benchmarks/onnx_quantization.py --data ../shared/data/genuine/MANIFEST.csv
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import gendet  # noqa: F401 - sets OMP_WAIT_POLICY before torch loads
from gendet.data.decode import DecodeError
from gendet.data.layouts import read_samples
from gendet.detect import load_scan_model
from gendet.detect.onnx_export import export_onnx
from gendet.detect.onnx_model import load_onnx_model
from gendet.detect.pipeline import score_batch
from gendet.detect.prepare import prepare_input


def scores(model, x: torch.Tensor, batch: int) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    out = np.concatenate([score_batch(model, x[i:i + batch], torch.device("cpu")) for i in range(0, len(x), batch)])
    return out, (time.perf_counter() - t) / len(x) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    model = load_scan_model(args.checkpoint, "cpu")
    samples = read_samples(args.data, split=args.split)
    samples = samples[: args.limit] if args.limit else samples
    xs, labels = [], []
    for s in samples:
        try:
            xs.append(prepare_input(str(s.path), model.preprocess))
            labels.append(int(s.label))
        except DecodeError:
            pass
    x, y = torch.stack(xs), np.array(labels)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx")
        int8 = export_onnx(model, Path(tmp) / "int8.onnx", quantize="int8")
        sizes = {k: p.stat().st_size / 1e6 for k, p in (("fp32", fp32), ("int8", int8))}
        runs = {"torch": scores(model, x, args.batch_size), "onnx fp32": scores(load_onnx_model(fp32), x,
                                                                                 args.batch_size),
                "onnx int8": scores(load_onnx_model(int8), x, args.batch_size)}
    print(f"model {model.name} {model.version}; {len(y)} images of split {args.split!r} ({int(y.sum())} generated); "
          f"torch threads {torch.get_num_threads()}")
    ref = runs["torch"][0]
    for name, (s, ms) in runs.items():
        drift = np.abs(s - ref)
        flips = int(((s >= model.threshold) != (ref >= model.threshold)).sum())
        print(f"{name:<10} AUC {roc_auc_score(y, s):.4f}  |score - torch| max {drift.max():.2e} mean {drift.mean():.2e}"
              f"  labels changed {flips}  {ms:.1f} ms/img")
    print(f"file size: fp32 {sizes['fp32']:.1f} MB, int8 {sizes['int8']:.1f} MB")


if __name__ == "__main__":
    main()
