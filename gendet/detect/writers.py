"""Streaming record writers (JSONL, CSV) and the resume reader.

Each batch of records is written and flushed as soon as it is scored, so a
killed scan loses at most the batch being written, and that one only as a
truncated last line, which `read_done_paths` drops (and cuts off the file)
before a resumed scan appends.

Non-UTF-8 file names (held as surrogate-escaped ``str``, see inputs.py):
- JSONL: the undecodable bytes are written as JSON ``\\udcXX`` escapes, so the file
  is valid UTF-8 JSON; ``os.fsencode(json.loads(line)["path"])`` gives the exact bytes.
- CSV: the original bytes are written as they are (the file then is not pure UTF-8);
  read it with ``open(f, newline="", encoding="utf-8", errors="surrogateescape")`` and
  ``os.fsencode(row["path"])`` gives the exact bytes.

CSV quoting: every text field is quoted (numbers are not), so a file name holding a carriage
return, a newline or any other control character stays one field of one row for any CSV reader.

Resuming: the existing records say which paths are done, which model wrote them and how many
were errors; resuming another model's output is refused unless forced (mixed scores in one file
would be silently incomparable).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

# JSONL keys; CSV columns are the same with the provenance list flattened to two columns
JSON_FIELDS = ("path", "score", "label", "threshold", "model", "error", "model_version", "verdict", "reason",
               "conflict", "provenance")
FIELDS = (*JSON_FIELDS, "provenance_detail")
FORMATS = ("jsonl", "csv")


class OutputError(Exception):
    """The output file cannot be written or resumed; the message says why."""


@dataclass(frozen=True)
class Record:
    """One input's result. label is the pixel detector's "fake"/"real", or None (with score None) when
    `error` is set or no pixel model ran (--provenance only). model_version names the exact weights
    ("sha256:<12 hex>" of the weights file). verdict ("generated", "edited", "real", "unknown"), reason and
    conflict come from gendet.provenance.verdict.decide over the score and `provenance` (finding dicts;
    None when provenance was not read)."""

    path: str
    score: float | None
    label: str | None
    threshold: float
    model: str
    error: str | None = None
    model_version: str | None = None
    verdict: str | None = None
    reason: str | None = None
    conflict: str | None = None
    provenance: tuple[dict[str, Any], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "score": self.score, "label": self.label,
            "threshold": self.threshold, "model": self.model, "error": self.error,
            "model_version": self.model_version, "verdict": self.verdict, "reason": self.reason,
            "conflict": self.conflict, "provenance": None if self.provenance is None else list(self.provenance),
        }

    def provenance_columns(self) -> tuple[str, str]:
        """The findings flattened for CSV: "signal=says/strength[:generator][!error]" joined by "; ", and their
        details joined by " | "."""
        if not self.provenance:
            return "", ""
        tags, details = [], []
        for f in self.provenance:
            tag = f"{f['signal']}={f['says']}/{f['strength']}" + (f":{f['generator']}" if f.get("generator") else "")
            tags.append(tag + ("!error" if f.get("error") else ""))
            details.append(str(f["detail"]) + (f" (error: {f['error']})" if f.get("error") else ""))
        return "; ".join(tags), " | ".join(details)


def format_for(output: str, fmt: str | None) -> str:
    """The explicit --format, else from the output's extension (.csv -> csv, anything else -> jsonl)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise OutputError(f"--format must be one of {FORMATS}, got {fmt!r}")
        return fmt
    return "csv" if output != "-" and output.lower().endswith(".csv") else "jsonl"


class RecordWriter:
    """Base: `write(records)` writes one batch and flushes it."""

    def __init__(self, fh: BinaryIO, owns: bool) -> None:
        self.fh, self.owns = fh, owns

    def write(self, records: Sequence[Record]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.fh.flush()
        if self.owns:
            self.fh.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonlWriter(RecordWriter):
    def write(self, records: Sequence[Record]) -> None:
        text = "".join(json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=False) + "\n" for r in records)
        # Lone surrogates (non-UTF-8 file names) become the JSON escape \udcXX: valid JSON, exact round trip.
        self.fh.write(text.encode("utf-8", "backslashreplace"))
        self.fh.flush()


class CsvWriter(RecordWriter):
    def __init__(self, fh: BinaryIO, owns: bool, header: bool) -> None:
        super().__init__(fh, owns)
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        if header:  # the header stays unquoted: it is what people grep for
            self.fh.write((",".join(FIELDS) + "\n").encode())
            self.fh.flush()

    def _emit(self, rows: list[Sequence[Any]]) -> None:
        self._buf.seek(0)
        self._buf.truncate()
        self._csv.writerows(rows)
        self.fh.write(self._buf.getvalue().encode("utf-8", "surrogateescape"))
        self.fh.flush()

    def write(self, records: Sequence[Record]) -> None:
        # floats stay unquoted numbers (written with repr: exact round trip); None becomes ""
        self._emit([
            [r.path, "" if r.score is None else float(r.score), r.label or "", float(r.threshold), r.model,
             r.error or "", r.model_version or "", r.verdict or "", r.reason or "", r.conflict or "",
             *r.provenance_columns()]
            for r in records
        ])


