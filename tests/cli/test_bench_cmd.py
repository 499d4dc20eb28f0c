"""`gendet bench` from the command line, on a GenImage-layout root given with --data."""

from __future__ import annotations

import json

from gendet.cli.main import main


def test_bench_on_user_data_writes_results_and_report(genimage_root, tmp_path):
    out = tmp_path / "bench"
    rc = main(["bench", "--preset", "tiny", "--data", str(genimage_root), "--out", str(out),
               "--detectors", "npr", "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"].startswith("gendet bench --preset tiny")
    m = res["matrix"]["npr"]["acc"]
    assert m["rows"] == m["columns"] == ["gen_a", "gen_b"]
    assert set(res["degradations"]["npr"]["gen_a"]["table"]) == {
        "none", "resize_112", "resize_64", "jpeg_65", "jpeg_30", "blur_3", "blur_5"}
    assert res["data"]["subsets"]["gen_a"]["counts"]["val"] == {"ai": 8, "nature": 8}
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


def test_bench_usage_errors(tmp_path):
    assert main(["bench", "--preset", "standard", "--out", str(tmp_path / "x")]) == 2
    assert main(["bench", "--preset", "tiny", "--out", str(tmp_path / "x"), "--detectors", "nope"]) == 2
    assert main(["bench", "--preset", "tiny", "--out", str(tmp_path / "x"), "--weights", "univfd"]) == 2
