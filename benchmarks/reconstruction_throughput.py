"""Throughput of HRR/DIRE's reconstruction (retrospection), per scale, four ways, side by side.

For each scale s, on the same n images (64 px crops of gendet's shipped real photos):
  batched   - Retrospection.reconstructions on the whole set, misses run in batches of --batch-size
  per-image - the same, one image per call (what a naive loop pays)
  memory    - the same call again: every reconstruction is an in-memory cache hit
  disk      - a fresh in-memory cache over the disk cache the batched run filled
Each reconstruction runs the flow model `steps` times (Heun: about twice) at its native size, so the
cost per image hardly depends on s; HRR pays it once per scale, DIRE once.

  python benchmarks/reconstruction_throughput.py --n 64 --steps 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

import gendet  # noqa: F401 - sets OMP_WAIT_POLICY before torch loads
from gendet.data.decode import decode_image
from gendet.data.real_photos import list_photos
from gendet.models.hrr.cache import ReconstructionCache
from gendet.models.hrr.retrospection import RECONSTRUCTORS, SAMPLERS, Retrospection, RetrospectionSettings


def crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n random size x size crops of the shipped photos (downscaled first), as [-1, 1] floats."""
    rng = np.random.default_rng(seed)
    photos = [decode_image(p) for p in list_photos()]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(2 * size, 6 * size))
        im = ImageOps.fit(photo, (side, side), Image.Resampling.BICUBIC, centering=tuple(rng.uniform(0, 1, 2)))
        x, y = (int(v) for v in rng.integers(0, side - size + 1, 2))
        out.append(np.asarray(im.crop((x, y, x + size, y + size))))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def measure(x: torch.Tensor, settings: RetrospectionSettings, repeats: int, disk: Path) -> dict[str, float]:
    """Best-of-`repeats` images/s for the four ways."""
    best = {"batched": 0.0, "per-image": 0.0, "memory": 0.0, "disk": 0.0}
    n = x.shape[0]

    def rate(way: str, retro: Retrospection, one_by_one: bool = False) -> None:
        t = time.perf_counter()
        if one_by_one:
            for i in range(n):
                retro.reconstructions(x[i:i + 1])
        else:
            retro.reconstructions(x)
        best[way] = max(best[way], n / (time.perf_counter() - t))

    for r in range(repeats):
        folder = disk / f"{settings.scales}-{r}"
        retro = Retrospection(settings, cache=ReconstructionCache(disk_dir=folder))
        rate("batched", retro)
        rate("memory", retro)
        rate("disk", Retrospection(settings, cache=ReconstructionCache(disk_dir=folder)))
        rate("per-image", Retrospection(settings, cache=ReconstructionCache()), one_by_one=True)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64, help="images per measurement")
    p.add_argument("--size", type=int, default=64, help="input crop side (the tiny benchmark's 64 px)")
    p.add_argument("--scales", default="1,0.5,0.25")
    p.add_argument("--t", type=float, default=0.15)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--sampler", default="euler", choices=SAMPLERS)
    p.add_argument("--reconstructor", default="pixel_flow", choices=RECONSTRUCTORS)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--repeats", type=int, default=1, help="best of this many (use >= 2 on a shared machine)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scales = [float(s) for s in args.scales.split(",")]
    x = crops(args.n, args.size)
    common = {"reconstructor": args.reconstructor, "t": args.t, "steps": args.steps, "sampler": args.sampler,
              "batch_size": args.batch_size}
    print(f"reconstructor {args.reconstructor}, t {args.t}, {args.steps} {args.sampler} steps; {args.n} crops of "
          f"{args.size} px; batch {args.batch_size}; torch threads {torch.get_num_threads()}; best of {args.repeats}")
    head = (f"{'scale':>10} {'batched':>10} {'per-image':>10} {'memory':>10} {'disk':>10}"
            "  batched/per-image  memory/batched")
    print(head + "\n" + "-" * len(head))
    # warm-up: load the reconstructor and let the kernels settle before anything is timed
    Retrospection(RetrospectionSettings(scales=(1.0,), **common), cache=ReconstructionCache()).reconstructions(x[:8])
    with tempfile.TemporaryDirectory() as tmp:
        rows = [(f"{s:g}", RetrospectionSettings(scales=(s,), **common)) for s in scales]
        rows.append(("all", RetrospectionSettings(scales=tuple(scales), **common)))
        for label, settings in rows:
            r = measure(x, settings, args.repeats, Path(tmp))
            print(f"{label:>10} {r['batched']:>10.1f} {r['per-image']:>10.1f} {r['memory']:>10.0f} {r['disk']:>10.0f}"
                  f"  {r['batched'] / r['per-image']:>17.2f}  {r['memory'] / r['batched']:>14.0f}")
    print("images/s; 'all' = every scale of one image (what HRR pays per image; DIRE pays scale 1 only)")


if __name__ == "__main__":
    main()
