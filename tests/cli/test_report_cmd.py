"""`gendet report RUN_DIR`: writes report.html + report.md and prints their paths; bad directories exit 2."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gendet.cli.main import main

# the synthetic run directory builder lives with the report tests
_spec = importlib.util.spec_from_file_location(
    "gendet_report_fixtures", Path(__file__).resolve().parents[1] / "report" / "report_fixtures.py"
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def test_report_cli_writes_both_files(tmp_path: Path, capsys):
    run = fixtures.make_run_dir(tmp_path, degraded_eval=False)
    out = tmp_path / "out"
    assert main(["report", str(run), "--out", str(out), "--top-k", "2"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "report.html"), str(out / "report.md")]
    html = (out / "report.html").read_text()
    assert "Most confident right and wrong" in html and "<script" not in html.lower()
    assert (out / "report_files").is_dir()
    assert not (run / "report.html").exists()


def test_report_cli_usage_errors(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2  # exists but holds no config.json and no eval files
    assert "no readable config.json" in capsys.readouterr().err
    run = fixtures.make_run_dir(tmp_path / "r", clean_eval=False, degraded_eval=False, train_log=False)
    assert main(["report", str(run), "--top-k", "-1"]) == 2
