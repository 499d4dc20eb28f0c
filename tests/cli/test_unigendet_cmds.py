"""UniGenDet from the command line: both training stages, resume, generate; the ablation run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from gendet.bench.ablation import VARIANTS, run_ablation
from gendet.bench.ablations import build_named_report
from gendet.bench.study import interval
from gendet.cli.main import main
from gendet.detect.model import default_checkpoint_dir
from gendet.evaluation.fidelity import TinyCNNExtractor

# A CPU-test size that keeps the shipped autoencoder (ae_channels 24/48/96, 4 latent channels).
MODEL = {"image_size": 32, "hidden": 32, "depth": 2, "heads": 2, "vision_patch": 8}
SETS = [x for k, v in MODEL.items() for x in ("--set", f"{k}={v}")]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _train(root: Path, out: Path, *extra: str) -> int:
    return main(["train", "--model", "unigendet", "--data", str(root), "--subset", "gen_a", "--out", str(out),
                 "--batch-size", "4", "--no-progress", *extra])


@pytest.fixture(scope="module")
def stages(genimage_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("unigendet")
    torch.set_num_threads(1)
    assert _train(genimage_root, base / "gduf", "--steps", "3", *SETS) == 0
    assert _train(genimage_root, base / "diga", "--stage", "diga", "--init", str(base / "gduf"), "--steps", "2") == 0
    return base / "gduf", base / "diga"


def test_both_stages_write_checkpoints(stages) -> None:
    gduf, diga = (json.loads((d / "config.json").read_text()) for d in stages)
    assert gduf["model"] == diga["model"] == "unigendet"
    assert gduf["unified"]["stage"] == "gduf" and gduf["global_step"] == 3
    assert gduf["unified"]["w_cls"] == 0.2 and gduf["unified"]["w_flow"] == 1.0 and gduf["unified"]["w_text"] == 1.0
    assert diga["unified"]["stage"] == "diga" and diga["init"] == str(stages[0].resolve())
    assert diga["model_config"]["image_size"] == 32 and "unigendet" in gduf["command"]
    assert gduf["text_loss"].startswith("absent")


@pytest.mark.parametrize("args, message", [
    (["--stage", "diga", "--steps", "1"], "needs --init"),
    (["--init", "x", "--steps", "1"], "--init is for --stage diga"),
    (["--weights", "w.pt", "--steps", "1"], "no pretrained backbone"),
    (["--recipe", "nope"], "unknown --recipe"),
])
def test_usage_errors(genimage_root, tmp_path, capsys, args, message) -> None:
    assert _train(genimage_root, tmp_path / "x", *args) == 2
    assert message in capsys.readouterr().err


def test_diga_rejects_a_non_unigendet_init(genimage_root, tmp_path, capsys) -> None:
    code = _train(genimage_root, tmp_path / "x", "--stage", "diga", "--init", str(default_checkpoint_dir()))
    assert code == 2 and "not unigendet" in capsys.readouterr().err


def test_interrupted_stage_resumes(genimage_root, tmp_path) -> None:
    out = tmp_path / "run"
    assert _train(genimage_root, out, "--steps", "3", "--max-steps", "2", "--save-every", "1", *SETS) == 0
    assert json.loads((out / "config.json").read_text())["global_step"] == 2
    assert _train(genimage_root, out, "--steps", "3", "--resume", *SETS) == 0
    assert json.loads((out / "config.json").read_text())["global_step"] == 3


def test_generate_writes_reproducible_pngs(stages, tmp_path) -> None:
    outs = []
    for name in ("a", "b"):
        assert main(["generate", "--checkpoint", str(stages[1]), "--n", "3", "--steps", "2", "--seed", "7",
                     "--out", str(tmp_path / name)]) == 0
        outs.append(tmp_path / name)
    files = sorted(p.name for p in outs[0].glob("*.png"))
    assert files == ["00000.png", "00001.png", "00002.png", "grid.png"]
    assert all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files)
    record = json.loads((outs[0] / "generate.json").read_text())
    assert record["n"] == 3 and record["seed"] == 7 and record["steps"] == 2


def test_generate_refuses_a_detector_that_cannot_generate(tmp_path, capsys) -> None:
    code = main(["generate", "--checkpoint", str(default_checkpoint_dir()), "--n", "2", "--out", str(tmp_path)])
    assert code == 2 and "cannot generate" in capsys.readouterr().err


def test_ablation_runs_every_variant_and_reuses_finished_runs(genimage_root, tmp_path) -> None:
    recipe = {"gduf_steps": 2, "diga_steps": 1, "lr": 1e-3, "det_batch": 4}
    kw = dict(seeds=(0,), train_subset="gen_a", fidelity_n=6, progress=False, extractor=TinyCNNExtractor(),
              model_config=MODEL, recipe=recipe, cache_dir=tmp_path / "cache")
    first = run_ablation(genimage_root, tmp_path / "ab", **kw)
    assert set(first["table"]) == set(VARIANTS) == {"full", "w/o SMSA", "w/o GDUF", "w/o DIGA"}
    for row in first["table"].values():
        assert 0 <= row["auc_mean"]["mean"] <= 1 and row["kid"]["n"] == 1
    assert len(first["claims"]) == 3
    # stage-1 runs are shared: full and w/o DIGA come from one joint run; w/o GDUF has two separate runs
    names = sorted(p.parent.name for p in (tmp_path / "ab").glob("*/seed0"))
    assert names == ["stage1-smsa0-joint", "stage1-smsa1-detector", "stage1-smsa1-generator", "stage1-smsa1-joint",
                     "stage2-smsa0-gduf1-diga1", "stage2-smsa1-gduf0-diga1", "stage2-smsa1-gduf1-diga0",
                     "stage2-smsa1-gduf1-diga1"]
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "ab").rglob("model.safetensors")}
    again = run_ablation(genimage_root, tmp_path / "ab", **kw)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing retrained
    assert again["table"] == first["table"]
    assert all(first["runs"][v][0]["samples"].startswith("samples-") for v in VARIANTS)
    html, md = build_named_report("unigendet", "tiny", {"ablation": first, "command": "gendet bench ...",
                                                        "timings": {}}, tmp_path)
    text = md.read_text()
    assert html.is_file() and "w/o SMSA" in text and "p (Welch, seeds)" in text and "text term: absent" in text


def test_interval_is_a_t_interval() -> None:
    out = interval([1.0, 2.0, 3.0])
    assert out["mean"] == 2.0 and abs(out["ci95"] - 4.302653 * 1.0 / 3 ** 0.5) < 1e-5
    assert interval([0.5])["ci95"] is None
