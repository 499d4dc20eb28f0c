"""`gendet detect --engine ray` (Ray Data on a local 2-CPU Ray instance, 2 model actors) writes the
same records as the local engine for a folder of good and hostile images, and resumes like it."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from data.hostile_corpus import INVALID, build_hostile_corpus

from detect.helpers import make_good_images, read_jsonl
from gendet.cli.main import main

# The command docs/cluster.md gives for a local Ray instance (flags after the inputs and --output).
RAY_FLAGS = ["--engine", "ray", "--ray-actors", "2", "--ray-cpus-per-actor", "0.5", "--batch-size", "8"]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One Ray instance for the module: its start-up costs seconds on this machine."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """14 good images, then (a sub-folder, so walked after them) the hostile corpus."""
    folder = tmp_path_factory.mktemp("mixed")
    make_good_images(folder, 14)
    corpus = build_hostile_corpus(folder / "hostile")
    yield corpus
    os.chmod(corpus["unreadable"], 0o644)  # so pytest can clean up


@pytest.fixture(scope="module")
def mixed_folder(corpus: dict[str, Path]) -> Path:
    return corpus["plain_jpeg"].parent.parent


@pytest.fixture(scope="module")
def local_records(mixed_folder: Path, tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("local") / "scan.jsonl"
    code = main(["detect", str(mixed_folder), "--checkpoint", str(tiny_ckpt), "--output", str(out),
                 "--workers", "0", "--batch-size", "8"])
    assert code == 1  # the hostile files fail, so the exit code says "some inputs failed"
    return read_jsonl(out)


def _assert_same(got: list[dict], want: list[dict]) -> None:
    assert [r["path"] for r in got] == [r["path"] for r in want]  # same inputs, same order
    for g, w in zip(got, want, strict=True):
        assert {k: g[k] for k in ("label", "threshold", "model", "error")} == \
               {k: w[k] for k in ("label", "threshold", "model", "error")}, g["path"]
        if w["score"] is None:
            assert g["score"] is None
        else:
            assert g["score"] == pytest.approx(w["score"], abs=1e-6), g["path"]


def test_ray_engine_writes_the_local_records(local_ray, corpus, mixed_folder, tiny_ckpt, local_records, tmp_path,
                                             capsys) -> None:
    # One Ray run (each costs ~10-20 s here) checks both: it resumes a file that holds the local engine's
    # first 3 records (all good images) and a partial 4th, and must finish it into the local engine's file.
    assert all(r["error"] is None for r in local_records[:4])
    out = tmp_path / "ray.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in local_records[:4])
    out.write_text(text[: len(text) - 30])
    capsys.readouterr()
    assert main(["detect", str(mixed_folder), "--checkpoint", str(tiny_ckpt), "--output", str(out), "--resume",
                 *RAY_FLAGS]) == 1
    assert "3 already done (resume)" in capsys.readouterr().err
    records = read_jsonl(out)
    _assert_same(records, local_records)
    errors = {r["path"]: r["error"] for r in records[3:] if r["error"]}  # what the Ray run wrote
    assert len(errors) == len(INVALID) - (1 if os.geteuid() == 0 else 0)  # root can read 'unreadable'
    assert errors[os.path.abspath(corpus["dir_jpg"])] == "is a directory, not an image file"
    assert errors[os.path.abspath(corpus["broken_symlink"])] == "broken symbolic link"
    assert errors[os.path.abspath(corpus["zero_bytes"])] == "empty file (0 bytes)"
    assert {"fake", "real"} <= {r["label"] for r in records[3:]}


def test_ray_options_need_the_ray_engine(tiny_ckpt, mixed_folder, capsys) -> None:
    assert main(["detect", str(mixed_folder), "--checkpoint", str(tiny_ckpt), "--address", "auto"]) == 2
    assert "--engine ray" in capsys.readouterr().err
