"""A training run's output folder: what marks it as holding a run, the checks before writing, --overwrite."""

from __future__ import annotations

import shutil
from pathlib import Path

from gendet.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE

STATE_PATH = Path("train_state") / "last.pt"
# What marks a folder as holding a run, and what overwriting removes (stale evals/reports of the
# old model included, so they cannot be mistaken for results of the new one).
RUN_FILES = (WEIGHTS_FILE, CONFIG_FILE, "train_log.jsonl", "train_log.csv", "train_state")
OVERWRITE_EXTRA = ("eval", "report.html", "report.md")


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """ValueError unless `out` can take this run: empty or new; a run to resume; or one to overwrite."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    has_run = any((out / f).exists() for f in RUN_FILES)
    if resume:
        if not (out / STATE_PATH).is_file():
            raise ValueError(f"--resume: no resume state at {out / STATE_PATH}; start a new run instead")
        return
    if has_run and not overwrite:
        raise ValueError(f"{out} already holds a training run; pass --resume to continue it (same settings) "
                         "or --overwrite to replace it")


def clear_run(out: Path) -> None:
    """Remove an old run's files (only once everything else has been checked)."""
    for name in RUN_FILES + OVERWRITE_EXTRA:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
