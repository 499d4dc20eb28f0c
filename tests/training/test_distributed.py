"""DDP through a real torchrun: 2 gloo processes on CPU train tiny_cnn for 2 steps; both ranks end with
bit-identical weights, only rank 0 writes, and the 2-rank checkpoint and resume state load and continue
in one process. The torchrun command is the one docs/cluster.md gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gendet.cli.main import main
from gendet.models.checkpoint import load_checkpoint, read_config
from gendet.training import distributed
from gendet.training.distributed import DistInfo, rank_shard, state_sha256
from gendet.training.trainer import epoch_batches

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
RUN_FILES = {"model.safetensors", "config.json", "train_log.jsonl", "train_log.csv", "train_state/last.pt"}


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "tiny_cnn", "--data", str(data), "--out", str(out), "--batch-size", "4",
            "--holdout", "0.25", "--device", "cpu", "--no-progress", *extra]


def make_binary_data(root: Path, n_per_class: int = 8, size: int = 32) -> Path:
    """0_real/1_fake with n_per_class noise images each; fakes carry a bright dot grid."""
    rng = np.random.default_rng(0)
    for cls in ("0_real", "1_fake"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            if cls == "1_fake":
                arr[::2, ::2] = 255
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(data, out, stdout) of one 2-rank torchrun (the slow part: started once for the module)."""
    tmp = tmp_path_factory.mktemp("ddp")
    data, out = make_binary_data(tmp / "data"), tmp / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*TORCHRUN, "-m", "gendet", *train_args(data, out, "--max-steps", "2")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data, out, proc.stdout


def test_ranks_end_with_identical_weights_and_rank0_saved_them(ddp_run) -> None:
    _, out, _ = ddp_run
    cfg = read_config(out)
    assert cfg["global_step"] == 2 and cfg["stop_reason"] == "max_steps"
    d = cfg["distributed"]
    assert d["world_size"] == 2 and d["backend"] == "gloo"
    h0, h1 = d["rank_state_sha256"]
    assert h0 == h1  # DDP kept the ranks in step (without it they differ: each trains on its own share)
    detector, _ = load_checkpoint(out, "cpu")  # the 2-rank checkpoint loads in a single process
    assert state_sha256(detector) == h0


def test_only_rank0_writes(ddp_run) -> None:
    _, out, stdout = ddp_run
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == RUN_FILES  # nothing else, no partial (.tmp) files
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows].count("start") == 1 and rows[0]["world_size"] == 2
    assert [r["kind"] for r in rows].count("val") == 1
    assert stdout.count("stopped: max_steps") == 1  # the summary is printed by rank 0 only


def test_two_rank_state_resumes_in_one_process(ddp_run, tmp_path: Path) -> None:
    data, out, _ = ddp_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    assert main(train_args(data, run, "--max-steps", "3", "--resume")) == 0
    cfg = read_config(run)
    assert cfg["global_step"] == 3 and "distributed" not in cfg and cfg["resumed"] is True
    detector, _ = load_checkpoint(run, "cpu")
    assert state_sha256(detector) != read_config(out)["distributed"]["rank_state_sha256"][0]  # it trained on


def test_global_batches_are_split_over_ranks_without_overlap() -> None:
    for batch in epoch_batches(37, 8, seed=3, epoch=1):
        for world in (1, 2, 3):
            shares = [rank_shard(batch, DistInfo(rank=r, world_size=world)) for r in range(world)]
            assert sorted(i for s in shares for i in s) == sorted(batch)  # each sample once per step
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_helpers_are_local_without_torchrun() -> None:
    assert distributed.info() == DistInfo() and not DistInfo().enabled
    assert distributed.all_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.gather_ints([3, 0]) == [[3, 0]]
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.setup("cpu") == (DistInfo(), "cpu")


def test_more_cuda_ranks_than_gpus_is_a_clear_error(monkeypatch) -> None:
    import torch

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match="one GPU per process: local rank 1 of a node with 1 GPU"):
        distributed.setup("cuda")
