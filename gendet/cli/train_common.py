"""What `gendet train` and its UniGenDet stages share: run-directory checks, --set parsing, the recorded
command line and reading the training data (with its holdout)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import yaml

from gendet.cli.main import UsageError
from gendet.training import run_dir
from gendet.training.data import TrainingData

LAYOUT_CHOICES = ("auto", "genimage", "binary", "manifest", "fakeclue")
AMP_CHOICES = ("auto", "bf16", "fp16", "off")


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
    try:
        run_dir.check_out_dir(out, resume, overwrite)
    except ValueError as e:
        raise UsageError(str(e)) from None


def load_training_data(args: argparse.Namespace, data_info: dict[str, Any] | None) -> TrainingData:
    """--data/--layout/--subset/--holdout/--seed read as gendet.training.data does; problems become UsageErrors."""
    from gendet.training.data import load_training_data as load

    try:
        d = load(args.data, args.layout, args.subset, args.holdout, args.seed, data_info)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    if not d.val:
        print("no held-out validation split (--holdout 0): no early stopping, no fitted threshold; "
              "the last epoch's weights are kept")
    return d
