"""`gendet import-weights`: convert a published detector checkpoint into a gendet checkpoint directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from gendet.cli.main import UsageError
from gendet.data.preprocess import ALIGN_MODES, DEFAULT_JPEG_QUALITY
from gendet.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError
from gendet.models.import_weights import FORMATS, import_weights, trust_torchscript


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="convert a published checkpoint (CNNDetection, UnivFD, NPR) into a gendet checkpoint",
        description="Convert a published checkpoint's key layout into DIR/model.safetensors + DIR/config.json, "
        "loading strictly (any missing, unexpected or mis-shaped key is an error that lists them). "
        "Formats: cnndetection -> cnnspot, univfd -> univfd (needs --clip-weights), npr -> npr. "
        "Nothing is downloaded: every file must be local.",
    )
    p.add_argument("src", help="the published .pth file (CNNDetection model, UnivFD fc_weights.pth, NPR model)")
    p.add_argument("--format", required=True, choices=tuple(FORMATS), dest="fmt")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--clip-weights", default=None,
                   help="univfd only: local CLIP weights (OpenAI/open_clip state dict, safetensors or OpenAI .pt)")
    p.add_argument("--clip-model", default=None, help="univfd only: open_clip model name (default ViT-L-14)")
    p.add_argument("--align", default="jpeg", choices=ALIGN_MODES,
                   help="format alignment recorded for evaluating the imported model")
    p.add_argument("--jpeg-quality", type=int, default=DEFAULT_JPEG_QUALITY)
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
    p.add_argument("--trust-torchscript", action="store_true",
                   help="load TorchScript archives (e.g. OpenAI's CLIP .pt); this runs code stored in the file, "
                   "so only for files from a source you trust. Default: refused")
    return p


def run(args: argparse.Namespace) -> int:
    src = Path(args.src)
    if not src.is_file():
        raise UsageError(f"{src} is not a file")
    if args.fmt != "univfd" and (args.clip_weights or args.clip_model):
        raise UsageError("--clip-weights/--clip-model apply to --format univfd only")
    if args.clip_weights and not Path(args.clip_weights).is_file():
        raise UsageError(f"--clip-weights {args.clip_weights} is not a file")
    if not 1 <= args.jpeg_quality <= 100:
        raise UsageError(f"--jpeg-quality must be in 1..100, got {args.jpeg_quality}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if not args.overwrite and any((out / f).exists() for f in (WEIGHTS_FILE, CONFIG_FILE)):
        raise UsageError(f"--out {out} already holds a checkpoint; pass --overwrite to replace it")
    try:
        with trust_torchscript(args.trust_torchscript):
            det, path = import_weights(
                args.fmt, src, out, clip_weights=args.clip_weights, clip_model=args.clip_model,
                align=args.align, jpeg_quality=args.jpeg_quality,
            )
    except (CheckpointError, ValueError) as e:
        raise UsageError(f"cannot import {src} as {args.fmt}:\n{e}") from None
    print(f"imported {src} ({args.fmt}) as gendet detector {det.name!r} "
          f"({det.num_parameters / 1e6:.2f}M parameters) -> {path}")
    return 0