def _lines_with_end(fh: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(line, byte offset just after it); a last line without newline is not yielded (it is partial)."""
    pos = 0
    for line in fh:
        if not line.endswith(b"\n"):
            return
        pos += len(line)
        yield line, pos


@dataclass
class ResumeState:
    """What an existing output already holds: paths done, the models that wrote them, how many were errors,
    and the bytes of a partial last record that were cut off."""

    paths: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    errors: int = 0
    dropped_bytes: int = 0

    def add(self, path: str, model: object, version: object, error: object) -> None:
        self.paths.add(path)
        if isinstance(model, str) and model:
            self.models.add(f"{model} {version}" if isinstance(version, str) and version else model)
        self.errors += bool(error)


def _scan_jsonl(fh: BinaryIO, path: Path, done: ResumeState) -> int:
    good_end = 0
    for n, (line, end) in enumerate(_lines_with_end(fh), start=1):
        if not line.strip():
            good_end = end
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise OutputError(f"{path} line {n} is not valid JSON ({e}); is it a `gendet detect` output?") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), str):
            raise OutputError(f"{path} line {n} is not a `gendet detect` record (no \"path\")")
        done.add(rec["path"], rec.get("model"), rec.get("model_version"), rec.get("error"))
        good_end = end
    return good_end


def _scan_csv(fh: BinaryIO, path: Path, done: ResumeState) -> int:
    ends: list[int] = [0]

    def text_lines() -> Iterator[str]:
        for line, end in _lines_with_end(fh):
            ends[0] = end
            yield line.decode("utf-8", "surrogateescape")

    reader = csv.reader(text_lines())
    good_end = 0
    header_seen = False
    for row in reader:
        if not header_seen:
            if tuple(row) != FIELDS:
                raise OutputError(f"{path} does not start with the header {','.join(FIELDS)}")
            header_seen = True
        elif not row:
            pass  # a blank line
        elif len(row) != len(FIELDS):
            break  # a record cut inside a quoted multi-line field: drop it and what follows
        else:
            done.add(row[0], row[4], row[6], row[5])
        good_end = ends[0]
    return good_end


def read_done_paths(path: str | os.PathLike, fmt: str) -> ResumeState:
    """What an existing output already records; truncates a partial last record.

    A missing or empty file gives an empty state.
    """
    p = Path(path)
    done = ResumeState()
    if not p.exists() or p.stat().st_size == 0:
        return done
    try:
        with open(p, "rb") as fh:
            good_end = _scan_jsonl(fh, p, done) if fmt == "jsonl" else _scan_csv(fh, p, done)
    except csv.Error as e:
        raise OutputError(f"{p} is not a readable `gendet detect` CSV ({e})") from None
    size = p.stat().st_size
    if good_end < size:
        with open(p, "r+b") as fh:
            fh.truncate(good_end)
    done.dropped_bytes = size - good_end
    return done


def open_writer(
    output: str, fmt: str, resume: bool = False, overwrite: bool = False, model: str | None = None,
    force: bool = False,
) -> tuple[RecordWriter, ResumeState]:
    """(writer, what the output already holds) for `output` ('-' = stdout).

    Resuming an output with records of a model other than `model` ("NAME sha256:..." as ScanModel.identity
    gives it) raises OutputError unless `force`.
    """
    if output == "-":
        if resume:
            raise OutputError("--resume needs an output file (not '-')")
        fh = sys.stdout.buffer
        writer: RecordWriter = JsonlWriter(fh, False) if fmt == "jsonl" else CsvWriter(fh, False, header=True)
        return writer, ResumeState()
    p = Path(output)
    if p.is_dir():
        raise OutputError(f"--output {p} is a directory")
    done = ResumeState()
    if p.exists() and not resume and not overwrite:
        raise OutputError(f"--output {p} exists: add --resume to continue it, or --overwrite to replace it")
    if resume:
        done = read_done_paths(p, fmt)
        others = sorted(done.models - {model}) if model is not None else []
        if others and not force:
            raise OutputError(f"--output {p} holds records of model {', '.join(others)}, not {model}: resuming would "
                              "mix two models' scores in one file. Write to a new file, or add --force")
    p.parent.mkdir(parents=True, exist_ok=True)
    header = fmt == "csv" and (not resume or not p.exists() or p.stat().st_size == 0)
    try:
        fh = open(p, "ab" if resume else "wb")  # noqa: SIM115 - closed by the writer
    except OSError as e:
        raise OutputError(f"cannot write {p}: {e}") from None
    writer = JsonlWriter(fh, True) if fmt == "jsonl" else CsvWriter(fh, True, header=header)
    return writer, done


