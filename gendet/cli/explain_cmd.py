"""`gendet explain`: why did the detector say that? Per-image evidence, heat map and text.

Writes OUT/<stem>_explain.png (figure) and OUT/<stem>_explain.json (all numbers) per image
and prints the evidence text. Exit codes: 0 all explained; 1 some inputs failed (the
others are still explained); 2 usage errors (arguments, checkpoint, output folder).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from gendet.cli.main import UsageError, command_line
from gendet.cli.provenance_options import add_provenance_options, scan_task
from gendet.data.decode import DecodeError, read_file
from gendet.data.preprocess import decode_for_model
from gendet.detect.model import ModelSetupError, default_checkpoint_dir, load_scan_model, resolve_device
from gendet.explain.evidence import OCCLUSION_MODES, explain_image
from gendet.explain.overlay import save_figure
from gendet.io import atomic_write_text
from gendet.provenance import decide, read_provenance

EPILOG = """\
per image: OUT/<stem>_explain.png and OUT/<stem>_explain.json (a repeated stem gets -2, -3, ...).
  The JSON holds the score, threshold, relevance source (attention or gradient), every grid region's
  occlusion delta (P(generated) original - occluded; > 0 pushes toward generated) and relevance share,
  and the cues (high-frequency energy, spectral peaks, noise residual, reconstruction error) with
  z-scores against the shipped real photos; the file's provenance findings and the verdict they give with
  the score (the rule of `gendet detect`).
examples:
  gendet explain photo.jpg --out explain/
  gendet explain a.png b.png --checkpoint runs/spec --grid 6 --top 4 --out explain/
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="explain a detector's verdict on images (heat map, occlusion regions, cues, text)",
        description="Per-image evidence for the detector's verdict, built only from measurements on that image. "
        f"Without --checkpoint the model shipped with gendet is used ({default_checkpoint_dir()}).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMG", help="image files")
    p.add_argument("--checkpoint", default=None, metavar="DIR", help="checkpoint directory (default: shipped model)")
    p.add_argument("--model", dest="checkpoint", metavar="NAME",
                   help="a shipped model by name instead of --checkpoint: default, fast (see `gendet models`)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the figures and JSON files")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threshold", default=None, metavar="fixed|val|FLOAT",
                   help="decision threshold (default: the checkpoint's own), as in `gendet detect`")
    p.add_argument("--grid", type=int, default=4, help="occlusion grid: G x G regions (default 4)")
    p.add_argument("--top", type=int, default=3, help="regions to report and box (default 3)")
    p.add_argument("--occlusion", default="blur", choices=OCCLUSION_MODES,
                   help="how a region is occluded: blurred (default) or replaced by the image mean")
    add_provenance_options(p, ("on",), "provenance (as in gendet detect)")
    return p


def output_stems(paths: list[str]) -> list[str]:
    """One output stem per input; a stem seen before gets -2, -3, ... (a.png and a.jpg, or dir1/a and dir2/a)."""
    used: set[str] = set()
    stems = []
    for p in paths:
        base = Path(p).stem or "image"
        stem, k = base, 1
        while stem in used:
            k += 1
            stem = f"{base}-{k}"
        used.add(stem)
        stems.append(stem)
    return stems


def run(args: argparse.Namespace) -> int:
    if args.grid < 1:
        raise UsageError(f"--grid must be >= 1, got {args.grid}")
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    try:
        device = resolve_device(args.device)
        model = load_scan_model(args.checkpoint, device, args.threshold)
    except (ValueError, ModelSetupError) as e:
        raise UsageError(str(e)) from None
    task = scan_task(args)
    if args.grid > model.preprocess.size:
        raise UsageError(f"--grid {args.grid} is larger than the model input ({model.preprocess.size} px)")
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out_dir}: cannot create folder ({e})") from None

    failed = 0
    for path, stem in zip(args.images, output_stems(args.images), strict=True):
        try:
            data = read_file(path)
            image = decode_for_model(data, model.preprocess)
        except DecodeError as e:
            print(f"{path}: error: {e.reason}", file=sys.stderr)
            failed += 1
            continue
        findings = read_provenance(data, task.options, image)
        ev = explain_image(
            model.detector, image, model.preprocess, model.threshold, threshold_source=model.threshold_source,
            grid=args.grid, top=args.top, occlusion=args.occlusion, model_name=model.name,
            checkpoint=str(model.checkpoint),
        )
        figure = save_figure(ev, out_dir / f"{stem}_explain.png")
        decision = decide(ev.prob if math.isfinite(ev.prob) else None, model.threshold, findings)
        record = {"path": str(Path(path).resolve()), **ev.to_dict(), "figure": figure.name,
                  "verdict": decision.verdict, "reason": decision.reason, "conflict": decision.conflict,
                  "provenance": [f.to_dict() for f in findings], "command": command_line(args)}
        atomic_write_text(out_dir / f"{stem}_explain.json", json.dumps(record, indent=2) + "\n")
        print(f"{path}: {ev.text}")
        if ev.model_text:
            print(f"  model says: {ev.model_text}")
        print(f"  verdict: {decision.verdict} ({decision.reason})" + (f"; conflict: {decision.conflict}"
                                                                     if decision.conflict else ""))
        for f in findings:
            print(f"  provenance: {f.signal} says {f.says} ({f.strength}): {f.detail}"
                  + (f" [error: {f.error}]" if f.error else ""))
        print(f"  -> {figure}, {stem}_explain.json")
    if failed:
        print(f"gendet explain: {failed} of {len(args.images)} inputs failed", file=sys.stderr)
    return 1 if failed else 0
