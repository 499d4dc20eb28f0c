"""`gendet report RUN_DIR`: a self-contained report.html and a report.md for a train/eval run directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="write report.html (self-contained) and report.md for a run directory",
        description="Build a report from RUN_DIR/config.json, RUN_DIR/train_log.jsonl and RUN_DIR/eval/*.json "
        "(with their .predictions.csv): metrics, cross-generator matrix, degradations, ROC, calibration, "
        "training curves and the most confident right and wrong images.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `gendet train` / `gendet eval`")
    p.add_argument("--out", metavar="DIR", default=None, help="where to write the report (default: RUN_DIR)")
    p.add_argument("--top-k", type=int, default=8, help="example images per group (right / wrong), default 8")
    return p


def run(args: argparse.Namespace) -> int:
    from gendet.cli.main import UsageError
    from gendet.report import RunDirError, build_run_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    if args.top_k < 0:
        raise UsageError(f"--top-k must be >= 0, got {args.top_k}")
    try:
        html_path, md_path = build_run_report(run_dir, out_dir=args.out, top_k=args.top_k)
    except RunDirError as e:
        raise UsageError(str(e)) from None
    print(html_path)
    print(md_path)
    return 0
