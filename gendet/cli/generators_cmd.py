"""`gendet generators`: list the generator families, or train them (seeded) on real photo crops.

    gendet generators train --preset tiny [--real-dir DIR] [--out DIR] [--seed 0]
                            [--only NAME ...] [--steps-scale 1.0] [--threads 2]
    gendet generators list [--json]

Training writes `<out>/<name>.safetensors` + `<out>/<name>.json` (config, training summary,
the exact command, seed) and a sample grid `<out>/<name>_samples.png` per family.
The default `--out` is the package's shipped-weights folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from torchvision.utils import save_image

from gendet.cli.main import UsageError
from gendet.generation.base import Generator
from gendet.generation.presets import PRESETS, get_preset
from gendet.generation.registry import (
    create_generator,
    get_generator_class,
    list_generators,
    load_generator,
    save_generator,
    shipped_generators_dir,
)

GRID_IMAGES = 64


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="list or train gendet's own small image generators")
    gsub = p.add_subparsers(dest="generators_command", metavar="ACTION")
    lp = gsub.add_parser("list", help="list generator families")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    tp = gsub.add_parser("train", help="train generators from scratch on real train-split crops")
    tp.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="steps/batch sizes per family")
    tp.add_argument("--real-dir", default=None, help="your own photos (default: the photos shipped with gendet)")
    tp.add_argument("--out", default=None, help="output folder (default: gendet/assets/generators in the package)")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--only", nargs="+", metavar="NAME", default=None, help="train only these families")
    tp.add_argument("--steps-scale", type=float, default=1.0, help="multiply every family's steps (smoke runs)")
    tp.add_argument("--threads", type=int, default=2,
                    help="torch CPU threads (results are reproducible for a given thread count)")
    tp.add_argument("--fp32", action="store_true", help="store weights as float32 (default float16)")
    tp.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    if args.generators_command == "list":
        return _list(args)
    if args.generators_command == "train":
        return _train(args)
    raise UsageError("choose an action: `gendet generators list` or `gendet generators train --preset tiny`")


def _list(args: argparse.Namespace) -> int:
    rows = []
    for name in list_generators():
        cls = get_generator_class(name)
        rows.append({"name": name, "family": cls.family, "parameters": create_generator(name).num_parameters,
                     "needs_source": cls.needs_source, "description": cls.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['family']:<15}  {r['parameters'] / 1e6:6.2f}M  {r['description']}")
    return 0


def sample_grid(gen: Generator, images: torch.Tensor, path: Path, seed: int) -> float:
    """Save a grid of samples (reconstruction: source/reconstruction pairs); returns images/second."""
    n = min(GRID_IMAGES // 2, images.shape[0]) if gen.needs_source else GRID_IMAGES
    row = 8 if n % 8 == 0 else n
    source = images[:n] if gen.needs_source else None
    start = time.perf_counter()
    out = gen.generate(n, seed=seed, source=source)
    speed = n / max(time.perf_counter() - start, 1e-9)
    if source is not None:  # interleave rows: a row of sources, then their reconstructions
        out = torch.stack([source.view(-1, row, *source.shape[1:]), out.view(-1, row, *out.shape[1:])], 1)
        out = out.reshape(-1, *source.shape[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(out.float() / 255.0, str(path), nrow=row, padding=2)
    return round(speed, 2)


def _train(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    names = list(preset) if not args.only else args.only
    unknown = [n for n in names if n not in preset]
    if unknown:
        raise UsageError(f"--only: {unknown} not in preset {args.preset!r} ({', '.join(preset)})")
    names = [n for n in preset if n in names]  # preset order: adopters come after what they adopt
    if args.steps_scale <= 0:
        raise UsageError("--steps-scale must be > 0")
    out = Path(args.out) if args.out else shipped_generators_dir()
    torch.set_num_threads(args.threads)
    from gendet.data.real_photos import load_real_crops  # heavy (reads photos): only when training

    images = load_real_crops("train", 64, args.real_dir)
    print(f"training {', '.join(names)} on {images.shape[0]} train crops (64 px); output {out}", file=sys.stderr)
    command = "gendet generators train " + " ".join(shlex.quote(a) for a in _argv_of(args))
    trained: dict[str, Generator] = {}
    for name in names:
        spec = preset[name]
        steps = max(1, round(spec["steps"] * args.steps_scale)) if spec["steps"] else 0
        gen = create_generator(name, **spec.get("config", {}))
        origin = spec.get("adopt_autoencoder_from")
        start = time.perf_counter()
        if origin:
            donor = trained.get(origin)
            if donor is None:
                donor_path = out / origin
                if not Path(str(donor_path) + ".json").is_file():
                    raise UsageError(f"{name} adopts {origin}'s autoencoder: train {origin} first "
                                     f"(include it in --only) or have it in {out}")
                donor = load_generator(donor_path)
            gen.adopt_autoencoder(donor.ae, origin)
            gen.training_summary["seed"] = donor.training_summary.get("seed")
        else:
            gen.fit(images, steps, int(spec["batch_size"]), args.seed, progress=not args.quiet)
        train_s = time.perf_counter() - start
        store = torch.float32 if args.fp32 else torch.float16
        _round_to(gen, store)
        speed = sample_grid(gen, images, out / f"{name}_samples.png", args.seed)
        extra = {"command": command, "preset": args.preset, "real_dir": args.real_dir, "threads": args.threads,
                 "n_train_crops": int(images.shape[0]), "train_seconds": round(train_s, 1),
                 "sample_images_per_second": speed, "sample_grid": f"{name}_samples.png"}
        save_generator(gen, out / name, dtype=store, extra=extra)
        trained[name] = gen
        print(f"{name}: {gen.num_parameters / 1e6:.2f}M params, trained in {train_s / 60:.1f} min, "
              f"samples {speed:.1f} img/s -> {out / name}.safetensors", file=sys.stderr, flush=True)
    return 0


@torch.no_grad()
def _round_to(gen: Generator, dtype: torch.dtype) -> None:
    """Round the weights to the storage precision now, so the grid shows exactly what a load gives."""
    for t in gen.state_dict().values():
        if t.is_floating_point():
            t.copy_(t.to(dtype).float())


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The options of this run in canonical form, recorded in each .json."""
    parts = ["--preset", args.preset, "--seed", str(args.seed), "--steps-scale", str(args.steps_scale),
             "--threads", str(args.threads)]
    if args.real_dir:
        parts += ["--real-dir", args.real_dir]
    if args.out:
        parts += ["--out", args.out]
    if args.only:
        parts += ["--only", *args.only]
    if args.fp32:
        parts.append("--fp32")
    return parts
