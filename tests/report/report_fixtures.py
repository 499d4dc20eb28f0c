"""A synthetic run directory shaped like what `gendet train` + `gendet eval` write (docs/contracts.md).

Scores are drawn so that the classes overlap (some predictions are wrong) and
the metrics in the JSON are computed from those scores with scikit-learn.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

EVIL = "<script>alert('x')</script>"
SUBSETS = ("gen_a", "gen_b", EVIL)
COMMAND = "gendet eval --checkpoint run --data data --json run/eval/clean.json"


def _metrics(y: np.ndarray, s: np.ndarray, thr: float) -> dict:
    pred = (s >= thr).astype(int)
    return {
        "n": int(y.size),
        "acc": float(accuracy_score(y, pred)),
        "real_acc": float(np.mean(pred[y == 0] == 0)),
        "fake_acc": float(np.mean(pred[y == 1] == 1)),
        "ap": float(average_precision_score(y, s)),
        "auc": float(roc_auc_score(y, s)),
        "eer": 0.2,
        "ece": 0.05,
        "tpr_at_fpr_1pct": 0.3,
        "threshold": thr,
        "threshold_source": "val",
    }


def _write_images(data_root: Path, n_per_class: int, rng: np.random.Generator) -> list[tuple[str, int, str]]:
    """Tiny PNGs under a GenImage-like tree; returns (relative path, label, subset)."""
    rows = []
    for sub_i, sub in enumerate(SUBSETS):
        folder = f"sub{sub_i}"  # the evil name is a label, not a folder name
        for label, cls in ((0, "nature"), (1, "ai")):
            d = data_root / folder / "val" / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                arr = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
                arr[..., label] = 255  # red-ish reals, green-ish fakes: easy to eyeball
                rel = f"{folder}/val/{cls}/{i:02d}.png"
                Image.fromarray(arr).save(data_root / rel)
                rows.append((rel, label, sub))
    # one listed file that cannot be decoded
    bad = data_root / "sub0/val/ai/broken.png"
    bad.write_bytes(b"not a png")
    rows.append(("sub0/val/ai/broken.png", 1, SUBSETS[0]))
    return rows


def _write_eval(eval_dir: Path, stem: str, rows: list, scores: np.ndarray, degradation: str | None,
                thr: float, data_root: Path) -> None:
    y = np.array([r[1] for r in rows])
    data = _metrics(y, scores, thr)
    data["subsets"] = {}
    for sub in SUBSETS:
        m = np.array([r[2] == sub for r in rows])
        data["subsets"][sub] = _metrics(y[m], scores[m], thr)
    data.update({
        "degradation": degradation, "align": "jpeg", "data_root": str(data_root), "checkpoint": str(eval_dir.parent),
        "command": COMMAND + (f" --degradation {degradation}" if degradation else ""), "seed": 7,
        "errors": [["sub1/val/ai/gone.png", "file does not exist"]], "predictions_file": f"{stem}.predictions.csv",
    })
    (eval_dir / f"{stem}.json").write_text(json.dumps(data, indent=2))
    with open(eval_dir / f"{stem}.predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "score", "generator", "degradation"])
        for (rel, label, sub), s in zip(rows, scores, strict=True):
            w.writerow([rel, label, f"{s:.6f}", sub, degradation or ""])


def make_run_dir(
    root: Path,
    config: bool = True,
    train_log: bool = True,
    clean_eval: bool = True,
    degraded_eval: bool = True,
    predictions: bool = True,
    seed: int = 0,
) -> Path:
    """Build `root/run` (and `root/data`); parts can be left out to test graceful omission."""
    rng = np.random.default_rng(seed)
    run, data_root = root / "run", root / "data"
    run.mkdir(parents=True, exist_ok=True)
    rows = _write_images(data_root, 5, rng)
    y = np.array([r[1] for r in rows], dtype=float)
    if config:
        (run / "config.json").write_text(json.dumps({
            "model": "tiny_cnn", "model_config": {"width": 8}, "preprocess": {
                "size": 32, "resize": True, "align": "jpeg", "jpeg_quality": 95,
                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
            "align": "jpeg", "data_root": str(data_root), "subset": "gen_a", "layout": "genimage", "seed": 7,
            "epochs": 2, "batch_size": 8, "lr": 1e-3, "threshold": 0.45, "threshold_source": "val",
            "threshold_val": 0.45, "gendet_version": "0.1.0", "git_commit": "abc123",
            "command": "gendet train --model tiny_cnn --data data --subset gen_a --out run --seed 7",
        }, indent=2))
    if train_log:
        with open(run / "train_log.jsonl", "w") as fh:
            for step in range(1, 9):
                row = {"step": step, "epoch": (step - 1) // 4, "loss": 0.7 / step ** 0.5, "lr": 1e-3}
                if step % 4 == 0:
                    row.update({"val_loss": 0.6 / step**0.3, "val_auc": 0.6 + 0.03 * step,
                                "val_acc": 0.5 + 0.03 * step})
                fh.write(json.dumps(row) + "\n")
            fh.write('{"step": 9, "loss": ')  # a run killed mid-write
    if clean_eval or degraded_eval:
        eval_dir = run / "eval"
        eval_dir.mkdir(exist_ok=True)
        clean_scores = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.22, y.size), 0.001, 0.999)
        clean_scores[-1] = 0.9999  # the undecodable file is the most confident right prediction
        if clean_eval:
            _write_eval(eval_dir, "clean", rows, clean_scores, None, 0.45, data_root)
        if degraded_eval:
            for deg, noise in (("jpeg_30", 0.35), ("blur_5", 0.45)):
                s = np.clip(0.35 + 0.3 * y + rng.normal(0, noise, y.size), 0.001, 0.999)
                _write_eval(eval_dir, deg, rows, s, deg, 0.45, data_root)
        if not predictions:
            for p in eval_dir.glob("*.predictions.csv"):
                p.unlink()
    return run
