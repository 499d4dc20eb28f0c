"""Tar shards (WebDataset format) for data sets of millions of files, with random access for training.

``gendet data shard`` packs any supported layout into ``shard-NNNNNN.tar`` files written by
``webdataset.ShardWriter``. Each sample is two members: ``<key>.<ext>``, the original file's
bytes (never re-encoded: real and fake keep their own formats, so format alignment at training
time still means what it says), and ``<key>.json`` (label, split, generator, group, source path,
explanation). Samples are shuffled with a seed before packing, so every shard mixes classes and
generators, as streaming WebDataset readers expect; any WebDataset pipeline can read the shards.

gendet's trainer does not stream: it draws seeded global batches by index (exact resume, the
same trajectory for any number of ranks). So the writer also records every image member's byte
offset in ``index.jsonl``, and a sample is read with one seek + read in its shard. Each rank reads
one index file instead of listing millions of files. ``shards.json`` is written last (atomically)
and marks a complete set.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gendet.data.dataset import ImageDataset
from gendet.data.decode import DecodeError
from gendet.data.preprocess import ImageTransform
from gendet.data.sample import Sample

SUMMARY_FILE = "shards.json"
INDEX_FILE = "index.jsonl"
SHARD_PATTERN = "shard-%06d.tar"
FORMAT = "gendet-shards/1"


def is_shard_dir(path: str | os.PathLike) -> bool:
    """True for a folder written by `write_shards` (it holds shards.json)."""
    return (Path(path) / SUMMARY_FILE).is_file()


def _read_source(path: Path) -> bytes:
    """The file's bytes, or OSError turned into the decoder's wording."""
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise DecodeError("is a directory, not an image file", path) from None
    except FileNotFoundError:
        raise DecodeError("broken symbolic link" if path.is_symlink() else "file does not exist", path) from None
    except PermissionError:
        raise DecodeError("permission denied", path) from None
    except OSError as e:
        raise DecodeError(f"cannot read: {e.strerror or e}", path) from None


def write_shards(
    samples: Sequence[Sample],
    out_dir: str | os.PathLike,
    shard_size: int = 5000,
    seed: int = 0,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pack `samples` into tar shards of at most `shard_size` samples under `out_dir`; returns the summary.

    Files that cannot be read are left out and listed in the summary's "errors" (undecodable
    bytes are packed as they are: the trainer reports them per file, as it does for folders).
    """
    import webdataset as wds  # only the writer needs it

    from gendet.io import atomic_write_text

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(samples))  # mix classes and generators in every shard
    pending: dict[str, dict[str, Any]] = {}  # key -> index row, until its shard is closed and indexed
    shards: list[dict[str, Any]] = []
    errors: list[list[str]] = []
    counts: dict[str, dict[str, int]] = {}
    index_tmp = out / f".{INDEX_FILE}.tmp"
    written = 0

    with open(index_tmp, "w", encoding="utf-8") as index:

        def index_shard(fname: str) -> None:  # ShardWriter calls this after closing each shard
            n = 0
            with tarfile.open(fname) as tf:
                for member in tf:
                    key, _, ext = member.name.partition(".")
                    if ext == "json" or key not in pending:
                        continue
                    row = pending.pop(key)
                    row.update(shard=Path(fname).name, member=member.name, offset=member.offset_data,
                               size=member.size)
                    index.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
            shards.append({"file": Path(fname).name, "count": n})

        with wds.ShardWriter(str(out / SHARD_PATTERN), maxcount=shard_size, verbose=0, post=index_shard,
                             mtime=0.0) as sink:  # fixed member times: the same input gives the same bytes
            for i in order.tolist():
                s = samples[i]
                path = Path(s.path)
                try:
                    data = _read_source(path)
                except DecodeError as e:
                    errors.append([str(path), e.reason])
                    continue
                key = f"{written:09d}"
                written += 1
                meta = {"label": s.label, "split": s.split, "generator": s.generator, "group": s.group,
                        "source": os.path.abspath(path), "explanation": s.explanation}
                ext = path.suffix.lower().lstrip(".") or "img"
                sink.write({"__key__": key, ext: data, "json": json.dumps(meta, ensure_ascii=False)})
                pending[key] = {"key": key, **meta}
                by_label = counts.setdefault(s.split, {})
                by_label[str(s.label)] = by_label.get(str(s.label), 0) + 1
    os.replace(index_tmp, out / INDEX_FILE)
    summary = {
        "format": FORMAT, "n_samples": sum(x["count"] for x in shards), "n_shards": len(shards),
        "shard_size": shard_size, "seed": seed, "counts": counts, "shards": shards,
        "errors": errors, "source": source or {},
    }
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def read_shard_samples(root: str | os.PathLike, subset: str | None = None, split: str | None = None) -> list[Sample]:
    """Samples of a shard folder, in index order; `subset` (generator) and `split` filter like read_samples."""
    root = Path(root)
    if not is_shard_dir(root):
        raise FileNotFoundError(f"{root} is not a shard folder (no {SUMMARY_FILE}); write one with `gendet data shard`")
    summary = json.loads((root / SUMMARY_FILE).read_text(encoding="utf-8"))
    if summary.get("format") != FORMAT:
        raise ValueError(f"{root / SUMMARY_FILE}: unknown format {summary.get('format')!r}, expected {FORMAT!r}")
    samples = []
    with open(root / INDEX_FILE, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            shard = root / r["shard"]
            samples.append(Sample(
                path=shard / r["member"], label=r["label"], split=r["split"], generator=r["generator"] or "",
                group=r["group"] or "", explanation=r.get("explanation"),
                extra={"shard": str(shard), "offset": int(r["offset"]), "size": int(r["size"]), "source": r["source"]},
            ))
    if subset is not None:
        chosen = [s for s in samples if s.generator == subset]
        if not chosen:
            have = sorted({s.generator for s in samples if s.generator})
            raise ValueError(f"subset {subset!r} not found in {root}; available: {have}")
        samples = chosen
    if split is not None:
        samples = [s for s in samples if s.split == split]
    return samples


def is_shard_backed(samples: Sequence[Sample]) -> bool:
    return bool(samples) and "shard" in samples[0].extra


def read_member(sample: Sample) -> bytes:
    """A shard-backed sample's file bytes: one seek + read."""
    size = int(sample.extra["size"])
    if size == 0:
        raise DecodeError("empty file (0 bytes)", sample.path)  # the wording decode_image gives a 0-byte file
    with open(sample.extra["shard"], "rb") as fh:
        fh.seek(int(sample.extra["offset"]))
        data = fh.read(size)
    if len(data) != size:
        raise DecodeError(f"shard truncated: read {len(data)} of {size} bytes", sample.path)
    return data


class ShardImageDataset(ImageDataset):
    """ImageDataset whose samples live in tar shards (same items, same per-file error handling)."""

    def read(self, s: Sample) -> bytes:
        try:
            return read_member(s)
        except OSError as e:
            raise DecodeError(f"cannot read shard: {e.strerror or e}") from None


def make_dataset(samples: Sequence[Sample], transform: ImageTransform, seed: int = 0) -> ImageDataset:
    """The dataset for `samples`: shard-backed ones read from their tar, others from their files."""
    cls = ShardImageDataset if is_shard_backed(samples) else ImageDataset
    return cls(samples, transform, seed=seed)
