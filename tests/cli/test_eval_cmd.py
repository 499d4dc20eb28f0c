"""End-to-end `gendet eval` on a tiny checkpoint and the GenImage-layout fixture."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from gendet.cli.main import main
from gendet.evaluation.degradations import DEGRADATIONS
from gendet.evaluation.metrics import METRIC_KEYS, compute_metrics
from gendet.models import create_detector
from gendet.models.checkpoint import save_checkpoint

CONTRACT_KEYS = {
    *METRIC_KEYS, "subsets", "degradation", "align", "data_root", "checkpoint", "command", "seed", "errors",
    "predictions_file",
}


def _checkpoint(path: Path, data_root: Path, threshold_val: float | None = 0.42) -> Path:
    torch.manual_seed(0)
    det = create_detector("tiny_cnn", image_size=32, width=8)
    pp = det.preprocess("jpeg")
    cfg = {"preprocess": pp.to_dict(), "align": "jpeg", "data_root": str(data_root), "subset": "gen_a", "seed": 0}
    if threshold_val is not None:
        cfg.update(threshold=threshold_val, threshold_source="val", threshold_val=threshold_val)
    return save_checkpoint(path, det, cfg)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, genimage_root):
    return _checkpoint(tmp_path_factory.mktemp("ckpt"), genimage_root)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_eval_writes_contract_json_and_csv(ckpt, genimage_root, tmp_path, capsys):
    out = tmp_path / "m.json"
    args = ["eval", "--checkpoint", str(ckpt), "--data", str(genimage_root), "--json", str(out), "--batch-size", "5"]
    rc = main(args)
    assert rc == 0
    res = json.loads(out.read_text())
    assert CONTRACT_KEYS <= set(res)
    assert res["n"] == 32 and res["threshold"] == 0.5 and res["threshold_source"] == "fixed"
    assert set(res["subsets"]) == {"gen_a", "gen_b"} and res["generators"] == ["gen_a", "gen_b"]
    for block in res["subsets"].values():
        assert set(METRIC_KEYS) <= set(block) and block["n"] == 16
    assert res["degradation"] == "none" and res["align"] == "jpeg" and res["errors"] == []
    assert res["splits"] == ["val"] and res["layout"] == "genimage" and res["seed"] == 0
    assert res["command"].startswith("gendet eval --checkpoint")

    rows = _rows(out.parent / res["predictions_file"])
    assert res["predictions_file"] == "m.predictions.csv" and len(rows) == 32
    assert list(rows[0]) == ["path", "label", "score", "generator", "degradation"]
    assert all("/val/" in r["path"] and r["degradation"] == "none" for r in rows)
    # the CSV is the evidence for the JSON: recomputing from it gives the same numbers
    again = compute_metrics([int(r["label"]) for r in rows], [float(r["score"]) for r in rows], 0.5, "fixed")
    assert {k: res[k] for k in METRIC_KEYS} == again
    assert "gen_a" in capsys.readouterr().out


def test_eval_all_degradations_default_path_and_val_threshold(ckpt, genimage_root):
    rc = main([
        "eval", "--checkpoint", str(ckpt), "--data", str(genimage_root), "--subset", "gen_b",
        "--degradation", "all", "--threshold", "val",
    ])
    assert rc == 0
    out = ckpt / "eval" / f"{genimage_root.name}_gen_b_all.json"
    res = json.loads(out.read_text())
    assert res["threshold"] == 0.42 and res["threshold_source"] == "val"
    assert list(res["degradations"]) == ["none", *DEGRADATIONS]
    assert res["subsets"] == {} and res["generators"] == ["gen_b"] and res["n"] == 16
    assert {k: res[k] for k in METRIC_KEYS} == {k: res["degradations"]["none"][k] for k in METRIC_KEYS}
    accs = [res["degradations"][k]["acc"] for k in DEGRADATIONS]
    assert res["degradation_summary"]["mean"] == pytest.approx(sum(accs) / 6)
    rows = _rows(out.with_name(out.stem + ".predictions.csv"))
    assert len(rows) == 7 * 16 and {r["degradation"] for r in rows} == {"none", *DEGRADATIONS}


def test_eval_undecodable_file_exit_1_with_results(tmp_path, make_genimage, capsys):
    root = make_genimage(tmp_path / "data", generators=("gen_a",), n_train=2, n_val=3, size=32)
    bad = root / "gen_a" / "val" / "ai" / "zz_broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ck = _checkpoint(tmp_path / "ck", root, threshold_val=None)
    out = tmp_path / "e.json"
    rc = main(["eval", "--checkpoint", str(ck), "--data", str(root), "--json", str(out), "--align", "png"])
    assert rc == 1
    res = json.loads(out.read_text())
    assert res["n"] == 6 and [p for p, _ in res["errors"]] == [str(bad)]
    assert res["align"] == "png" and res["align_checkpoint"] == "jpeg"
    err = capsys.readouterr().err
    assert "not comparable" in err


def test_eval_usage_errors_exit_2(ckpt, genimage_root, tmp_path, capsys):
    base = ["eval", "--data", str(genimage_root), "--json", str(tmp_path / "x.json")]
    no_val = _checkpoint(tmp_path / "noval", genimage_root, threshold_val=None)
    assert main([*base, "--checkpoint", str(no_val), "--threshold", "val"]) == 2
    assert "threshold_val" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(ckpt), "--threshold", "1.5"]) == 2
    assert main([*base, "--checkpoint", str(tmp_path / "missing")]) == 2
    assert main([*base, "--checkpoint", str(ckpt), "--subset", "nope"]) == 2
    assert "gen_a" in capsys.readouterr().err  # lists the available subsets
    broken = tmp_path / "broken_ckpt"
    shutil.copytree(ckpt, broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["model_config"]["width"] = 4  # weights no longer fit: strict loading must refuse
    (broken / "config.json").write_text(json.dumps(cfg))
    assert main([*base, "--checkpoint", str(broken)]) == 2
    assert "shape" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*base, "--checkpoint", str(ckpt), "--degradation", "blur_7"])
    assert e.value.code == 2
    assert not (tmp_path / "x.json").exists()
