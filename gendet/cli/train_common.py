"""What `gendet train` and its UniGenDet stages share: run-directory checks, --set parsing, the recorded
command line and reading the training data (with its holdout)."""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml

from gendet.cli.main import UsageError
from gendet.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE

LAYOUT_CHOICES = ("auto", "genimage", "binary", "manifest", "fakeclue")
SHARDS_LAYOUT = "shards"  # a folder written by `gendet data shard` (gendet.data.shards), detected by "auto"
AMP_CHOICES = ("auto", "bf16", "fp16", "off")
STATE_PATH = Path("train_state") / "last.pt"
# What marks DIR as holding a run, and what --overwrite removes (stale evals/reports of the
# old model included, so they cannot be mistaken for results of the new one).
RUN_FILES = (WEIGHTS_FILE, CONFIG_FILE, "train_log.jsonl", "train_log.csv", "train_state")
OVERWRITE_EXTRA = ("eval", "report.html", "report.md")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UsageError(f"--set {item!r}: cannot parse the value: {e}") from None
    return out


def command_line(args: argparse.Namespace) -> str:
    """The full command with every option explicit, so it reproduces the run without defaults drifting."""
    skip = {"command", "_run", "overrides", "no_progress", "resume", "overwrite"}
    parts = ["gendet", "train"]
    for key, value in vars(args).items():
        if key in skip or key.startswith("_") or value is None:
            continue
        parts += [f"--{key.replace('_', '-')}", str(value)]
    for item in args.overrides:
        parts += ["--set", item]
    for flag in ("resume", "overwrite", "no_progress"):
        if getattr(args, flag):
            parts.append(f"--{flag.replace('_', '-')}")
    return shlex.join(parts)


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    has_run = any((out / f).exists() for f in RUN_FILES)
    if resume:
        if not (out / STATE_PATH).is_file():
            raise UsageError(f"--resume: no resume state at {out / STATE_PATH}; start a new run instead")
        return
    if has_run and not overwrite:
        raise UsageError(
            f"{out} already holds a training run; pass --resume to continue it (same settings) "
            "or --overwrite to replace it"
        )


def clear_run(out: Path) -> None:
    """--overwrite: remove the old run's files (only once everything else has been checked)."""
    for name in RUN_FILES + OVERWRITE_EXTRA:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def load_training_data(args: argparse.Namespace, data_info: dict[str, Any] | None) -> dict[str, Any]:
    """Read --data, take the train split, hold out --holdout of it (grouped by source photo when known)."""
    from gendet.data.layouts import detect_layout, read_samples, select_split, split_holdout
    from gendet.data.shards import is_shard_dir, read_shard_samples

    data = Path(args.data).expanduser()
    if not data.exists():
        raise UsageError(f"--data {data} does not exist")
    try:
        if args.layout == SHARDS_LAYOUT or (args.layout == "auto" and is_shard_dir(data)):
            layout = SHARDS_LAYOUT  # one index file per data set instead of a directory walk per rank
            all_samples = read_shard_samples(data, args.subset)
        else:
            layout = detect_layout(data) if args.layout == "auto" else args.layout
            all_samples = read_samples(data, layout, args.subset)
        if data_info is not None and "subsets" in data_info:  # keep each photo's crops on one side of the holdout
            from gendet.bench.bench import with_photo_groups

            all_samples = with_photo_groups(all_samples, data_info)
        samples = select_split(all_samples, "train")
        if not samples:
            raise UsageError(f"no training samples (split 'train') in {data}" +
                             (f" subset {args.subset!r}" if args.subset else ""))
        train_samples, val_samples = split_holdout(samples, args.holdout, args.seed)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    if not val_samples:
        print("no held-out validation split (--holdout 0): no early stopping, no fitted threshold; "
              "the last epoch's weights are kept")
    if len({s.label for s in train_samples}) < 2:
        raise UsageError(f"the training data holds only one class ({len(train_samples)} samples): need real and "
                         "generated images")
    return {"root": data, "layout": layout, "all": all_samples, "train": train_samples, "val": val_samples}
