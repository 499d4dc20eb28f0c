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
from pathlib import Path

from gendet.cli.main import UsageError
from gendet.generation.presets import PRESETS
from gendet.generation.registry import (
    create_generator,
    get_generator_class,
    list_generators,
    shipped_generators_dir,
)


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


def _train(args: argparse.Namespace) -> int:
    from gendet.generation.presets import train_generators

    if args.steps_scale <= 0:
        raise UsageError("--steps-scale must be > 0")
    command = "gendet generators train " + " ".join(shlex.quote(a) for a in _argv_of(args))
    try:
        train_generators(args.preset, Path(args.out) if args.out else shipped_generators_dir(),
                         real_dir=args.real_dir, seed=args.seed, only=args.only, steps_scale=args.steps_scale,
                         threads=args.threads, fp32=args.fp32, progress=not args.quiet, command=command)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return 0


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
