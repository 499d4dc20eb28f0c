"""`gendet bench`: build a local GenImage, train every baseline on every subset, run both tasks.

Each (detector, training subset) cell is a normal gendet run directory under
`OUT/runs/<detector>/<subset>/` (checkpoint, config, logs, bench_eval.json), so a
bench that was interrupted resumes cell by cell, and any cell can be inspected
with `gendet eval` / `gendet report` on its own.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from gendet.bench.presets import BenchPreset, DetectorSpec
from gendet.data.layouts import list_subsets, read_samples, split_holdout, with_photo_groups
from gendet.data.sample import Sample
from gendet.evaluation.protocol import cross_generator_matrix, degradation_mean, degradation_table, evaluate
from gendet.io import atomic_write_text
from gendet.models import create_detector
from gendet.models.checkpoint import WEIGHTS_FILE, load_checkpoint
from gendet.models.registry import count_parameters
from gendet.training.state import seed_everything
from gendet.training.trainer import TrainConfig, train
from gendet.version import VERSION

CELL_EVAL = "bench_eval.json"


def _cell_key(spec: DetectorSpec, subset: str, seed: int, data_key: str, align: str) -> dict[str, Any]:
    """What a finished cell must match to be reused on a rerun."""
    return {"detector": asdict(spec), "subset": subset, "seed": seed, "data_key": data_key, "align": align,
            "gendet_version": VERSION}


def run_cell(
    spec: DetectorSpec,
    subset: str,
    samples: list,
    cell_dir: Path,
    seed: int,
    data_key: str,
    align: str,
    degradations: tuple[str, ...],
    device: str,
    workers: int,
    weights: str | None,
) -> dict[str, Any]:
    """Train `spec` on `subset`'s train split, evaluate it on every subset's val split (Task 1)
    and on its own subset's val split under each degradation (Task 2). Reuses a finished cell."""
    key = _cell_key(spec, subset, seed, data_key, align)
    done = cell_dir / CELL_EVAL
    if done.is_file():
        prev = json.loads(done.read_text())
        if prev.get("key") == key:
            prev["reused"] = True
            return prev
    t0 = time.monotonic()
    seed_everything(seed)  # initial weights depend on the seed only, not on earlier cells
    detector = create_detector(spec.name, **spec.config)
    if weights:
        detector.load_backbone_weights(weights)
    pp = detector.preprocess(align=align)
    train_pool = [s for s in samples if s.generator == subset and s.split == "train"]
    tr, val = split_holdout(train_pool, 0.1, seed)
    cfg = TrainConfig(**{**spec.train, "seed": seed, "device": device, "workers": workers, "progress": False})
    resume = (cell_dir / "train_state" / "last.pt").is_file() and not (cell_dir / WEIGHTS_FILE).is_file()
    summary = train(detector, tr, val, pp, cfg, cell_dir, resume=resume, extra_config={
        "data_root": "(bench)", "subset": subset, "layout": "genimage", "weights": weights,
        "bench_detector": spec.label,
    })
    detector, ckpt_cfg = load_checkpoint(cell_dir, device)
    threshold, source = float(ckpt_cfg["threshold"]), ckpt_cfg["threshold_source"]
    test = [s for s in samples if s.split == "val"]
    t_train = time.monotonic() - t0
    # Real val images repeat under every subset: each file is scored once, and the clean
    # scores of the cell's own subset are Task 2's "none" row.
    cross, cross_preds = evaluate(detector, test, pp, threshold, source, batch_size=128, workers=workers,
                                  device=device, seed=seed, dedupe_files=True)
    own = [s for s in test if s.generator == subset]
    own_clean = cross_preds.subset(subset)
    degr, _ = degradation_table(detector, own, pp, threshold, source, names=list(degradations), batch_size=128,
                                workers=workers, device=device, seed=seed,
                                clean=own_clean if len(own_clean.samples) == len(own) else None)
    result = {
        "key": key,
        "detector": spec.label,
        "subset": subset,
        "threshold": threshold,
        "threshold_source": source,
        "threshold_val": ckpt_cfg.get("threshold_val"),
        "val_metrics": summary.get("val_metrics"),
        "best_epoch": summary.get("best_epoch"),
        "cross": {g: m for g, m in cross.get("subsets", {}).items()},
        "degradations": degr,
        "errors": cross.get("errors", []),
        "seconds_train": round(t_train, 2),
        "seconds_total": round(time.monotonic() - t0, 2),
        "reused": False,
    }
    atomic_write_text(done, json.dumps(result, indent=2))
    return result


