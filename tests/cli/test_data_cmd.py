"""`gendet data shard` and `gendet train --data SHARD_DIR`: the commands docs/cluster.md gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gendet.cli.main import main
from gendet.models.checkpoint import read_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def binary_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("0_real", "1_fake"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(8):
            arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            if cls == "1_fake":
                arr[::2, ::2] = 255
            Image.fromarray(arr).save(tmp_path / "data" / cls / f"{i}.png")
    return tmp_path / "data"


def test_shard_then_train_on_the_shards(binary_root: Path, tmp_path: Path, capsys) -> None:
    shards = tmp_path / "shards"
    assert main(["data", "shard", "--data", str(binary_root), "--out", str(shards), "--shard-size", "5"]) == 0
    assert "16 samples" in capsys.readouterr().out
    assert sorted(p.name for p in shards.iterdir()) == [
        "index.jsonl", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar", "shard-000003.tar", "shards.json"]
    summary = json.loads((shards / "shards.json").read_text())
    assert summary["source"]["layout"] == "binary" and summary["counts"] == {"train": {"0": 8, "1": 8}}
    assert summary["source"]["command"].startswith("gendet data shard --data")

    out = tmp_path / "run"
    assert main(["train", "--model", "tiny_cnn", "--data", str(shards), "--out", str(out), "--batch-size", "4",
                 "--max-steps", "2", "--holdout", "0.25", "--no-progress"]) == 0
    cfg = read_config(out)
    assert cfg["layout"] == "shards" and cfg["n_train"] + cfg["n_val"] == 16 and cfg["global_step"] == 2
    assert cfg["decode_errors"]["train"] == 0 and cfg["val_metrics"]["n"] == cfg["n_val"]


def test_shard_refuses_to_mix_into_a_used_folder(binary_root: Path, tmp_path: Path, capsys) -> None:
    shards = tmp_path / "shards"
    args = ["data", "shard", "--data", str(binary_root), "--out", str(shards), "--shard-size", "8"]
    assert main(args) == 0
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0 and len(list(shards.glob("shard-*.tar"))) == 2
    (shards / "notes.txt").write_text("mine")
    assert main([*args, "--overwrite"]) == 2 and (shards / "notes.txt").is_file()
    assert len(list(shards.glob("shard-*.tar"))) == 2  # refused before anything was removed
    assert main(["data"]) == 2
    assert main(["data", "shard", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
