"""`gendet data`: data-set utilities. `gendet data shard` packs any supported layout into tar shards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gendet.cli.main import UsageError, command_line

SHARD_LAYOUTS = ("auto", "genimage", "binary", "manifest", "fakeclue")


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="data-set utilities (shard: pack a data set into tar shards)",
                       description="Data-set utilities.")
    tools = p.add_subparsers(dest="data_command", metavar="TOOL")
    s = tools.add_parser(
        "shard", help="pack a data set into WebDataset tar shards for large-scale / multi-node training",
        description="Pack every sample of --data (any layout gendet reads) into shard-NNNNNN.tar files of "
        "--shard-size samples, with index.jsonl (byte offsets) and shards.json (summary). Original file bytes "
        "are stored unchanged. Train on the result with `gendet train --data OUT` (layout detected).",
    )
    s.add_argument("--data", required=True, help="data root (GenImage, 0_real/1_fake, manifest or FakeClue)")
    s.add_argument("--layout", default="auto", choices=SHARD_LAYOUTS)
    s.add_argument("--subset", default=None, help="only this subset (generator)")
    s.add_argument("--split", default=None, choices=("train", "val", "test"), help="only this split")
    s.add_argument("--out", required=True, help="output folder for the shards")
    s.add_argument("--shard-size", type=int, default=5000, help="samples per shard (default 5000)")
    s.add_argument("--seed", type=int, default=0, help="seed of the shuffle that mixes classes across shards")
    s.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    return p


def run(args: argparse.Namespace) -> int:
    if args.data_command != "shard":
        raise UsageError("choose a tool: gendet data shard --data ROOT --out DIR")
    return _shard(args)


def _shard(args: argparse.Namespace) -> int:
    from gendet.data.layouts import detect_layout, read_samples
    from gendet.data.shards import INDEX_FILE, SHARD_PATTERN, SUMMARY_FILE, write_shards

    if args.shard_size < 1:
        raise UsageError(f"--shard-size must be >= 1, got {args.shard_size}")
    data, out = Path(args.data).expanduser(), Path(args.out).expanduser()
    if not data.exists():
        raise UsageError(f"--data {data} does not exist")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    old = list(out.iterdir()) if out.is_dir() else []
    if old and not args.overwrite:
        raise UsageError(f"--out {out} is not empty; pass --overwrite to replace its shards")
    try:
        layout = detect_layout(data) if args.layout == "auto" else args.layout
        samples = read_samples(data, layout, args.subset, args.split)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    if old:  # --overwrite removes only gendet's own files: a wrong --out must not wipe someone's folder
        ours = {*out.glob(SHARD_PATTERN.replace("%06d", "*")), out / INDEX_FILE, out / SUMMARY_FILE,
                out / f".{INDEX_FILE}.tmp"}  # the last one: left by a killed run
        foreign = [p for p in old if p not in ours]
        if foreign:
            raise UsageError(f"--out {out} holds files that are not shards (e.g. {foreign[0].name}); "
                             "choose an empty folder")
        for p in old:
            p.unlink()
    source = {"root": str(data.resolve()), "layout": layout, "subset": args.subset, "split": args.split,
              "command": command_line(args)}
    summary = write_shards(samples, out, args.shard_size, args.seed, source)
    print(f"{summary['n_samples']} samples from {data} (layout {layout}) in {summary['n_shards']} shards "
          f"under {out}; index {out / INDEX_FILE}")
    for path, reason in summary["errors"][:5]:
        print(f"  left out {path}: {reason}", file=sys.stderr)
    if summary["errors"]:
        print(f"{len(summary['errors'])} unreadable files left out (listed in {out / SUMMARY_FILE})", file=sys.stderr)
    return 0

