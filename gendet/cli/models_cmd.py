"""`gendet models`: list registered detectors and the models shipped inside the package."""

from __future__ import annotations

import argparse
import json

from gendet.detect.shipped import shipped_models
from gendet.extras import MissingExtra
from gendet.models import get_detector_class, list_detectors
from gendet.models.registry import count_parameters


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="list registered detectors (with parameter counts) and the shipped models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in list_detectors():
        cls = get_detector_class(name)
        try:
            n, needs = count_parameters(name), None
        except MissingExtra as e:  # listed all the same, with what it needs
            n, needs = None, str(e)
        rows.append({"name": name, "parameters": n, "description": cls.description, "needs": needs})
    shipped = shipped_models()
    if args.json:
        print(json.dumps({"detectors": rows, "shipped": shipped}, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print("detectors (gendet train --model NAME):")
    for r in rows:
        size = "       -" if r["parameters"] is None else f"{r['parameters'] / 1e6:8.2f}M"
        print(f"  {r['name']:<{width}}  {size}  {r['description']}" + (f" [{r['needs']}]" if r["needs"] else ""))
    print("shipped models (gendet detect/serve/explain --model NAME; 'default' is used without one):")
    for m in shipped:
        pp = m["input"] or {}
        print(f"  {m['name']:<8} {m['detector']:<6} {m['megabytes']} MB, {pp.get('size')} px x {pp.get('crops', 1)} "
              f"crops, threshold {m['threshold']:.3f}  {m['path']}")
    return 0
