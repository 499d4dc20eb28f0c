"""`gendet export`: a checkpoint as an ONNX graph for onnxruntime (`gendet detect --engine onnx`, other stacks).

Writes OUT (the graph, dynamic batch, `gendet.*` metadata: preprocessing, threshold, name, version) and
OUT.json (the same contract, readable). Exit codes: 0 written; 2 usage errors or a detector that cannot be
exported (the reason is printed).
"""

from __future__ import annotations

import argparse
import sys

from gendet.cli.main import UsageError
from gendet.detect.model import ModelSetupError, load_scan_model
from gendet.detect.onnx_export import QUANTIZE, ExportError, export_onnx


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="export a checkpoint to ONNX (for --engine onnx and other runtimes)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, metavar="DIR", help="checkpoint directory (default: shipped model)")
    p.add_argument("--model", dest="checkpoint", metavar="NAME", help="a shipped model by name: default, fast")
    p.add_argument("--format", default="onnx", choices=("onnx",))
    p.add_argument("--out", required=True, metavar="MODEL.onnx")
    p.add_argument("--quantize", default=None, choices=QUANTIZE,
                   help="int8: dynamic INT8 quantization of the weights (onnxruntime); smaller, score drift "
                   "reported in the README")
    p.add_argument("--threshold", default=None, metavar="fixed|val|FLOAT",
                   help="threshold written into the export (default: the checkpoint's own)")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        model = load_scan_model(args.checkpoint, "cpu", args.threshold)
        out = export_onnx(model, args.out, quantize=args.quantize)
    except (ModelSetupError, ExportError, ValueError) as e:
        raise UsageError(str(e)) from None
    size = out.stat().st_size / 1e6
    print(f"gendet export: {out} ({size:.1f} MB, {model.name} {model.version or ''}, threshold "
          f"{model.threshold:.4g}, input {model.preprocess.size} px x {model.preprocess.crops} crop(s)"
          f"{', int8' if args.quantize else ''}); contract in {out}.json", file=sys.stderr)
    return 0
