"""`gendet detect --engine ray`: the same scan, run by Ray Data on a local Ray instance or a cluster.

The driver expands the inputs exactly as the local engine does (gendet.detect.inputs), drops
paths already in a resumed output, and hands the rest to Ray Data, one block per batch. Ray
Data runs two stages:

1. decode (tasks, CPU): gendet's ``try_prepare``, i.e. ``decode_image`` + the checkpoint's eval
   transform, so every error reason is the local engine's, word for word;
2. score (an actor pool; each actor loads the model once, and takes a GPU when the cluster
   has them): ``score_batch``, the local engine's batched forward.

Records come back in input order (``preserve_order``) and go through the local engine's
writers (JSONL/CSV, resume), so both engines write the same file.

Why paths, not ``ray.data.read_binary_files``: that reader opens files itself, so a broken
link, an unreadable file or a folder named ``x.jpg`` fails a whole read task instead of
getting its record, and a 0-byte file arrives as empty bytes rather than "empty file (0
bytes)". Reading by path in the decode stage keeps the records identical. Inputs and the
checkpoint must therefore be readable at the same paths on every node (a shared file system).
The driver holds the pending paths (about 100 bytes each) until Ray has them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch
from tqdm.auto import tqdm

from gendet.data.preprocess import Preprocess
from gendet.detect.inputs import Input, InputStats, iter_inputs
from gendet.detect.model import ScanModel, load_scan_model
from gendet.detect.pipeline import BatchBuffers, ScanSummary, ScanTask, score_batch, try_prepare
from gendet.detect.scan import ScanResult
from gendet.detect.writers import Record, format_for, open_writer


@dataclass
class RayOptions:
    """Where and how wide to run. None = decided from the cluster's resources (see `plan`)."""

    address: str | None = None  # None: a local Ray instance; "auto" or "ray://host:10001": a cluster
    actors: int | None = None
    cpus_per_actor: float | None = None
    gpus_per_actor: float | None = None


