"""Seeded small runs of gendet's training and study paths, digested, to show a refactor changed no figure.

    python tools/refactor_digest.py --data GENIMAGE_ROOT --manifest MANIFEST --out digest.json
    (run it on the code before and after a change, with the same data; then diff the two JSON files)

Each entry is the sha256 of what a run produces (weights; results without timings, paths or commands) plus a
few of its numbers, so a difference shows where. Runs: the epoch trainer (tiny_cnn), UniGenDet's GDUF then
DIGA stage (small model), the genuine benchmark (a small probe), the UniGenDet, GAMMA and HRR studies on
the genuine preset (smoke recipe, two seeds) and, with --tiny-base, on the tiny preset (one seed). The data can
be any GenImage-layout folder and genuine-style manifest (e.g. the test suite's synthetic ones:
tests/conftest.py make_genimage_tree, make_genuine_manifest; tests/data/manipulations/helpers.py make_base_root).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

VOLATILE = {"timings", "seconds", "seconds_per_epoch", "seconds_train", "seconds_eval", "command", "total_s",
            "data_root", "manifest", "elapsed_s", "checkpoint", "out_dir", "files", "git_commit", "gendet_version",
            "samples", "cache"}


def _clean(obj: Any) -> Any:
    """Without the keys that change from run to run (time, paths, versions)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 10)
    return obj


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(_clean(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _weights_sha(ckpt: Path) -> str:
    return hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()[:16]


def epoch_trainer(data: Path, tmp: Path) -> dict[str, Any]:
    from gendet.data.layouts import read_samples, select_split, split_holdout
    from gendet.models import create_detector
    from gendet.training.state import seed_everything
    from gendet.training.trainer import TrainConfig, train

    samples = select_split(read_samples(data, "auto", None), "train")
    tr, va = split_holdout(samples, 0.25, 0)
    seed_everything(0)
    det = create_detector("tiny_cnn")
    s = train(det, tr, va, det.preprocess("jpeg"), TrainConfig(epochs=2, batch_size=8, progress=False,
                                                               save_every_steps=0), tmp / "tiny")
    return {"weights": _weights_sha(tmp / "tiny"), "threshold_val": s["threshold_val"],
            "val_auc": (s["val_metrics"] or {}).get("auc")}


def unified(data: Path, tmp: Path) -> dict[str, Any]:
    from gendet.data.layouts import read_samples, select_split
    from gendet.models import create_detector
    from gendet.models.unigendet import UniGenDet
    from gendet.training.unified import UnifiedConfig, train_unified

    samples = select_split(read_samples(data, "auto", None), "train")
    out: dict[str, Any] = {}
    torch.manual_seed(0)
    m = create_detector("unigendet", **UniGenDet.small_config)
    pp = m.preprocess("png")
    cfg = dict(steps=4, det_batch=4, lr=1e-3, warmup=0, progress=False, save_every_steps=0)
    train_unified(m, samples[:-6], samples[-6:], pp, UnifiedConfig(stage="gduf", **cfg), tmp / "gduf")
    out["gduf"] = _weights_sha(tmp / "gduf")
    teacher = m.frozen_copy()
    train_unified(m, samples[:-6], samples[-6:], pp, UnifiedConfig(stage="diga", **cfg), tmp / "diga",
                  teacher=teacher)
    out["diga"] = _weights_sha(tmp / "diga")
    return out


def genuine_bench(manifest: Path, tmp: Path) -> dict[str, Any]:
    from gendet.bench.genuine import run_genuine_bench

    r = run_genuine_bench(manifest, tmp / "cache-bench", detector_config={"image_size": 32, "crops": 4,
                                                                          "taps": [1], "pretrained": False},
                          progress=False, degradations=("blur_3", "jpeg_65"))
    return {"results": _sha(r), "logo_mean_auc": r["recipes"]["default"]["logo_mean_auc"],
            "task2_mean_auc": r["recipes"]["default"]["task2_mean_auc"]}


def genuine_unigendet(manifest: Path, tmp: Path) -> dict[str, Any]:
    from gendet.bench.genuine_unigendet import run_genuine_unigendet
    from gendet.evaluation.fidelity import get_extractor

    small = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False, "grid": 2, "hidden": 32, "depth": 2,
             "heads": 2}
    r = run_genuine_unigendet(manifest, tmp / "study", seeds=(0, 1), recipe_name="smoke",
                              cache_dir=tmp / "cache-study", progress=False, extractor=get_extractor("tiny"),
                              model_config=small, probe_config={"image_size": 32, "crops": 4, "taps": [1],
                                                                "pretrained": False})
    return {"table": _sha(r["table"]), "claims": _sha(r["claims"]),
            "full_auc": r["table"]["full"]["logo_mean_auc"]["mean"], "full_kid": r["table"]["full"]["kid"]["mean"]}


def genuine_gamma_hrr(manifest: Path, tmp: Path) -> dict[str, Any]:
    from gendet.bench.genuine_gamma import run_genuine_gamma
    from gendet.bench.genuine_hrr import run_genuine_hrr

    probe = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False}
    out: dict[str, Any] = {}
    for name, run, small in (("gamma", run_genuine_gamma, {**probe, "grid": 2, "hidden": 32, "heads": 2, "steps": 4}),
                             ("hrr", run_genuine_hrr, {**probe, "steps": 4})):
        r = run(manifest, tmp / name, seeds=(0, 1), recipe_name="smoke", cache_dir=tmp / f"cache-{name}",
                progress=False, model_config=small, probe_config=probe)
        out[name] = {"table": _sha(r["table"]), "claims": _sha(r["claims"]), "runs": _sha(r["runs"])}
    return out