def run_bench(
    preset: BenchPreset,
    data_root: Path,
    data_info: dict[str, Any],
    out: Path,
    seed: int = 0,
    align: str = "jpeg",
    device: str = "cpu",
    workers: int = 0,
    detectors: list[str] | None = None,
    weights: dict[str, str] | None = None,
    command: str = "",
    progress: bool = True,
    extra_samples: list[Sample] | None = None,
) -> dict[str, Any]:
    """Run Task 1 and Task 2 for every detector of `preset` on the data set at `data_root`
    (plus `extra_samples`: more subsets kept elsewhere, e.g. the manipulated one with its masks)."""
    weights = weights or {}
    t0 = time.monotonic()
    samples = with_photo_groups(read_samples(data_root, layout="genimage"), data_info) + list(extra_samples or [])
    subsets = list_subsets(samples)
    specs = [s for s in preset.detectors if (s.name in detectors if detectors else s.in_default_run)]
    skipped = {s.label: "needs local backbone weights (pass --weights NAME=PATH); none given"
               for s in specs if s.needs_weights and s.name not in weights}
    specs = [s for s in specs if s.label not in skipped]
    cells = [(s, g) for s in specs for g in subsets]
    results: dict[str, dict[str, Any]] = {s.label: {} for s in specs}
    bar = tqdm(cells, desc="bench", unit="cell", disable=not progress)
    for spec, subset in bar:
        bar.set_postfix_str(f"{spec.name} on {subset}")
        results[spec.label][subset] = run_cell(
            spec, subset, samples, out / "runs" / spec.name / subset, seed, data_info.get("key", ""), align,
            preset.degradations, device, workers, weights.get(spec.name),
        )
    bar.close()
    matrix = {label: {m: cross_generator_matrix({g: c["cross"] for g, c in cells_.items()}, metric=m)
                      for m in ("acc", "auc", "real_acc", "fake_acc")}
              for label, cells_ in results.items()}
    degradations = {
        label: {g: {"table": c["degradations"], "mean_acc": degradation_mean(c["degradations"], "acc")}
                for g, c in cells_.items()}
        for label, cells_ in results.items()
    }
    summary = {
        "preset": preset.name,
        "description": preset.description,
        "command": command,
        "seed": seed,
        "align": align,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "gendet_version": VERSION,
        "data": data_info,
        "subsets": subsets,
        "detectors": {s.label: {"name": s.name, "config": s.config, "train": s.train,
                                "backbone_weights": weights.get(s.name),
                                "parameters": count_parameters(s.name, **s.config)}
                      for s in specs},
        "skipped_detectors": skipped,
        "matrix": matrix,
        "degradations": degradations,
        "cells": results,
        "timings": {"detectors_seconds": round(time.monotonic() - t0, 1),
                    "cells_reused": sum(c["reused"] for r in results.values() for c in r.values())},
    }
    return summary


def add_manipulated_subset(data_root: Path, data_info: dict[str, Any], progress: bool = True
                           ) -> tuple[list[Sample], dict[str, Any]]:
    """Build (or reuse) GAMMA's manipulated subset next to `data_root` (real crops with one inpainted,
    copy-moved or spliced region, masks kept) and add it to `data_info`; returns its samples."""
    from gendet.bench.manipulated import build_manipulated_subset, manipulated_samples

    root = data_root.with_name(f"{data_root.name}-manipulated")
    manifest = build_manipulated_subset(data_root, root, progress=progress)
    info = {**data_info, "subsets": {**data_info.get("subsets", {}), **manifest["subsets"]},
            # cells evaluated with the extra subset must not be reused for runs without it (and back)
            "key": f"{data_info.get('key', '')}+manipulated:{manifest['key'][:12]}",
            "manipulated": {"root": str(root), "config": manifest["config"],
                            "mask_encoding": manifest.get("mask_encoding")}}
    return manipulated_samples(root), info


def bench_data_root(cache_dir: Path, preset: BenchPreset) -> Path:
    """Where the data set built from the shipped generators and photos is cached (shared by all runs)."""
    return cache_dir / f"bench-{preset.name}-data"


def build_bench_data(
    preset: BenchPreset, root: Path, cache_dir: Path, seed: int = 0, real_dir: Path | None = None,
    weights_dir: Path | None = None, fidelity: bool = True, progress: bool = True,
    extra_generators: list | None = None,
) -> dict[str, Any]:
    """Build (or reuse, keyed by content) the preset's GenImage-layout data set at `root`.

    extra_generators: Generator instances added as more subsets (e.g. a trained UniGenDet)."""
    from gendet.bench.tiny_genimage import build_tiny_genimage

    info = build_tiny_genimage(
        root, [*preset.generators, *(extra_generators or [])], size=preset.image_size,
        n_per_split=preset.n_per_split, seed=seed,
        real_dir=real_dir, weights_dir=weights_dir, fidelity=fidelity, progress=progress,
        fidelity_n=preset.fidelity_samples, cache_dir=cache_dir / "features",
    )
    info["root"] = str(root)
    return info


def describe_user_data(root: Path) -> dict[str, Any]:
    """Counts per subset/split/class of a user's GenImage root, in the builder's manifest shape."""
    samples = read_samples(root, layout="genimage")
    subsets: dict[str, dict[str, Any]] = {}
    for s in samples:
        counts = subsets.setdefault(s.generator, {"family": "user data", "counts": {}})["counts"]
        split = counts.setdefault(s.split, {"ai": 0, "nature": 0})
        split["ai" if s.label == 1 else "nature"] += 1
    return {"root": str(root), "real": {"source": f"user data ({root})"}, "subsets": subsets,
            "fidelity_note": "not computed for user data"}


def write_results(summary: dict[str, Any], out: Path) -> Path:
    path = out / "results.json"
    atomic_write_text(path, json.dumps(summary, indent=2, default=str))
    return path

