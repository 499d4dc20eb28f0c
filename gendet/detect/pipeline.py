"""The scanning pipeline: a lazy path stream -> decoder processes -> batched model -> records.

The main process reads the inputs (so stdin and globs are read once) and hands each file to a
`DecodePool` worker process, which decodes and preprocesses it with the same `decode_image` +
`ImageTransform` as training and evaluation, under the decode budgets (`DecodeLimits`); the main
process collects results in input order, stacks them into batches and runs the model. A file that
runs past the time budget, or kills its worker (the OOM killer), gets an error record and the scan
goes on with a fresh worker. Only `batch_size + 4 * workers` files are in flight, so memory does
not grow with the number of inputs. With workers=0 everything runs in this process (a soft time
alarm then bounds decoding).

CPU threads for the model ("auto"): with a small model the scan is bound by decoding, and model
threads that take the decoders' cores slow it down (the 0.03 GFLOP `fast` model: 361 img/s at 1
thread, 126 at 2 on 2 cores); with a large model the reverse holds (the 6.9 GFLOP default: 6.4 img/s
at 2 threads, 4.8 at 1). The choice is made from the model's FLOPs per image, counted once, not from
timing a few batches: a probe on a shared machine measured the neighbours' load (ThreadPolicy).
"""

from __future__ import annotations

import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from gendet.data.decode import DecodeError, DecodeLimits
from gendet.data.decode_pool import DecodePool
from gendet.data.preprocess import Preprocess, normalize
from gendet.detect.inputs import Input
from gendet.detect.model import ScanModel
from gendet.detect.prepare import (  # noqa: F401 - decode_to_pixels, prepare_input: re-exported
    Prepared,
    ScanTask,
    decode_to_pixels,
    prepare_input,
    prepare_pixels,
)
from gendet.detect.writers import Record

# One file as the stream yields it: path, model input as uint8 pixels (None when not decoded), why not (None
# when fine), provenance findings as dicts (None when not read).
Decoded = tuple[str, torch.Tensor | None, str | None, list[dict[str, Any]] | None]


def try_prepare(item: Input, pp: Preprocess, limits: DecodeLimits | None = None,
                task: Callable[..., Any] = prepare_pixels) -> Decoded:
    """(path, tensor, None, provenance) or (path, None, reason, provenance), in this process (workers=0 and the
    Ray engine's decode tasks)."""
    if item.error is not None:
        return item.path, None, item.error, None
    array, reason, provenance = run_task(task, item.path, pp, limits)
    return item.path, None if array is None else torch.from_numpy(array), reason, provenance


def run_task(task: Callable[..., Any], path: str | bytes, pp: Preprocess, limits: DecodeLimits | None) -> Prepared:
    """`task` for one file as a `Prepared` triple, its DecodeError kept as the reason: a plain array task
    (prepare_pixels) gives no provenance."""
    try:
        value = task(path, pp, limits)
    except DecodeError as e:
        return None, e.reason, None
    return value if isinstance(value, tuple) else (value, None, None)


def decode_chunk(task: Callable[..., Any], paths: list[str], pp: Preprocess,
                 limits: DecodeLimits) -> tuple[list[Prepared], float]:
    """In a decoder process: `task` for each path, each file's DecodeError kept as its reason; and the mean
    seconds per file (the stream sizes its chunks by it)."""
    start = time.perf_counter()
    out = [run_task(task, path, pp, limits) for path in paths]
    return out, (time.perf_counter() - start) / max(1, len(paths))


