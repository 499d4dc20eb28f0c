"""Tar shards: written in WebDataset format, read back by index to the same samples, bytes and tensors."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from gendet.data.dataset import ImageDataset
from gendet.data.layouts import read_samples
from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.data.shards import (
    INDEX_FILE,
    SUMMARY_FILE,
    ShardImageDataset,
    is_shard_dir,
    make_dataset,
    read_member,
    read_shard_samples,
    write_shards,
)


@pytest.fixture()
def manifest_root(tmp_path: Path) -> Path:
    """9 images of mixed formats, one 0-byte file and one missing file, listed in a manifest."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(9):
        name = f"img{i}.{('png', 'jpg', 'webp')[i % 3]}"
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(tmp_path / name)
        rows.append({"path": name, "label": i % 2, "split": "train" if i < 7 else "test", "generator": f"g{i % 2}"})
    (tmp_path / "empty.png").write_bytes(b"")
    rows.append({"path": "empty.png", "label": 1, "split": "train", "generator": "g1"})
    rows.append({"path": "missing.png", "label": 0, "split": "train", "generator": "g0"})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_shards_round_trip(manifest_root: Path, tmp_path: Path) -> None:
    samples = read_samples(manifest_root, "manifest")
    out = tmp_path / "shards"
    summary = write_shards(samples, out, shard_size=4, seed=0)
    assert is_shard_dir(out) and (out / INDEX_FILE).is_file()
    assert summary["n_samples"] == 10 and summary["n_shards"] == 3  # the missing file is left out, and listed
    assert [Path(p).name for p, _ in summary["errors"]] == ["missing.png"]
    assert summary["errors"][0][1] == "file does not exist"
    assert [s["count"] for s in summary["shards"]] == [4, 4, 2]
    assert json.loads((out / SUMMARY_FILE).read_text())["n_samples"] == 10

    back = read_shard_samples(out)
    originals = {str(s.path.resolve()): s for s in samples}
    assert len(back) == 10 and len({s.path for s in back}) == 10
    for s in back:
        src = originals[s.extra["source"]]
        assert (s.label, s.split, s.generator) == (src.label, src.split, src.generator)
        if src.path.stat().st_size:
            assert read_member(s) == src.path.read_bytes()  # the original bytes, not re-encoded
    assert [s.label for s in back] != sorted(s.label for s in back)  # shuffled: classes mixed across shards
    assert {s.generator for s in read_shard_samples(out, subset="g1")} == {"g1"}
    with pytest.raises(ValueError, match="available"):
        read_shard_samples(out, subset="nope")


def test_shards_are_plain_webdataset(manifest_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    write_shards(read_samples(manifest_root, "manifest"), out, shard_size=4)
    urls = sorted(str(p) for p in out.glob("shard-*.tar"))
    with tarfile.open(urls[0]) as tf:
        names = tf.getnames()
    assert len(names) == 8 and {n.split(".", 1)[1] for n in names} >= {"json"}
    keys = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False)]
    assert keys == [s.path.name.split(".")[0] for s in read_shard_samples(out)]  # the index follows the tars


def test_shard_dataset_gives_the_folder_dataset_items(manifest_root: Path, tmp_path: Path) -> None:
    samples = read_samples(manifest_root, "manifest")
    out = tmp_path / "shards"
    write_shards(samples, out, shard_size=3)
    back = read_shard_samples(out)
    transform = ImageTransform(Preprocess(size=16), train=False)
    shard_ds = make_dataset(back, transform)
    assert isinstance(shard_ds, ShardImageDataset) and type(make_dataset(samples, transform)) is ImageDataset
    by_source = {str(s.path.resolve()): i for i, s in enumerate(samples)}
    folder_ds = ImageDataset(samples, transform)
    for i, s in enumerate(back):
        got, want = shard_ds[i], folder_ds[by_source[s.extra["source"]]]
        assert got["error"] == want["error"], s.extra["source"]  # e.g. "empty file (0 bytes)" for both
        if want["error"] is None:
            assert torch.equal(got["image"], want["image"])
    assert sum(shard_ds[i]["error"] == "empty file (0 bytes)" for i in range(len(back))) == 1
