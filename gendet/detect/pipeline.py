"""The scanning pipeline: a lazy path stream -> DataLoader workers decode -> batched model -> records.

The main process reads the inputs (so stdin and globs are read once) and cuts
them into chunks of `batch_size`; a DataLoader hands each chunk to a worker
process as one "batch index" (`batch_sampler`), the worker decodes and
preprocesses it with the same `decode_image` + `ImageTransform` as training and
evaluation, and the main process runs the model. Each path therefore goes to
exactly one worker, the DataLoader returns chunks in order (so records come out
in input order whatever the worker count), and only `workers * prefetch` chunks
are in flight: memory does not grow with the number of inputs.

CPU threads for the model ("auto"): with a small model the scan is bound by decoding, and
model threads that take the decoders' cores slow it down (+50% measured with the default
model on 2 cores at 1 thread instead of 2); with a large model the reverse holds. So the
first batches try both and the faster setting is kept (ThreadPolicy).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gendet.data.decode import DecodeError, decode_image
from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.detect.inputs import Input
from gendet.detect.model import NON_FINITE_SCORE, ScanModel
from gendet.detect.writers import Record


class ScanDataset(Dataset):
    """Map-style dataset whose "indices" are `Input`s: decode + eval transform, errors kept as reasons."""

    def __init__(self, pp: Preprocess) -> None:
        self.transform = ImageTransform(pp, train=False)

    def __getitem__(self, item: Input) -> dict[str, Any]:
        out: dict[str, Any] = {"path": item.path, "image": None, "error": item.error}
        if item.error is not None:
            return out
        try:
            img = decode_image(item.path)
            # eval transforms draw no random numbers; a fixed rng keeps the call signature
            out["image"] = self.transform(img, np.random.default_rng(0))
        except DecodeError as e:
            out["error"] = e.reason
        except Exception as e:  # noqa: BLE001 - one odd file must not end a million-file scan
            out["error"] = f"preprocessing failed: {type(e).__name__}: {e}"
        return out


def collate_scan(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Keep every item's path and error in order; stack only the decoded images."""
    good = [i for i, it in enumerate(items) if it["error"] is None]
    return {
        "path": [it["path"] for it in items],
        "error": [it["error"] for it in items],
        "good": good,
        "image": torch.stack([items[i]["image"] for i in good]) if good else torch.empty(0),
    }


class ChunkSampler:
    """Batch sampler over a lazy input stream: yields lists of `Input`, skipping already-done paths."""

    def __init__(self, inputs: Iterable[Input], batch_size: int, skip: set[str] | None = None) -> None:
        self.inputs, self.batch_size, self.skip = inputs, batch_size, skip
        self.skipped = 0

    def __iter__(self) -> Iterator[list[Input]]:
        chunk: list[Input] = []
        for item in self.inputs:
            if self.skip and item.path in self.skip:
                self.skipped += 1
                continue
            chunk.append(item)
            if len(chunk) == self.batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


@dataclass
class ScanSummary:
    """What one scan did (this run only; records kept from a resumed file count as `resumed`)."""

    scored: int = 0
    fake: int = 0
    real: int = 0
    errors: int = 0
    resumed: int = 0
    seconds: float = 0.0
    model_threads: int = 0  # CPU threads the model ran on at the end (0: not on CPU)
    error_examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.scored + self.errors

    @property
    def images_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


def make_scan_loader(
    sampler: ChunkSampler, pp: Preprocess, workers: int, device: torch.device
) -> DataLoader:
    return DataLoader(
        ScanDataset(pp), batch_sampler=sampler, num_workers=workers, collate_fn=collate_scan,
        pin_memory=device.type == "cuda", prefetch_factor=4 if workers > 0 else None,
    )


def score_batch(model: ScanModel, image: torch.Tensor, device: torch.device) -> np.ndarray:
    """P(generated) for a (B, C, H, W) batch, as float64 numpy."""
    image = image.to(device, non_blocking=True)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        prob = model.detector({"image": image})["prob"]
    return prob.float().cpu().numpy().astype(np.float64)


