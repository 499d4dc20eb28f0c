"""Reports: matplotlib figures (`plots`), a self-contained HTML / Markdown builder, and run reports.

The benchmark reuses `ReportBuilder` and the plotting functions for its own,
multi-detector report; `gendet report RUN_DIR` calls `build_run_report`.
"""

from gendet.report.builder import ReportBuilder, format_value
from gendet.report.run_data import RunData, RunDirError, load_run, read_predictions
from gendet.report.run_report import add_run_sections, build_run_report

__all__ = [
    "ReportBuilder",
    "RunData",
    "RunDirError",
    "add_run_sections",
    "build_run_report",
    "format_value",
    "load_run",
    "read_predictions",
]