def tiny_studies(data: Path, base: Path, tmp: Path) -> dict[str, Any]:
    """The three studies on the tiny preset (the tests' small models and 1-2 step schedules, one seed)."""
    from gendet.bench.ablation import run_ablation
    from gendet.bench.gamma_ablation import run_gamma_ablation
    from gendet.bench.hrr_ablation import run_ablation as run_hrr_ablation
    from gendet.evaluation.fidelity import get_extractor
    from gendet.models.gamma import GammaDetector

    out: dict[str, Any] = {}
    u = run_ablation(data, tmp / "t-unigendet", seeds=(0,), train_subset="gen_a", fidelity_n=6, progress=False,
                     extractor=get_extractor("tiny"),
                     model_config={"image_size": 32, "hidden": 32, "depth": 2, "heads": 2, "vision_patch": 8},
                     recipe={"gduf_steps": 2, "diga_steps": 1, "lr": 1e-3, "det_batch": 4}, cache_dir=tmp / "t-c")
    g = run_gamma_ablation(base, tmp / "t-gamma", seeds=(0,), model_config=GammaDetector.small_config,
                           recipe={"epochs": 1, "batch_size": 8, "lr": 1e-3, "warmup": 0.0, "weight_decay": 0.0,
                                   "max_steps": 2}, progress=False, manipulated_root=tmp / "t-manip")
    h = run_hrr_ablation(data, tmp / "t-hrr", seeds=(0,), recipe_name="test", train_subset="gen_a", progress=False,
                         recipe={"epochs": 1, "batch_size": 8, "lr": 1e-3, "t": 0.15, "steps": 1, "test_sizes": [24],
                                 "label_noise": [0.2], "degradations": ["jpeg_30"], "max_per_class": None},
                         model_config={"image_size": 32, "width": 4, "channels": 8})
    for name, r in (("unigendet", u), ("gamma", g), ("hrr", h)):
        out[name] = {"table": _sha(r["table"]), "claims": _sha(r["claims"]), "runs": _sha(r["runs"])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a GenImage-layout folder")
    ap.add_argument("--manifest", type=Path, required=True, help="a genuine-style manifest")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tiny-base", type=Path, default=None,
                    help="a built tiny-benchmark root (manifest.json) for the tiny-preset studies; without it they are "
                         "skipped (tests/data/manipulations/helpers.py make_base_root makes one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="gendet_digest_") as t:
        tmp = Path(t)
        digest = {"epoch_trainer": epoch_trainer(args.data, tmp), "unified": unified(args.data, tmp),
                  "genuine_bench": genuine_bench(args.manifest, tmp),
                  "genuine_unigendet": genuine_unigendet(args.manifest, tmp),
                  "genuine_gamma_hrr": genuine_gamma_hrr(args.manifest, tmp)}
        if args.tiny_base is not None:
            digest["tiny_studies"] = tiny_studies(args.data, args.tiny_base, tmp)
    args.out.write_text(json.dumps(digest, indent=2))
    print(json.dumps(digest, indent=2))


if __name__ == "__main__":
    main()
