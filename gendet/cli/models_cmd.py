"""`gendet models`: list registered detectors."""

from __future__ import annotations

import argparse
import json

from gendet.models import get_detector_class, list_detectors
from gendet.models.registry import count_parameters


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="list registered detectors with descriptions and parameter counts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in list_detectors():
        cls = get_detector_class(name)
        n = count_parameters(name)
        rows.append({"name": name, "parameters": n, "description": cls.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['parameters'] / 1e6:8.2f}M  {r['description']}")
    return 0
