"""`gendet bench`: the local GenImage-in-miniature benchmark, end to end."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gendet.cli.main import UsageError, command_line
from gendet.data.preprocess import ALIGN_MODES
from gendet.evaluation.bench import bench_data_root, build_bench_data, run_bench, write_results
from gendet.evaluation.presets import PRESETS, get_preset


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="build a local multi-generator benchmark and run both GenImage tasks on it")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--out", type=Path, required=True, help="run directory (results.json, report.html, runs/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None,
                   help="benchmark on your own GenImage-layout root instead of building the local one")
    p.add_argument("--real-dir", type=Path, default=None,
                   help="your own real photos for the real class (and for --retrain-generators) instead of "
                        "the shipped ones")
    p.add_argument("--retrain-generators", action="store_true",
                   help="train every generator family from scratch instead of using the shipped weights")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="data set and feature cache (default $GENDET_CACHE_DIR or ~/.cache/gendet)")
    p.add_argument("--detectors", default=None, help="comma-separated subset of the preset's detectors")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="local backbone weights for a detector, e.g. univfd=ViT-L-14.pt (repeatable)")
    p.add_argument("--align", default="jpeg", choices=ALIGN_MODES)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--no-fidelity", action="store_true", help="skip KID/FID (Inception features)")
    p.add_argument("--no-progress", action="store_true")
    a = p.add_argument_group("ablation")
    a.add_argument("--ablation", default=None, choices=("unigendet",),
                   help="instead of the baselines, run UniGenDet's ablation (full, w/o SMSA, w/o GDUF, w/o DIGA)")
    a.add_argument("--seeds", default="0,1,2", help="--ablation: comma-separated seeds")
    a.add_argument("--recipe", default="ablation", help="--ablation: training schedule (ablation or tiny)")
    a.add_argument("--train-subset", default="latent_flow", help="--ablation: the subset the detectors train on")
    return p


def _parse_weights(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--weights takes NAME=PATH, got {item!r}")
        if not Path(path).is_file():
            raise UsageError(f"--weights {name}: {path} is not a file")
        out[name] = path
    return out


def build_local_data(args: argparse.Namespace, preset, cache: Path, out: Path, weights_dir: Path | None,
                     progress: bool) -> tuple[Path, dict]:
    # Shipped generators + shipped photos: one shared cache, reused by every later run.
    shared = weights_dir is None and args.real_dir is None
    root = bench_data_root(cache, preset) if shared else out / "data"
    info = build_bench_data(preset, root, cache, seed=args.seed, real_dir=args.real_dir, weights_dir=weights_dir,
                            fidelity=not args.no_fidelity, progress=progress)
    return root, info


def describe_user_data(root: Path) -> dict:
    """Counts per subset/split/class of a user's GenImage root, in the builder's manifest shape."""
    from gendet.data.layouts import read_samples

    if not root.exists():
        raise UsageError(f"--data {root} does not exist")
    samples = read_samples(root, layout="genimage")
    subsets: dict[str, dict] = {}
    for s in samples:
        counts = subsets.setdefault(s.generator, {"family": "user data", "counts": {}})["counts"]
        split = counts.setdefault(s.split, {"ai": 0, "nature": 0})
        split["ai" if s.label == 1 else "nature"] += 1
    return {"root": str(root), "real": {"source": f"user data ({root})"}, "subsets": subsets,
            "fidelity_note": "not computed for user data"}


def run(args: argparse.Namespace) -> int:
    from gendet.evaluation.fidelity import default_cache_dir
    from gendet.report.bench_report import build_bench_report

    t0 = time.monotonic()
    preset = get_preset(args.preset)
    weights = _parse_weights(args.weights)
    detectors = None
    if args.detectors:
        detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
        unknown = sorted(set(detectors) - {s.name for s in preset.detectors})
        if unknown:
            raise UsageError(f"--detectors: {unknown} not in preset {preset.name} "
                             f"({', '.join(s.name for s in preset.detectors)})")
    if not preset.generators and args.data is None:
        raise UsageError(f"preset {preset.name} builds no data: pass --data ROOT (a GenImage-layout folder)")
    if args.real_dir is not None and not args.real_dir.is_dir():
        raise UsageError(f"--real-dir {args.real_dir} is not a directory")
    cache = args.cache_dir or default_cache_dir()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress

    weights_dir = None
    gen_seconds = 0.0
    if args.retrain_generators:
        from gendet.generation.presets import train_generators

        print(f"[bench] training {len(preset.generators)} generator families from scratch")
        t = time.monotonic()
        weights_dir = out / "generators"
        train_generators(preset.name, weights_dir, real_dir=args.real_dir, seed=args.seed,
                         only=list(preset.generators), steps_scale=preset.generator_steps_scale,
                         progress=progress, command=f"{command_line(args)} (--retrain-generators)")
        gen_seconds = time.monotonic() - t

    t = time.monotonic()
    if args.data is not None:
        data_root, data_info = args.data, describe_user_data(args.data)
    else:
        print("[bench] building (or reusing) the data set")
        data_root, data_info = build_local_data(args, preset, cache, out, weights_dir, progress)
    data_seconds = time.monotonic() - t

    if args.ablation:
        return _run_ablation(args, data_root, out, cache, t0, progress)
    print(f"[bench] training and evaluating detectors on {len(data_info['subsets'])} subsets")
    results = run_bench(preset, data_root, data_info, out, seed=args.seed, align=args.align, device=args.device,
                        workers=args.workers, detectors=detectors, weights=weights, command=command_line(args),
                        progress=progress)
    results["timings"].update(generators_seconds=round(gen_seconds, 1), data_seconds=round(data_seconds, 1),
                              total_s=round(time.monotonic() - t0, 1))
    path = write_results(results, out)
    html, md = build_bench_report(results, out, data_root=data_root)
    print(f"[bench] results: {path}\n[bench] report:  {html}\n[bench] markdown: {md}")
    for label, m in results["matrix"].items():
        print(f"  {label:<45} Task 1 mean acc {m['acc']['mean']:.3f}  AUC {m['auc']['mean']:.3f}")
    print(f"[bench] done in {results['timings']['total_s']:.0f} s")
    return 0


def _run_ablation(args: argparse.Namespace, data_root: Path, out: Path, cache: Path, t0: float,
                  progress: bool) -> int:
    from gendet.evaluation.ablation import run_ablation
    from gendet.models.unigendet.build import RECIPES
    from gendet.report.ablation_report import build_ablation_report

    try:
        seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if not seeds:
        raise UsageError("--seeds is empty")
    if args.recipe not in RECIPES:
        raise UsageError(f"unknown --recipe {args.recipe!r}; available: {', '.join(RECIPES)}")
    print(f"[bench] UniGenDet ablation: 4 variants x {len(seeds)} seeds, recipe {args.recipe}")
    try:
        ablation = run_ablation(data_root, out / "ablation", seeds, args.recipe, args.train_subset, args.align,
                                device=args.device, cache_dir=cache, progress=progress)
    except ValueError as e:
        raise UsageError(str(e)) from None
    results = {"preset": args.preset, "command": command_line(args), "seed": list(seeds), "align": args.align,
               "description": "UniGenDet ablation on the local benchmark", "ablation": ablation,
               "timings": {"total_s": round(time.monotonic() - t0, 1)}}
    path = write_results(results, out)
    html, _ = build_ablation_report(results, out)
    print(f"[bench] results: {path}\n[bench] report:  {html}")
    for name, row in ablation["table"].items():
        print(f"  {name:<10} AUC {row['auc_mean']['mean']:.3f}  acc {row['acc_mean']['mean']:.3f}  "
              f"KID {row['kid']['mean']:.4f}")
    for claim, r in ablation["claims"].items():
        print(f"  {'holds' if r['holds'] else 'does not hold'}: {claim}")
    print(f"[bench] done in {results['timings']['total_s']:.0f} s")
    return 0
