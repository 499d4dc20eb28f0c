"""`gendet eval`'s job: blocks per degradation, every bad file once, the eval JSON."""

from __future__ import annotations

import shutil

from gendet.data.layouts import read_samples
from gendet.evaluation.degradations import DEGRADATIONS
from gendet.evaluation.eval_job import eval_record, evaluate_blocks
from gendet.models import create_detector


def test_every_degradation_and_the_errors_once(genimage_root, tmp_path) -> None:
    root = tmp_path / "data"
    shutil.copytree(genimage_root, root)
    bad = next((root / "gen_a" / "val" / "ai").iterdir())
    bad.write_bytes(b"not an image")
    samples = [s for s in read_samples(root) if s.split == "val"]
    det = create_detector("tiny_cnn")
    pp = det.preprocess("jpeg")
    blocks = evaluate_blocks(det, samples, pp, 0.5, "fixed", "all", 8, 0, "cpu", 0, progress=False)
    assert set(blocks.table) == {"none", *DEGRADATIONS} and blocks.main == "none"
    assert [p for p, _ in blocks.errors] == [str(bad)]  # once, not once per degradation
    rec = eval_record(blocks, samples, pp, None, model="tiny_cnn", seed=0)
    assert rec["n"] == len(samples) - 1 and rec["degradation"] == "all" and rec["model"] == "tiny_cnn"
    assert set(rec["degradations"]) == set(blocks.table) and rec["degradation_summary"]["mean"] is not None
    assert rec["generators"] == ["gen_a", "gen_b"] and rec["splits"] == ["val"] and "explanation" not in rec

    one = evaluate_blocks(det, samples, pp, 0.5, "fixed", "jpeg_30", 8, 0, "cpu", 0, progress=False)
    assert set(one.table) == {"jpeg_30"} and "degradations" not in eval_record(one, samples, pp, {"n": 0})
