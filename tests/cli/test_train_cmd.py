"""`gendet train`: the CLI contract (files, config keys, logs) and its usage errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gendet.cli.main import main
from gendet.models.checkpoint import load_checkpoint, read_config

CONFIG_KEYS = {
    "model", "model_config", "preprocess", "align", "data_root", "subset", "layout", "seed", "epochs",
    "batch_size", "lr", "weight_decay", "warmup", "grad_accum", "device", "workers", "amp", "patience", "holdout",
    "threshold", "threshold_source", "threshold_val", "best_epoch", "val_metrics", "n_train", "n_val",
    "decode_errors", "weights", "backbone", "command", "gendet_version", "git_commit",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "tiny_cnn", "--data", str(root), "--subset", "gen_a", "--out", str(out),
            "--epochs", "2", "--batch-size", "8", "--holdout", "0.25", "--no-progress", *extra]


def test_train_end_to_end(genimage_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ckpt"
    assert main(_args(genimage_root, out, "--log-every", "1")) == 0
    printed = capsys.readouterr().out
    assert "starts from scratch" in printed and "best epoch" in printed and "model.safetensors" in printed

    for name in ("model.safetensors", "config.json", "train_log.jsonl", "train_log.csv", "train_state/last.pt"):
        assert (out / name).is_file(), name
    cfg = read_config(out)
    assert CONFIG_KEYS <= cfg.keys(), CONFIG_KEYS - cfg.keys()
    assert cfg["model"] == "tiny_cnn" and cfg["subset"] == "gen_a" and cfg["layout"] == "genimage"
    assert cfg["data_root"] == str(genimage_root.resolve()) and cfg["align"] == cfg["preprocess"]["align"] == "jpeg"
    assert (cfg["threshold"], cfg["threshold_source"]) == (0.5, "fixed")
    assert cfg["weights"] is None and cfg["backbone"] == "from scratch"
    assert cfg["n_train"] + cfg["n_val"] == 24 and cfg["n_val"] > 0
    assert set(cfg["val_metrics"]) >= {"auc", "acc", "real_acc", "fake_acc", "ap", "threshold"}
    assert cfg["command"].startswith("gendet train --model tiny_cnn") and "--seed 0" in cfg["command"]

    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert rows[0]["kind"] == "start"
    val_rows = [r for r in rows if r["kind"] == "val"]
    assert [r["epoch"] for r in val_rows] == [1, 2]
    assert all(0.0 <= r["val_auc"] <= 1.0 and r["loss"] > 0 for r in val_rows)
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, cfg["global_step"] + 1))
    with open(out / "train_log.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(train_rows) + len(val_rows)
    assert {"step", "epoch", "lr", "loss", "val_auc"} <= set(table[0])

    detector, _ = load_checkpoint(out)
    assert detector.name == "tiny_cnn"


def test_existing_run_needs_resume_or_overwrite(genimage_root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ckpt"
    assert main(_args(genimage_root, out, "--epochs", "1")) == 0
    first = load_file(str(out / "model.safetensors"))
    capsys.readouterr()

    assert main(_args(genimage_root, out, "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err

    # resuming a finished run reproduces it; --overwrite starts again from the same seed
    assert main(_args(genimage_root, out, "--epochs", "1", "--resume")) == 0
    assert read_config(out)["resumed"] is True
    (out / "eval").mkdir()
    assert main(_args(genimage_root, out, "--epochs", "1", "--overwrite")) == 0
    assert not (out / "eval").exists()
    again = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)

    # --overwrite with a bad argument fails before anything is deleted
    assert main(_args(genimage_root, out, "--overwrite", "--subset", "no_such_subset")) == 2
    assert (out / "model.safetensors").is_file() and (out / "train_state" / "last.pt").is_file()

    assert main(_args(genimage_root, out, "--resume", "--overwrite")) == 2
    assert main(_args(genimage_root, tmp_path / "fresh", "--resume")) == 2
    # a resume with different settings is refused with the reason
    capsys.readouterr()
    assert main(_args(genimage_root, out, "--epochs", "1", "--resume", "--batch-size", "4")) == 2
    assert "batch_size" in capsys.readouterr().err


def test_set_overrides_and_threshold_val(genimage_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    args = _args(genimage_root, out, "--epochs", "1", "--set", "image_size=40", "--set", "width=8",
                 "--set", "resize=false", "--threshold", "val", "--align", "png")
    assert main(args) == 0
    cfg = read_config(out)
    assert cfg["model_config"]["image_size"] == 40 and cfg["model_config"]["width"] == 8
    assert cfg["model_config"]["resize"] is False and cfg["preprocess"]["size"] == 40
    assert cfg["overrides"] == {"image_size": 40, "width": 8, "resize": False}
    assert cfg["align"] == "png" and cfg["threshold_source"] == "val"
    assert cfg["threshold"] == cfg["threshold_val"]
    assert "--set image_size=40" in cfg["command"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "image_size"], "KEY=VALUE"),
        (["--set", "no_such_key=1"], "unknown config keys"),
        (["--model", "no_such_model"], "unknown model"),
        (["--weights", "/nonexistent/w.pth"], "not a file"),
        (["--subset", "no_such_subset"], "no_such_subset"),
        (["--holdout", "1.5"], "holdout"),
        (["--batch-size", "0"], "batch_size"),
    ],
)
def test_usage_errors(genimage_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                      extra: list[str], message: str) -> None:
    assert main(_args(genimage_root, tmp_path / "ckpt", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ckpt" / "model.safetensors").exists()


def test_weights_for_a_model_without_backbone(genimage_root: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not used")
    assert main(_args(genimage_root, tmp_path / "ckpt", "--weights", str(weights))) == 2
    assert "cannot load --weights" in capsys.readouterr().err


def test_missing_data_root(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_args(tmp_path / "nope", tmp_path / "ckpt")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_constants_match_the_library() -> None:
    # the CLI spells these out to keep `gendet --help` free of heavy imports
    from gendet.cli import train_common as train_cmd
    from gendet.data.layouts import LAYOUTS
    from gendet.training import run_dir
    from gendet.training.logs import CSV_FILE, JSONL_FILE
    from gendet.training.trainer import AMP_MODES, STATE_DIR, STATE_FILE

    assert train_cmd.LAYOUT_CHOICES == ("auto", *LAYOUTS)
    assert train_cmd.AMP_CHOICES == AMP_MODES
    assert run_dir.STATE_PATH == Path(STATE_DIR) / STATE_FILE
    assert {JSONL_FILE, CSV_FILE, STATE_DIR} <= set(run_dir.RUN_FILES)


def test_preset_and_required_arguments(tmp_path):
    assert main(["train", "--out", str(tmp_path / "a")]) == 2  # neither --model/--data nor --preset
    assert main(["train", "--preset", "default", "--model", "npr", "--out", str(tmp_path / "b")]) == 2