def connect(address: str | None) -> bool:
    """Join Ray (started here when none is running); True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    return True


def plan(options: RayOptions, device: str) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor).

    Defaults: one actor per GPU when the cluster has GPUs (and --device allows them), else
    CPUs - 1 actors of one CPU each, so at least one CPU is left to the decode tasks (actors
    that claim every CPU starve the decode stage and the scan stalls).
    """
    import ray

    res = ray.cluster_resources()
    gpus = 0.0 if device == "cpu" else float(res.get("GPU", 0.0))
    gpu_each = options.gpus_per_actor if options.gpus_per_actor is not None else (1.0 if gpus else 0.0)
    cpu_each = options.cpus_per_actor if options.cpus_per_actor is not None else 1.0
    if options.actors is not None:
        actors = options.actors
    elif gpu_each > 0:
        actors = max(1, int(gpus // gpu_each))
    else:
        actors = max(1, int(float(res.get("CPU", 1.0)) // cpu_each) - 1)
    return actors, cpu_each, gpu_each


def decode_batch(batch: dict[str, np.ndarray], preprocess: dict[str, Any],
                 task: ScanTask | None = None) -> dict[str, np.ndarray]:
    """Stage 1: paths -> the model inputs' uint8 pixels (zeros where not decoded), error reasons ('' = none), whether
    there is an image to score, and the provenance findings as JSON ('' = not read)."""
    pp = Preprocess.from_dict(preprocess)
    items = [try_prepare(Input(os.fsdecode(bytes(p)), str(e) or None), pp, None, task or ScanTask())
             for p, e in zip(batch["path"], batch["error"], strict=True)]
    good = [image for _, image, _, _ in items if image is not None]
    shape = tuple(good[0].shape) if good else (3, pp.size, pp.size)
    images = np.zeros((len(items), *shape), dtype=np.uint8)
    for i, (_, image, _, _) in enumerate(items):
        if image is not None:
            images[i] = image.numpy()
    return {"path": batch["path"], "error": np.array([error or "" for _, _, error, _ in items], dtype=object),
            "scored": np.array([image is not None for _, image, _, _ in items]),
            "provenance": np.array(["" if prov is None else json.dumps(prov) for _, _, _, prov in items],
                                   dtype=object),
            "image": images}


class ScoreActor:
    """Stage 2: one model per actor, loaded once; P(generated) for the decoded rows, NaN for the others."""

    def __init__(self, checkpoint: str, device: str) -> None:
        self.device = torch.device(device)
        self.model = load_scan_model(checkpoint, self.device)
        self.buffers = BatchBuffers()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        errors = [str(e) for e in batch["error"]]
        scores = np.full(len(errors), np.nan, dtype=np.float64)
        good = [i for i, (e, scored) in enumerate(zip(errors, batch["scored"], strict=True)) if not e and scored]
        if good:
            image = torch.from_numpy(np.ascontiguousarray(batch["image"][good]))
            scores[good] = score_batch(self.model, image, self.device, self.buffers)
        return {"path": batch["path"], "error": np.array(errors, dtype=object), "score": scores,
                "scored": batch["scored"], "provenance": batch["provenance"]}


def _blocks(pending: Sequence[Input], batch_size: int) -> list[Any]:
    """Arrow tables of one batch each; paths as bytes, so names that are not UTF-8 survive."""
    import pyarrow as pa

    return [
        pa.table({
            "path": pa.array([os.fsencode(it.path) for it in pending[i : i + batch_size]], type=pa.binary()),
            "error": pa.array([it.error or "" for it in pending[i : i + batch_size]], type=pa.string()),
        })
        for i in range(0, len(pending), batch_size)
    ]


def _record_batches(
    pending: Sequence[Input], model: ScanModel, batch_size: int, device: str, options: RayOptions, progress: bool,
    task: ScanTask,
) -> Iterator[list[Record]]:
    import ray

    actors, cpu_each, gpu_each = plan(options, device)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order = True  # records in input order, like the local engine
    ctx.enable_progress_bars = progress
    try:
        ds = ray.data.from_arrow(_blocks(pending, batch_size))
        ds = ds.map_batches(decode_batch, fn_kwargs={"preprocess": model.preprocess.to_dict(), "task": task},
                            batch_size=batch_size, batch_format="numpy", num_cpus=min(1.0, cpu_each))
        ds = ds.map_batches(ScoreActor, fn_constructor_kwargs={"checkpoint": str(model.checkpoint),
                                                               "device": "cuda" if gpu_each > 0 else "cpu"},
                            batch_size=batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpu_each, num_gpus=gpu_each)
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            rows = zip(out["path"], out["error"], out["score"], out["scored"], out["provenance"], strict=True)
            yield [_record(model, *row) for row in rows]
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


def _record(model: ScanModel, path: bytes, error: str, score: float, scored: bool, provenance: str) -> Record:
    findings = json.loads(provenance) if provenance else None
    return model.record(os.fsdecode(bytes(path)), float(score) if scored else None, str(error) or None, findings)


def scan_ray(
    specs: Sequence[str],
    model: ScanModel,
    output: str = "-",
    fmt: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int = 32,
    device: str = "auto",
    recursive: bool = True,
    progress: bool = False,
    stdin: BinaryIO | None = None,
    options: RayOptions | None = None,
    force: bool = False,
    task: ScanTask | None = None,
) -> ScanResult:
    """`gendet.detect.scan` on Ray: same inputs, same records, same files (see the module docstring).

    Decode tasks apply the decode budgets' size and structure limits; the time budget is the soft one
    (Ray tasks are not stopped mid-file)."""
    options = options or RayOptions()
    fmt = format_for(output, fmt)
    writer, state = open_writer(output, fmt, resume=resume, overwrite=overwrite, model=model.identity, force=force)
    done = state.paths
    stats, summary = InputStats(), ScanSummary()
    bar = tqdm(unit="img", desc="detect (ray)", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    start = time.perf_counter()
    started = False
    try:
        with writer:
            pending = []
            for item in iter_inputs(specs, recursive=recursive, stdin=stdin, stats=stats):
                if item.path in done:
                    summary.resumed += 1
                else:
                    pending.append(item)
            if pending:
                started = connect(options.address)
                for records in _record_batches(pending, model, batch_size, device, options, progress,
                                               task or ScanTask()):
                    for r in records:
                        summary.add(r)
                    writer.write(records)
                    bar.update(len(records))
                    summary.seconds = time.perf_counter() - start
    finally:
        bar.close()
        if started:
            import ray

            ray.shutdown()
    summary.seconds = time.perf_counter() - start
    return ScanResult(summary, output, fmt, state.dropped_bytes, state.errors, stats)

