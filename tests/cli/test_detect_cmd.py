"""`gendet detect` end to end (in-process): verdict line, record streams, inputs, exit codes 0/1/2."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest
from detect.helpers import make_checkpoint, make_good_images

from gendet.cli.main import main
from gendet.detect import model as model_mod


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", threshold=0.65, source="val")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    make_good_images(folder / "sub", 6)
    return folder


def detect(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["detect", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_one_file_prints_a_verdict(capsys, ckpt, images) -> None:
    img = sorted((images / "sub").glob("*.png"))[0]
    rc, out, _ = detect(capsys, str(img), "--checkpoint", str(ckpt))
    assert rc == 0
    assert out.startswith(f"{img}: ") and ("GENERATED (fake)" in out or "REAL" in out)
    assert "threshold 0.6500 (val)" in out and "model tiny_cnn" in out
    score = float(out.split("score ")[1].split()[0])
    assert 0.0 <= score <= 1.0


def test_one_bad_file_exits_1(capsys, ckpt, tmp_path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    rc, out, err = detect(capsys, str(bad), "--checkpoint", str(ckpt))
    assert rc == 1 and out == "" and "not a recognised image format" in err


def test_folder_to_csv(capsys, ckpt, images, tmp_path) -> None:
    out_csv = tmp_path / "scan.csv"
    rc, _, err = detect(capsys, str(images), "--checkpoint", str(ckpt), "--output", str(out_csv), "--workers", "0")
    assert rc == 0 and "6 inputs" in err and "0 errors" in err
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    assert list(rows[0]) == ["path", "score", "label", "threshold", "model", "error", "model_version", "verdict",
                             "reason", "conflict", "provenance", "provenance_detail"]
    assert all(r["label"] in ("fake", "real") and r["error"] == "" and float(r["threshold"]) == 0.65 for r in rows)


def test_some_failures_exit_1_and_keep_the_rest(capsys, ckpt, images, tmp_path) -> None:
    folder = tmp_path / "f"
    make_good_images(folder, 3)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    rc, out, err = detect(capsys, str(folder), "--checkpoint", str(ckpt), "--workers", "0")
    recs = jsonl(out)
    assert rc == 1 and len(recs) == 4 and "1 errors" in err
    assert sum(r["error"] is not None for r in recs) == 1


def test_glob_list_file_and_stdin(capsys, ckpt, images, tmp_path, monkeypatch) -> None:
    pngs = sorted(str(p) for p in (images / "sub").glob("*.png"))
    jpgs = sorted(str(p) for p in (images / "sub").glob("*.jpg"))
    rc, out, _ = detect(capsys, str(images / "**" / "*.png"), "--checkpoint", str(ckpt), "--workers", "0")
    assert rc == 0 and sorted(r["path"] for r in jsonl(out)) == pngs

    lst = tmp_path / "paths.txt"
    lst.write_text("\n".join(jpgs) + "\n")
    rc, out, _ = detect(capsys, f"@{lst}", "--checkpoint", str(ckpt), "--workers", "0")
    assert rc == 0 and [r["path"] for r in jsonl(out)] == jpgs
    rc, out, _ = detect(capsys, "--paths-from", str(lst), "--checkpoint", str(ckpt), "--workers", "0")
    assert rc == 0 and [r["path"] for r in jsonl(out)] == jpgs

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(pngs[:2]).encode())))
    rc, out, _ = detect(capsys, "-", "--checkpoint", str(ckpt), "--workers", "0", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and [r["path"] for r in rows] == pngs[:2]


def test_threshold_override(capsys, ckpt, images) -> None:
    rc, out, _ = detect(capsys, str(images), "--checkpoint", str(ckpt), "--threshold", "0", "--workers", "0")
    recs = jsonl(out)
    assert rc == 0 and {r["label"] for r in recs} == {"fake"} and {r["threshold"] for r in recs} == {0.0}


def test_default_model(capsys, ckpt, images, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(model_mod, "default_checkpoint_dir", lambda: ckpt)
    rc, out, _ = detect(capsys, str(images), "--workers", "0")
    assert rc == 0 and len(jsonl(out)) == 6
    monkeypatch.setattr(model_mod, "default_checkpoint_dir", lambda: tmp_path / "not_shipped")
    rc, out, err = detect(capsys, str(images))
    assert rc == 2 and "default model is not installed" in err and "--checkpoint" in err


@pytest.mark.parametrize(
    "extra",
    [
        [],  # no inputs
        ["IMAGES", "--batch-size", "0"],
        ["IMAGES", "--workers", "-1"],
        ["IMAGES", "--threads", "0"],
        ["@/nonexistent/list.txt"],
        ["IMAGES", "--resume"],
        ["IMAGES", "--threshold", "2"],
        ["IMAGES", "--device", "cuda:0"] if not __import__("torch").cuda.is_available() else ["-", "-"],
        ["IMAGES", "--output", "EXISTING"],
        ["IMAGES", "--checkpoint", "/nonexistent/ckpt"],
    ],
)
def test_usage_errors_exit_2(capsys, ckpt, images, tmp_path, extra) -> None:
    existing = tmp_path / "old.jsonl"
    existing.write_text("")
    args = [{"IMAGES": str(images), "EXISTING": str(existing)}.get(a, a) for a in extra]
    if "--checkpoint" not in args:
        args += ["--checkpoint", str(ckpt)]
    rc, out, err = detect(capsys, *args)
    assert rc == 2 and "error:" in err and out == ""


def test_model_name_picks_a_shipped_model(capsys, images) -> None:
    rc, out, _ = detect(capsys, str(images), "--model", "fast", "--workers", "0")
    recs = jsonl(out)
    assert rc == 0 and len(recs) == 6 and all(r["model"].startswith("spec") for r in recs)


def test_resume_counts_earlier_errors_and_refuses_another_model(capsys, ckpt, images, tmp_path) -> None:
    bad = tmp_path / "in" / "bad.png"
    bad.parent.mkdir()
    bad.write_text("not an image")
    out = tmp_path / "scan.jsonl"
    assert detect(capsys, str(bad), "--checkpoint", str(ckpt), "-o", str(out), "--workers", "0")[0] == 1
    rc, _, err = detect(capsys, str(bad), str(images), "--checkpoint", str(ckpt), "-o", str(out), "--resume",
                        "--workers", "0")
    assert rc == 1 and "1 errors among the records kept from before" in err  # not 0 over the earlier failure
    other = make_checkpoint(tmp_path / "other", threshold=0.5, seed=1)  # same architecture, other weights
    rc, _, err = detect(capsys, str(images), "--checkpoint", str(other), "-o", str(out), "--resume")
    assert rc == 2 and "--force" in err
    rc, _, _ = detect(capsys, str(images), "--checkpoint", str(other), "-o", str(out), "--resume", "--force")
    assert rc == 1  # appended (nothing new to scan); the earlier error still counts


def test_duplicate_inputs_give_one_record_and_at_names_are_files(capsys, ckpt, images, tmp_path, monkeypatch) -> None:
    img = sorted((images / "sub").glob("*.png"))[0]
    at = tmp_path / "@x.png"
    at.write_bytes(img.read_bytes())
    monkeypatch.chdir(tmp_path)
    rc, out, err = detect(capsys, str(img), str(img), str(images), "@x.png", "--checkpoint", str(ckpt),
                          "-o", "-", "--workers", "0")
    recs = jsonl(out)
    assert rc == 0 and len(recs) == 7 and len({r["path"] for r in recs}) == 7
    assert str(at) in {r["path"] for r in recs} and "2 inputs named a path already scanned" in err


def _summary_lines(capsys, model_seconds: float, total: int, workers: int) -> str:
    from gendet.cli.detect_cmd import _print_summary
    from gendet.detect.pipeline import ScanSummary
    from gendet.detect.scan import ScanResult

    summary = ScanSummary(scored=total, real=total, seconds=10.0, model_seconds=model_seconds, model_threads=1)
    _print_summary(ScanResult(summary, "out.jsonl", "jsonl"), "out.jsonl", workers)
    return capsys.readouterr().err


def test_the_summary_says_when_decoding_bound_the_scan(capsys, monkeypatch) -> None:
    monkeypatch.setattr("gendet.cli.detect_cmd.os.cpu_count", lambda: 4)
    err = _summary_lines(capsys, 9.7, 300, 1)
    assert "scoring 97 % of the time" in err and "decoding bound" not in err
    err = _summary_lines(capsys, 3.0, 300, 1)
    assert "scoring 30 % of the time" in err
    assert "decoding bound this scan: the model scored during 30 %" in err and "more --workers may help" in err
    assert "more --workers" not in _summary_lines(capsys, 3.0, 300, 4)  # every core decodes already
    assert "decoding bound" not in _summary_lines(capsys, 3.0, 20, 1)  # a few inputs: start-up, not decoding
    assert "scoring" not in _summary_lines(capsys, 0.0, 300, 0)  # the Ray engine's actors score: no account
