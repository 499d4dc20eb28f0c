"""Training throughput with 1 vs 2 DDP processes (gloo on CPU, NCCL with --device cuda): samples/s and the ratio.

Each configuration is a real `torchrun ... -m gendet train` for one epoch on the same images, global
batch and model; throughput = training samples / the trainer's own epoch time (`seconds_per_epoch`
in config.json: data loading + forward/backward + all-reduce + optimizer; no validation, --holdout 0),
so process start-up and imports are excluded (their wall time is printed separately). Configurations
run interleaved, --repeats times, and the best of each is reported (the machine may be shared).

  python benchmarks/ddp_scaling.py --n 256 --image-size 64 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from gendet.data.decode import decode_image
from gendet.data.real_photos import list_photos


def make_data(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """n/2 JPEG crops of the shipped real photos (0_real) and n/2 blurred, re-sampled PNG versions (1_fake)."""
    rng = np.random.default_rng(seed)
    photos = [decode_image(p) for p in list_photos()]
    for cls in ("0_real", "1_fake"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        x = int(rng.integers(0, max(1, photo.width - 2 * size)))
        y = int(rng.integers(0, max(1, photo.height - 2 * size)))
        crop = photo.crop((x, y, x + 2 * size, y + 2 * size)).resize((size, size))
        if i % 2:
            crop.resize((size // 2, size // 2)).resize((size, size), Image.Resampling.NEAREST) \
                .filter(ImageFilter.GaussianBlur(0.8)).save(root / "1_fake" / f"{i:05d}.png")
        else:
            crop.save(root / "0_real" / f"{i:05d}.jpg", quality=90)
    return root


def run_once(nproc: int, threads: int, data: Path, out: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "gendet", "train", "--model", args.model, "--data", str(data), "--out", str(out),
           "--epochs", "1", "--batch-size", str(args.batch_size), "--holdout", "0", "--device", args.device,
           "--seed", str(args.seed), "--no-progress", "--log-every", "1000", "--set", f"image_size={args.image_size}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    cfg = json.loads((out / "config.json").read_text())
    seconds = cfg["seconds_per_epoch"][0]
    return {"nproc": nproc, "threads_per_proc": threads, "n_train": cfg["n_train"], "epoch_s": seconds,
            "samples_per_s": cfg["n_train"] / seconds, "wall_s": wall, "command": " ".join(cmd[1:])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256, help="training images (half real, half fake)")
    p.add_argument("--image-size", type=int, default=64, help="model input size (--set image_size)")
    p.add_argument("--model", default="tiny_cnn")
    p.add_argument("--batch-size", type=int, default=32, help="global batch (split over the processes)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", default="1x1,2x1,1x2",
                   help="PROCSxTHREADS list: 1x1 = 1 process, 1 thread; 2x1 = 2 processes of 1 thread each")
    args = p.parse_args()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    best: dict[tuple[int, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.n, args.image_size * 2, args.seed)
        for r in range(args.repeats):
            for nproc, threads in configs:
                res = run_once(nproc, threads, data, Path(tmp) / f"run_{nproc}x{threads}_{r}", args)
                load = os.getloadavg()[0]  # other work on the machine shows here: read ratios with it
                print(f"repeat {r}: {nproc} proc x {threads} thread(s): {res['samples_per_s']:.1f} samples/s "
                      f"(epoch {res['epoch_s']:.2f} s, wall {res['wall_s']:.1f} s, load average {load:.1f})",
                      flush=True)
                key = (nproc, threads)
                if key not in best or res["samples_per_s"] > best[key]["samples_per_s"]:
                    best[key] = res
    print(f"model {args.model} at {args.image_size} px, {args.n} images, global batch {args.batch_size}, "
          f"device {args.device}, CPU cores {os.cpu_count()}; best of {args.repeats}")
    base = best.get((1, 1)) or next(iter(best.values()))
    for (nproc, threads), res in best.items():
        print(f"  {nproc} process(es) x {threads} thread(s): {res['samples_per_s']:7.1f} samples/s   "
              f"x{res['samples_per_s'] / base['samples_per_s']:.2f} vs {base['nproc']}x{base['threads_per_proc']}")
    print(json.dumps({f"{k[0]}x{k[1]}": v for k, v in best.items()}, indent=1))


if __name__ == "__main__":
    main()
