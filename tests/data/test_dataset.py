"""ImageDataset + collate_items: one result per input, errors kept, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from gendet.data import ImageDataset, ImageTransform, Preprocess, Sample, collate_items, read_samples, sample_seed

from .hostile_corpus import INVALID, VALID, build_hostile_corpus

SIZE = 32


def _expected_invalid(corpus: dict[str, Path]) -> set[str]:
    bad = set(INVALID)
    if os.access(corpus["unreadable"], os.R_OK):  # root reads chmod-000 files
        bad.discard("unreadable")
    return bad


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], dict[str, Path]]:
    root = tmp_path_factory.mktemp("mixed")
    corpus = build_hostile_corpus(root)
    rng = np.random.default_rng(0)
    for i in range(6):  # ordinary good images too
        arr = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
        path = root / f"good_{i}.png"
        Image.fromarray(arr).save(path)
        corpus[f"good_{i}"] = path
    samples = [Sample(path=p, label=i % 2) for i, p in enumerate(corpus.values())]
    return samples, corpus


def _run(samples: list[Sample], workers: int, train: bool = False) -> list[dict]:
    ds = ImageDataset(samples, ImageTransform(Preprocess(size=SIZE), train=train), seed=3)
    loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_items)
    return list(loader)


@pytest.mark.parametrize("workers", [0, 2])
def test_one_result_per_input_never_raises(mixed, workers: int) -> None:
    samples, corpus = mixed
    batches = _run(samples, workers)
    good_paths = [p for b in batches for p in b["path"]]
    err_paths = [p for b in batches for p, _ in b["errors"]]
    assert len(good_paths) + len(err_paths) == len(samples)
    assert sorted(good_paths + err_paths) == sorted(str(s.path) for s in samples)
    bad = _expected_invalid(corpus)
    assert set(err_paths) == {str(corpus[n]) for n in bad}
    assert all(reason for b in batches for _, reason in b["errors"])
    for b in batches:
        n = len(b["path"])
        assert (b["image"].shape == (n, 3, SIZE, SIZE)) if n else (b["image"].numel() == 0)
        assert torch.isfinite(b["image"]).all()
        assert b["label"].tolist() == [samples[i].label for i in b["index"].tolist()]


def test_all_bad_batch_is_empty_not_error(mixed) -> None:
    samples, corpus = mixed
    bad = [s for s in samples if str(s.path) in {str(corpus[n]) for n in ("zero_bytes", "dir_jpg", "text_as_png")}]
    (batch,) = _run(bad, 0)
    assert batch["image"].numel() == 0 and batch["label"].numel() == 0
    assert len(batch["errors"]) == 3


def test_items_independent_of_workers_and_order(mixed) -> None:
    samples, corpus = mixed
    good = [s for s in samples if s.path in {corpus[n] for n in VALID}]
    a = torch.cat([b["image"] for b in _run(good, 0, train=True)])
    b = torch.cat([b["image"] for b in _run(good, 2, train=True)])
    assert torch.equal(a, b)
    ds = ImageDataset(good, ImageTransform(Preprocess(size=SIZE), train=True), seed=3)
    assert torch.equal(ds[3]["image"], a[3])  # single access == batched access


def test_sample_seed_depends_on_seed_epoch_index_only() -> None:
    r1 = sample_seed(0, 0, 5).integers(0, 2**31, 4)
    assert np.array_equal(r1, sample_seed(0, 0, 5).integers(0, 2**31, 4))
    assert not np.array_equal(r1, sample_seed(0, 1, 5).integers(0, 2**31, 4))
    assert not np.array_equal(r1, sample_seed(0, 0, 6).integers(0, 2**31, 4))


def test_reader_plus_dataset_over_hostile_folder(tmp_path: Path) -> None:
    corpus = build_hostile_corpus(tmp_path / "0_real")
    (tmp_path / "1_fake").mkdir()
    Image.new("RGB", (40, 40), (9, 9, 9)).save(tmp_path / "1_fake" / "f.png")
    samples = read_samples(tmp_path)
    listed = {str(s.path) for s in samples}
    assert str(corpus["dir_jpg"]) not in listed  # a folder named x.jpg is not an image
    assert str(corpus["broken_symlink"]) in listed  # but a broken link is reported, not hidden
    assert str(corpus["non_utf8_name"]) in listed
    batches = _run(samples, 0)
    n_out = sum(len(b["path"]) + len(b["errors"]) for b in batches)
    assert n_out == len(samples)