class DecodedStream:
    """Inputs -> `Decoded` (path, tensor | None, error | None, provenance | None) in input order, decoded by
    `workers` processes.

    Paths in `skip` are not decoded (resume); `skipped` counts them. `task(path, pp, limits)` is what
    a worker runs per file (picklable; an array, or a `Prepared` triple as ScanTask gives; default
    prepare_pixels).
    Files go to the workers in chunks sized by their measured decode time (one file when a file takes
    20 ms or more, up to 8 when it takes under 5 ms: per-task overhead then matters). When a worker dies
    or is stopped on a chunk, its files are decoded again one by one, so only the culprit fails.
    """

    MAX_CHUNK = 8

    def __init__(self, inputs: Iterable[Input], pp: Preprocess, workers: int, window: int,
                 limits: DecodeLimits | None = None, skip: set[str] | None = None,
                 task: Callable[..., Any] = prepare_pixels) -> None:
        self.inputs, self.pp, self.limits, self.skip, self.task = inputs, pp, limits or DecodeLimits(), skip, task
        self.workers, self.window = workers, max(1, window)
        self.skipped = 0
        self.pool: DecodePool | None = None
        self.chunk = 1
        self._seconds_per_file: float | None = None

    def _todo(self) -> Iterator[Input]:
        for item in self.inputs:
            if self.skip and item.path in self.skip:
                self.skipped += 1
                continue
            yield item

    def __iter__(self) -> Iterator[Decoded]:
        if self.workers == 0:
            for item in self._todo():
                yield try_prepare(item, self.pp, self.limits, self.task)
            return
        self.pool = DecodePool(self.workers, self.limits.timeout_s,
                               preload=(__name__, getattr(self.task, "__module__", __name__)))
        clean = False
        try:
            pending: deque[tuple[list[Input], Future | None]] = deque()
            buffer: list[Input] = []
            in_flight = 0
            for item in self._todo():
                if item.error is None:
                    buffer.append(item)
                if buffer and (len(buffer) >= self.chunk or item.error is not None):  # in input order
                    pending.append((buffer, self._submit(buffer)))
                    buffer = []
                if item.error is not None:
                    pending.append(([item], None))
                in_flight += 1
                while in_flight >= self.window and pending:
                    items, future = pending.popleft()
                    in_flight -= len(items)
                    yield from self._resolve(items, future)
            if buffer:
                pending.append((buffer, self._submit(buffer)))
            while pending:
                yield from self._resolve(*pending.popleft())
            clean = True
        finally:
            self.pool.close(wait=clean)

    def _submit(self, items: list[Input]) -> Future:
        assert self.pool is not None
        return self.pool.submit(decode_chunk, self.task, [it.path for it in items], self.pp, self.limits)

    def _resolve(self, items: list[Input], future: Future | None) -> Iterator[Decoded]:
        if future is None:
            yield items[0].path, None, items[0].error, None
            return
        assert self.pool is not None
        value, error = self.pool.outcome(future)
        if error is not None:
            if len(items) > 1:  # the worker died or was stopped on this chunk: one by one, so only the culprit fails
                singles = [([it], self._submit([it])) for it in items]
                for single in singles:
                    yield from self._resolve(*single)
                return
            yield items[0].path, None, error.reason, None
            return
        results, seconds_per_file = value
        self._learn(seconds_per_file)
        for it, (array, reason, provenance) in zip(items, results, strict=True):
            yield it.path, None if array is None else torch.from_numpy(array), reason, provenance

    def _learn(self, seconds_per_file: float) -> None:
        old = self._seconds_per_file
        mean = seconds_per_file if old is None else 0.8 * old + 0.2 * seconds_per_file
        self._seconds_per_file = mean
        self.chunk = self.MAX_CHUNK if mean < 0.005 else 4 if mean < 0.02 else 1


def _batches(stream: Iterable[Decoded], size: int, first: int | None = None) -> Iterator[list[Decoded]]:
    """Batches of `size` entries; with `first`, the batches before them grow from `first`, doubling (a ramp:
    see FIRST_BATCH)."""
    batch: list = []
    want = min(size, first or size)
    for entry in stream:
        batch.append(entry)
        if len(batch) == want:
            yield batch
            batch, want = [], min(size, 2 * want)
    if batch:
        yield batch


# The first batch's size when decoder processes feed the model: the model starts after a few files instead of a
# whole batch, and the batches double up to --batch-size while the decoders keep ahead. A Lite0 scan's first
# records came after 0.9 s, now 0.27 s (benchmarks/scan_startup.py); its throughput did not change.
FIRST_BATCH = 4


@dataclass
class ScanSummary:
    """What one scan did (this run only; records kept from a resumed file count as `resumed`)."""

    scored: int = 0  # pixel-scored (or, with --provenance only, provenance read)
    fake: int = 0
    real: int = 0
    errors: int = 0
    by_provenance: int = 0  # records whose verdict a decisive provenance finding set
    conflicts: int = 0  # records whose provenance and pixels disagree (the record says how)
    resumed: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0  # of `seconds`, the model's scoring (the rest: start-up, decoding waits, writing)
    model_threads: int = 0  # CPU threads the model ran on at the end (0: not on CPU)
    replaced_workers: int = 0  # decoder processes stopped (time budget) or lost (killed) and replaced
    error_examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.scored + self.errors

    def add(self, record: Record) -> None:
        """Count one written record."""
        if record.error is None:
            self.scored += 1
            self.fake += record.label == "fake"
            self.real += record.label == "real"
        else:
            self.errors += 1
            if len(self.error_examples) < 5:
                self.error_examples.append((record.path, record.error))
        self.by_provenance += bool(record.reason and record.reason.startswith("provenance:"))
        self.conflicts += record.conflict is not None

    @property
    def images_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_busy(self) -> float:
        """The share of the scan's wall time the model was scoring: near 1, the model bounds the scan; well below,
        decoding (or reading the inputs) does, and more decoder workers may help."""
        return min(1.0, self.model_seconds / self.seconds) if self.seconds > 0 else 0.0


