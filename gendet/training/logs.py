"""train_log.jsonl + train_log.csv, flushed row by row.

On resume the files are cut back to their size at the moment the resume state
was saved, so rows written after that point by the interrupted run (which the
resumed run will write again) are not duplicated.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

JSONL_FILE = "train_log.jsonl"
CSV_FILE = "train_log.csv"
CSV_COLUMNS = (
    "kind", "epoch", "step", "lr", "loss", "val_loss", "val_auc", "val_acc", "val_ap",
    "val_real_acc", "val_fake_acc", "best", "elapsed_s",
)


def jsonable(value: Any) -> Any:
    """numpy scalars/arrays -> Python; NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class TrainLog:
    def __init__(self, out_dir: Path) -> None:
        self.jsonl_path = out_dir / JSONL_FILE
        self.csv_path = out_dir / CSV_FILE

    def start(self, offsets: dict[str, int] | None) -> None:
        """Fresh files (offsets None) or files truncated to `offsets` (resume)."""
        if offsets is None:
            self.jsonl_path.write_text("")
            with open(self.csv_path, "w", newline="") as fh:
                csv.writer(fh).writerow(CSV_COLUMNS)
            return
        for path, key in ((self.jsonl_path, "jsonl"), (self.csv_path, "csv")):
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: cannot resume the log of this run")
            with open(path, "r+b") as fh:
                fh.truncate(offsets[key])

    def offsets(self) -> dict[str, int]:
        return {"jsonl": self.jsonl_path.stat().st_size, "csv": self.csv_path.stat().st_size}

    def write(self, row: dict[str, Any]) -> None:
        row = jsonable(row)
        with open(self.jsonl_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if row.get("kind") in ("train", "val"):
            with open(self.csv_path, "a", newline="") as fh:
                csv.writer(fh).writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])
