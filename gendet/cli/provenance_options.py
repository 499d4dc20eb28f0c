"""The provenance options `detect`, `serve` and `explain` share, and the ScanTask they become."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gendet.cli.main import UsageError
from gendet.detect.prepare import ScanTask

MODE_HELP = {"on": "on (default): findings beside the pixel score", "off": "off: pixels only",
             "only": "only: findings only, no pixel model"}


def add_provenance_options(p: argparse.ArgumentParser, modes: Sequence[str] = ("on", "off"),
                           title: str = "provenance (what files say about themselves)") -> None:
    """--provenance MODE (when there is a choice), --watermark, --c2pa-trust PEM."""
    g = p.add_argument_group(title)
    if len(modes) > 1:
        g.add_argument("--provenance", default="on", choices=tuple(modes),
                       help="; ".join(MODE_HELP[m] for m in modes) + " (C2PA, IPTC/XMP, EXIF, generator chunks)")
    g.add_argument("--watermark", action="store_true",
                   help="also decode invisible watermarks (Stable Diffusion 1/2/XL payloads; needs "
                   "gendet[watermark]; ~50 ms per payload and 512 px image, so off by default)")
    g.add_argument("--c2pa-trust", default=None, metavar="PEM",
                   help="PEM file of trust anchors: C2PA signers chaining to one count as 'signed' (otherwise a "
                   "valid signature counts as 'declared')")


def scan_task(args: argparse.Namespace) -> ScanTask:
    """The options as the task each file gets (--provenance defaults to on); UsageError when unusable."""
    try:
        return ScanTask.from_options(getattr(args, "provenance", "on"), args.watermark, args.c2pa_trust)
    except ValueError as e:
        raise UsageError(str(e)) from None
