"""Resume: an interrupted run ends exactly where an uninterrupted one does (same seed, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gendet.data.layouts import read_samples, select_split, split_holdout
from gendet.models.base import Detector
from gendet.models.checkpoint import read_config
from gendet.models.tiny_cnn import TinyCNN
from gendet.training import ResumeError, TrainConfig, train
from gendet.training.state import seed_everything

REPO = Path(__file__).resolve().parents[2]


class DropoutCNN(TinyCNN):
    """tiny_cnn + dropout, so the global torch RNG (restored on resume) matters."""

    name = "tiny_cnn_dropout"

    def __init__(self, **config) -> None:
        super().__init__(**config)
        self.drop = nn.Dropout(0.5)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(feats)).squeeze(-1)


def _data(root: Path):
    samples = select_split(read_samples(root, "auto", "gen_a"), "train")
    return split_holdout(samples, 0.25, seed=0)


def _model() -> Detector:
    seed_everything(0)
    return DropoutCNN()


def _comparable_log(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    # timings differ, and the start row records the interrupted call's own max_steps
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "config")} for r in rows]


@pytest.mark.parametrize(("workers", "save_every", "stop_after"), [(0, 0, 4), (0, 2, 6), (2, 1, 3)])
def test_interrupted_run_equals_uninterrupted(
    genimage_root: Path, tmp_path: Path, workers: int, save_every: int, stop_after: int
) -> None:
    train_s, val_s = _data(genimage_root)  # 18 train -> 3 steps/epoch at batch 6
    base = dict(epochs=3, batch_size=6, lr=3e-3, seed=7, workers=workers, patience=0, progress=False,
                log_every=1, save_every_steps=save_every)
    det_a = _model()
    pp = det_a.preprocess("jpeg")
    sum_a = train(det_a, train_s, val_s, pp, TrainConfig(**base), tmp_path / "a")

    # interrupted after `stop_after` optimizer steps (mid-epoch when not a multiple of 3) ...
    det_b = _model()
    part = train(det_b, train_s, val_s, pp, TrainConfig(**base, max_steps=stop_after), tmp_path / "b")
    assert part["stop_reason"] == "max_steps" and part["global_step"] == stop_after
    # ... then resumed in a fresh model object, whose own weights must not matter
    seed_everything(123)
    det_c = DropoutCNN()
    sum_c = train(det_c, train_s, val_s, pp, TrainConfig(**base), tmp_path / "b", resume=True)

    state_a, state_c = det_a.state_dict(), det_c.state_dict()
    assert state_a.keys() == state_c.keys()
    assert all(torch.equal(state_a[k], state_c[k]) for k in state_a)
    for key in ("val_metrics", "best_epoch", "threshold_val", "global_step", "stop_reason"):
        assert sum_a[key] == sum_c[key], key
    assert _comparable_log(tmp_path / "a") == _comparable_log(tmp_path / "b")
    a, c = load_file(str(tmp_path / "a/model.safetensors")), load_file(str(tmp_path / "b/model.safetensors"))
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_resume_refuses_changed_settings_or_data(genimage_root: Path, tmp_path: Path) -> None:
    train_s, val_s = _data(genimage_root)
    base = dict(epochs=2, batch_size=6, seed=1, progress=False)
    det = _model()
    pp = det.preprocess("jpeg")
    train(det, train_s, val_s, pp, TrainConfig(**base, max_steps=2), tmp_path / "r")
    with pytest.raises(ResumeError, match="batch_size"):
        train(_model(), train_s, val_s, pp, TrainConfig(**{**base, "batch_size": 4}), tmp_path / "r", resume=True)
    with pytest.raises(ResumeError, match="train"):
        train(_model(), train_s[1:], val_s, pp, TrainConfig(**base), tmp_path / "r", resume=True)
    with pytest.raises(ResumeError, match="nothing to resume"):
        train(_model(), train_s, val_s, pp, TrainConfig(**base), tmp_path / "empty", resume=True)
    state = next((tmp_path / "r").rglob("last.pt"))
    for damaged in (state.read_bytes()[:100], b"\x00" * 64, b""):
        state.write_bytes(damaged)
        with pytest.raises(ResumeError, match="damaged or not a gendet training state.*Delete it"):
            train(_model(), train_s, val_s, pp, TrainConfig(**base), tmp_path / "r", resume=True)
    torch.save({"something": 1}, state)
    with pytest.raises(ResumeError, match="missing version, fingerprint, config"):
        train(_model(), train_s, val_s, pp, TrainConfig(**base), tmp_path / "r", resume=True)


def _cli(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--model", "tiny_cnn", "--data", str(data), "--subset", "gen_a", "--out", str(out),
        "--epochs", "8", "--batch-size", "4", "--lr", "3e-3", "--seed", "5", "--holdout", "0.25",
        "--patience", "0", "--save-every", "1", "--no-progress", *extra,
    ]


def _global_step(state_file: Path) -> int:
    try:
        return int(torch.load(state_file, map_location="cpu", weights_only=True)["global_step"])
    except FileNotFoundError:
        return -1


def test_killed_subprocess_resumes_to_the_same_result(genimage_root: Path, tmp_path: Path) -> None:
    from gendet.cli.main import main

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # same thread count as in-process
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "gendet", *_cli(genimage_root, killed)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_file = killed / "train_state" / "last.pt"
    deadline = time.monotonic() + 60
    while _global_step(state_file) < 2:
        assert proc.poll() is None, f"training exited early: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no resume state after 60 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists(), "the run finished before it could be killed"
    step_at_kill = _global_step(state_file)

    # resume and the uninterrupted reference run in this process (one thread, like the killed one):
    # everything the resumed run knows comes from the files the killed process left behind
    assert main(_cli(genimage_root, killed, "--resume")) == 0
    assert main(_cli(genimage_root, tmp_path / "straight")) == 0

    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ca, cb = read_config(tmp_path / "straight"), read_config(killed)
    for key in ("val_metrics", "best_epoch", "threshold_val", "global_step"):
        assert ca[key] == cb[key], key
    assert cb["resumed"] is True and 2 <= step_at_kill < cb["global_step"]