class ThreadPolicy:
    """Chooses the model's CPU threads: a fixed number, or "auto" (see the module docstring).

    auto: after one warm-up batch, batches alternate between all cores and cores - workers, and
    the setting with the faster forward (measured in place, while the decoders run) is kept.
    Timing in place matters: on 2 cores the default model's forward at 2 threads took 1.1 ms/img
    alone but 4-5 ms/img beside a busy decoder.
    """

    PROBES = 4  # after the warm-up batch: all, spare, all, spare

    def __init__(self, threads: int | str | None, workers: int, device: torch.device) -> None:
        self.before = torch.get_num_threads()
        cores = os.cpu_count() or 1
        self.settings = (self.before, max(1, cores - workers))
        self.auto = threads == "auto" and device.type == "cpu" and workers > 0 and self.settings[0] != self.settings[1]
        if isinstance(threads, int):
            torch.set_num_threads(threads)
        self.seen = 0
        self.times: dict[int, list[float]] = {n: [] for n in self.settings}

    def observe(self, n_images: int, forward_s: float) -> None:
        """Record one batch's forward time and set the threads for the next batch."""
        if not self.auto or n_images == 0:
            return
        if self.seen > 0:
            self.times[torch.get_num_threads()].append(forward_s / n_images)
        self.seen += 1
        if self.seen <= self.PROBES:
            torch.set_num_threads(self.settings[self.seen % 2])
        else:
            self.auto = False
            torch.set_num_threads(min(self.settings, key=lambda n: min(self.times[n])))

    def restore(self) -> None:
        torch.set_num_threads(self.before)


def iter_record_batches(
    inputs: Iterable[Input],
    model: ScanModel,
    batch_size: int = 32,
    workers: int = 0,
    device: str | torch.device = "cpu",
    skip: set[str] | None = None,
    summary: ScanSummary | None = None,
    on_batch: Callable[[int], None] | None = None,
    threads: int | str | None = None,
) -> Iterator[list[Record]]:
    """Score `inputs`, yielding one list of records per batch, in input order.

    Paths in `skip` are not scanned (resume). `summary` is updated as batches
    complete; `on_batch(n)` is called with each batch's size (progress bars).
    threads: the model's CPU threads: an int, "auto" (decided on the first batches,
    CPU with workers only) or None (leave torch's setting); restored at the end.
    """
    device = torch.device(device)
    summary = summary if summary is not None else ScanSummary()
    sampler = ChunkSampler(inputs, batch_size, skip)
    loader = make_scan_loader(sampler, model.preprocess, workers, device)
    model.detector.eval()
    policy = ThreadPolicy(threads, workers, device)
    try:
        yield from _records(loader, model, device, summary, sampler, policy, on_batch)
    finally:
        policy.restore()


def _records(loader: DataLoader, model: ScanModel, device: torch.device, summary: ScanSummary,
             sampler: ChunkSampler, policy: ThreadPolicy,
             on_batch: Callable[[int], None] | None) -> Iterator[list[Record]]:
    thr, name = model.threshold, model.name
    start = time.perf_counter()
    for batch in loader:
        scores: list[float | None] = [None] * len(batch["path"])
        errors: list[str | None] = list(batch["error"])
        if batch["good"]:
            t = time.perf_counter()
            probs = score_batch(model, batch["image"], device)
            policy.observe(len(batch["good"]), time.perf_counter() - t)
            if device.type == "cpu":
                summary.model_threads = torch.get_num_threads()
            for pos, p in zip(batch["good"], probs, strict=True):
                if math.isfinite(p):
                    scores[pos] = float(p)
                else:
                    errors[pos] = NON_FINITE_SCORE
        records = []
        for path, score, err in zip(batch["path"], scores, errors, strict=True):
            if err is None and score is not None:
                label = model.label(score)
                summary.scored += 1
                summary.fake += label == "fake"
                summary.real += label == "real"
                records.append(Record(path, score, label, thr, name, None))
            else:
                summary.errors += 1
                if len(summary.error_examples) < 5:
                    summary.error_examples.append((path, str(err)))
                records.append(Record(path, None, None, thr, name, err))
        summary.resumed = sampler.skipped
        summary.seconds = time.perf_counter() - start
        if on_batch is not None:
            on_batch(len(records))
        yield records
    summary.resumed = sampler.skipped
    summary.seconds = time.perf_counter() - start