class BatchBuffers:
    """Input memory that one batch after another reuses (a scan, a server's model thread, a Ray actor; one
    thread each). A fresh batch of the default model's input is ~100 MB, and on this VM faulting in its pages
    cost more than decoding the images (torch.stack 3.6 ms per image in a scan)."""

    def __init__(self) -> None:
        self._buffers: dict[torch.dtype, torch.Tensor] = {}

    def get(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        numel = int(np.prod(shape))
        buf = self._buffers.get(dtype)
        if buf is None or buf.numel() < numel:
            buf = self._buffers[dtype] = torch.empty(numel, dtype=dtype)
        return buf[:numel].view(*shape)

    def stack(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """torch.stack of same-shaped tensors, into this memory."""
        return torch.stack(list(tensors), out=self.get((len(tensors), *tensors[0].shape), tensors[0].dtype))


def score_batch(model: ScanModel, images: torch.Tensor | Sequence[torch.Tensor], device: torch.device,
                buffers: BatchBuffers | None = None) -> np.ndarray:
    """P(generated) for a (B, C, H, W) batch or a list of same-shaped images, as float64 numpy: uint8 pixels
    (normalised here, on the device, into `buffers` on the CPU) or the normalised float input. A list is stacked
    here (into `buffers`), unless the detector takes uint8 pixels and stacks and normalises them itself, chunk by
    chunk in the threads that run the chunks (OnnxDetector.score_pixels)."""
    dtype = images.dtype if isinstance(images, torch.Tensor) else images[0].dtype
    if dtype == torch.uint8 and device.type == "cpu" and hasattr(model.detector, "score_pixels"):
        return model.detector.score_pixels(images, model.preprocess)["prob"].numpy().astype(np.float64)
    if isinstance(images, torch.Tensor):
        image = images
    else:
        image = buffers.stack(images) if buffers is not None else torch.stack(list(images))
    image = image.to(device, non_blocking=True)
    if image.dtype == torch.uint8:
        out = buffers.get(image.shape, torch.float32) if buffers is not None and device.type == "cpu" else None
        image = normalize(image, model.preprocess, out)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        prob = model.detector({"image": image})["prob"]
    return prob.float().cpu().numpy().astype(np.float64)


class ThreadPolicy:
    """Chooses the model's CPU threads: a fixed number, or "auto" (see the module docstring).

    auto (CPU with decoder workers), from the machine as the scan starts: `free` = cores minus those other
    processes keep busy (busy_cores: /proc/stat over 0.2 s, so a neighbour's load counts; OpenMP threads
    that share a core with a busy process wait at every barrier; all cores for a runtime whose threads never
    wait for each other, `independent_threads`); then all free cores when the model costs
    at least LIGHT_FLOPS per image (it is the bottleneck), else free - workers (decoding is; the decoders keep
    their cores). LIGHT_FLOPS sits between the measured cases, two orders of magnitude from each: decoding and
    preprocessing a 341 x 256 JPEG took ~10 core-ms here, about what 0.5 GFLOP of convolution costs on one core.
    """

    LIGHT_FLOPS = 0.5e9

    def __init__(self, threads: int | str | None, workers: int, device: torch.device, model: ScanModel | None = None,
                 flops_per_image: float | None = None) -> None:
        """model: what runs, with the runtime whose threads are set (torch, or OnnxDetector's for --engine onnx)
        and the cost "auto" reads (count_flops), unless `flops_per_image` gives it."""
        runtime = model.detector if model is not None else None
        self.runtime = runtime if hasattr(runtime, "set_num_threads") else torch
        self.before = self.runtime.get_num_threads()
        cores = os.cpu_count() or 1
        self.choice: int | None = None
        if isinstance(threads, int):
            self.choice = threads
        elif threads == "auto" and device.type == "cpu" and workers > 0:
            if flops_per_image is None and model is not None:
                flops_per_image = count_flops(model, device)
            light = flops_per_image is not None and flops_per_image < self.LIGHT_FLOPS
            # a runtime whose threads never wait for each other (onnxruntime's batch chunks, OnnxDetector) loses
            # only a busy core's share, not every barrier: beside one busy loop, Lite0 scanned at 20.1 img/s on
            # 2 such threads and 17.2 on 1, where torch's 2 OpenMP threads gave 1.1 and 1 gave 7.2
            independent = bool(getattr(self.runtime, "independent_threads", False))
            free = cores if independent else max(1, cores - busy_cores())
            self.choice = max(1, free - workers) if light else free
        if self.choice is not None:
            self.runtime.set_num_threads(self.choice)

    def threads(self) -> int:
        return int(self.runtime.get_num_threads())

    def restore(self) -> None:
        self.runtime.set_num_threads(self.before)


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def busy_cores(window_s: float = 0.2) -> int:
    """Cores other processes keep busy right now (this process is idle while it measures): whole cores at
    least 70 % used, from /proc/stat over `window_s`; 0 where that cannot be read."""
    first = _cpu_times()
    if first is None:
        return 0
    time.sleep(window_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return 0
    busy_fraction = 1 - (second[0] - first[0]) / (second[1] - first[1])
    return int(busy_fraction * (os.cpu_count() or 1) + 0.3)


_FLOPS: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()  # detector -> FLOPs per image


def count_flops(model: ScanModel, device: torch.device | str = "cpu") -> float:
    """FLOPs of one image's forward (all its crops), counted by torch's FlopCounterMode on a zero input, once
    per detector, on one thread (beside a busy process a 2-thread forward of the 4-crop Lite0 probe took ~1 s,
    billed to every scan); an ONNX model carries the count its export measured."""
    known = getattr(model.detector, "flops_per_image", None)
    if known is not None:
        return float(known)
    if model.detector in _FLOPS:
        return _FLOPS[model.detector]
    pp = model.preprocess
    shape = (1, pp.crops, 3, pp.size, pp.size) if pp.crops > 1 else (1, 3, pp.size, pp.size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model.detector({"image": torch.zeros(*shape, device=device)})
    finally:
        torch.set_num_threads(threads)
    _FLOPS[model.detector] = flops = float(counter.get_total_flops())
    return flops


def score_entries(model: ScanModel, entries: Sequence[Decoded], device: torch.device,
                  buffers: BatchBuffers | None = None) -> list[Record]:
    """One record per decoded entry, in order: the decoded ones scored in one batch (stacked into `buffers`
    when given), the verdict by ScanModel.record (a non-finite score becomes that record's error there)."""
    good = [i for i, (_, tensor, err, _) in enumerate(entries) if err is None and tensor is not None]
    scores: dict[int, float] = {}
    if good:
        tensors = [cast(torch.Tensor, entries[i][1]) for i in good]
        probs = score_batch(model, tensors, device, buffers)
        scores = dict(zip(good, (float(p) for p in probs), strict=True))
    return [model.record(path, scores.get(i), err, provenance)
            for i, (path, _, err, provenance) in enumerate(entries)]


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
    limits: DecodeLimits | None = None,
    task: ScanTask | None = None,
) -> Iterator[list[Record]]:
    """Score `inputs`, yielding one list of records per batch, in input order.

    Paths in `skip` are not scanned (resume). `summary` is updated as batches
    complete; `on_batch(n)` is called with each batch's size (progress bars).
    threads: the model's CPU threads: an int, "auto" (from the model's FLOPs, CPU with workers only;
    see ThreadPolicy) or None (leave torch's setting); restored at the end.
    limits: the decode budgets (default DecodeLimits()).
    task: what each file gets (default ScanTask(): pixels and provenance; see gendet.detect.prepare).
    """
    device = torch.device(device)
    summary = summary if summary is not None else ScanSummary()
    stream = DecodedStream(inputs, model.preprocess, workers, batch_size + 4 * workers, limits, skip,
                           task or ScanTask())
    model.detector.eval()
    policy = ThreadPolicy(threads, workers, device, model)
    try:
        yield from _records(stream, batch_size, model, device, summary, policy, on_batch)
    finally:
        policy.restore()


def _records(stream: DecodedStream, batch_size: int, model: ScanModel, device: torch.device, summary: ScanSummary,
             policy: ThreadPolicy, on_batch: Callable[[int], None] | None) -> Iterator[list[Record]]:
    start = time.perf_counter()
    buffers = BatchBuffers()
    for batch in _batches(stream, batch_size, FIRST_BATCH if stream.workers > 0 else None):
        scoring = time.perf_counter()
        records = score_entries(model, batch, device, buffers)
        summary.model_seconds += time.perf_counter() - scoring
        if device.type == "cpu" and any(err is None and tensor is not None for _, tensor, err, _ in batch):
            summary.model_threads = policy.threads()
        for r in records:
            summary.add(r)
        summary.resumed = stream.skipped
        summary.replaced_workers = stream.pool.replaced if stream.pool is not None else 0
        summary.seconds = time.perf_counter() - start
        if on_batch is not None:
            on_batch(len(records))
        yield records
    summary.resumed = stream.skipped
    summary.seconds = time.perf_counter() - start
