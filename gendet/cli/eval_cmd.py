"""Placeholder: being written now (replaced by the real module)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help="(not yet available)")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("not yet available")
