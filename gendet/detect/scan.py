"""`scan`: inputs -> records on disk (or stdout), the Python API behind `gendet detect`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import torch
from tqdm.auto import tqdm

from gendet.data.decode import DecodeLimits
from gendet.detect.inputs import InputStats, iter_inputs
from gendet.detect.model import ScanModel
from gendet.detect.pipeline import ScanSummary, ScanTask, iter_record_batches
from gendet.detect.writers import format_for, open_writer


@dataclass
class ScanResult:
    summary: ScanSummary
    output: str
    format: str
    dropped_bytes: int = 0  # a partial last record cut from a resumed file
    earlier_errors: int = 0  # error records already in a resumed file (they count towards the exit status)
    inputs: InputStats = field(default_factory=InputStats)


def scan(
    specs: Sequence[str],
    model: ScanModel,
    output: str | os.PathLike[str] = "-",
    fmt: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int = 32,
    workers: int = 0,
    device: str | torch.device = "cpu",
    recursive: bool = True,
    progress: bool = False,
    stdin: BinaryIO | None = None,
    threads: int | str | None = "auto",
    force: bool = False,
    limits: DecodeLimits | None = None,
    task: ScanTask | None = None,
) -> ScanResult:
    """Score every input named by `specs` and stream one record per path to `output`.

    `specs` are files, folders, globs, "@LIST" or "-" (see gendet.detect.inputs).
    Raises writers.OutputError for an unusable output; per-file problems become
    records with an "error", never exceptions. `threads`: the model's CPU threads (int, "auto" or
    None = torch's setting; see gendet.detect.pipeline). `force`: resume an output another model wrote.
    `limits`: the decode budgets (default DecodeLimits()). `task`: pixels and/or provenance per file
    (default ScanTask(): both; see gendet.detect.prepare).
    """
    output = os.fspath(output)
    fmt = format_for(output, fmt)
    writer, done = open_writer(output, fmt, resume=resume, overwrite=overwrite, model=model.identity, force=force)
    stats = InputStats()
    summary = ScanSummary()
    bar = tqdm(
        unit="img", desc="detect", disable=not progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
    )
    try:
        with writer:
            inputs = iter_inputs(specs, recursive=recursive, stdin=stdin, stats=stats)
            for records in iter_record_batches(
                inputs, model, batch_size=batch_size, workers=workers, device=device, skip=done.paths,
                summary=summary, threads=threads, limits=limits, task=task,
            ):
                writer.write(records)
                bar.update(len(records))
                bar.set_postfix(fake=summary.fake, provenance=summary.by_provenance, errors=summary.errors,
                                refresh=False)
    finally:
        bar.close()
    return ScanResult(summary, output, fmt, done.dropped_bytes, done.errors, stats)
