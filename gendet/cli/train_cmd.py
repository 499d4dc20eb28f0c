"""`gendet train`: train a registered detector on a folder of images and write a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gendet.cli.main import UsageError
from gendet.cli.train_common import (
    AMP_CHOICES,
    LAYOUT_CHOICES,
    check_out_dir,
    command_line,
    load_training_data,
    parse_overrides,
)
from gendet.data.preprocess import ALIGN_MODES, DEFAULT_JPEG_QUALITY
from gendet.models import create_detector, list_detectors
from gendet.models.checkpoint import CheckpointError
from gendet.models.hooks import HeadFitting
from gendet.models.import_weights import trust_torchscript
from gendet.training.data import SHARDS_LAYOUT
from gendet.training.run_dir import clear_run

if TYPE_CHECKING:
    from gendet.training.trainer import TrainConfig

# The trainer and the data readers are imported in run(): `gendet --help` builds every
# subcommand's parser and should not pay for scikit-learn/torchmetrics imports.


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="train a detector and write DIR/model.safetensors + DIR/config.json",
        description="Train a registered detector. Labels: 1 = generated, 0 = real. A fraction of the train "
        "split (--holdout) is held out for early stopping and threshold fitting; the data's val/test split is "
        "never touched.",
    )
    p.add_argument("--model", default=None, help=f"detector name ({', '.join(list_detectors())})")
    p.add_argument("--data", default=None, help="data root (GenImage, 0_real/1_fake, manifest or FakeClue), or a "
                                                 "folder of tar shards from `gendet data shard`")
    p.add_argument("--preset", default=None, choices=("default", "fast"),
                   help="a named recipe that fixes model and hyper-parameters and writes a model card: default = "
                        "the shipped detector (probe on Lite0; needs --data MANIFEST of genuine images), fast = the "
                        "earlier small model trained on the local benchmark's data")
    p.add_argument("--bench-results", default=None, metavar="RESULTS.json",
                   help="--preset default: copy the leave-one-group-out table of this `gendet bench --preset "
                        "genuine` run (same seed and recipe) into the model card")
    p.add_argument("--solver", default="auto", choices=("auto", "head", "sgd"),
                   help="head: fit a probe's linear head by logistic regression on cached backbone features "
                        "(seconds once features exist); sgd: the epoch trainer; auto: head where the detector has "
                        "one")
    p.add_argument("--cache-dir", default=None, help="--preset only: data cache (default ~/.cache/gendet)")
    p.add_argument("--layout", default="auto", choices=(*LAYOUT_CHOICES, SHARDS_LAYOUT))
    p.add_argument("--subset", default=None, help="train on one subset (generator) only")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-4; unigendet: its recipe's)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.05, help="warm-up: fraction of steps if < 1, else steps")
    p.add_argument("--grad-accum", type=int, default=1, help="batches per optimizer step")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 = no clipping)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--amp", default="auto", choices=AMP_CHOICES, help="auto = bf16 autocast on CUDA, off on CPU")
    p.add_argument("--weights", default=None, help="local file with pretrained backbone weights")
    p.add_argument("--trust-torchscript", action="store_true",
                   help="allow --weights to be a TorchScript archive (loading one runs code stored in it)")
    p.add_argument("--align", default="jpeg", choices=ALIGN_MODES, help="format alignment of real and fake")
    p.add_argument("--jpeg-quality", type=int, default=DEFAULT_JPEG_QUALITY)
    p.add_argument("--holdout", type=float, default=0.1, help="fraction of train held out for validation")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (0 = off)")
    p.add_argument("--threshold", default="fixed", choices=("fixed", "val", "fpr"),
                   help="operating threshold: fixed 0.5; val = balanced accuracy on the held-out split; fpr "
                        "(--solver head) = at most --target-fpr of the training photos called generated, on "
                        "out-of-fold scores")
    p.add_argument("--target-fpr", type=float, default=0.02, help="--threshold fpr: the false-positive rate aimed at")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--log-every", type=int, default=10, help="log the training loss every N steps")
    p.add_argument("--save-every", type=int, default=50, help="write the resume state every N steps (0 = epochs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    u = p.add_argument_group("unigendet (one model that generates and detects)")
    u.add_argument("--stage", default="gduf", choices=("gduf", "diga"),
                   help="gduf: joint detection + generation training; diga: align the generation expert to the "
                        "frozen detector (needs --init)")
    u.add_argument("--init", default=None, help="diga: the GDUF checkpoint directory to start from")
    u.add_argument("--steps", type=int, default=None, help="optimizer steps of the stage (default: the recipe's)")
    u.add_argument("--recipe", default=None, help="steps/lr/batch recipe (tiny, ablation, small, base; default: the "
                                                  "model preset's)")
    u.add_argument("--det-gen-ratio", type=float, default=5.0, help="detection : generation samples per step")
    u.add_argument("--autoencoder", default=None,
                   help="latent_flow generator file (without suffix) whose autoencoder is the latent space "
                        "(default: the shipped one)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a detector config key (value parsed as YAML), e.g. --set image_size=64")
    return p


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from gendet.training.trainer import TrainConfig

    try:
        return TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            warmup=args.warmup, grad_accum=args.grad_accum, grad_clip=args.grad_clip or None, seed=args.seed,
            device=args.device, workers=args.workers, amp=args.amp, patience=args.patience, holdout=args.holdout,
            threshold_mode=args.threshold, log_every=args.log_every, save_every_steps=args.save_every,
            max_steps=args.max_steps, progress=not args.no_progress,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def apply_preset(args: argparse.Namespace) -> dict[str, Any] | None:
    """--preset: fill model, data and hyper-parameters from the recipe; returns the data manifest."""
    if args.preset is None:
        if not args.model or not args.data:
            raise UsageError("--model and --data are required (or use --preset)")
        return None
    from gendet.bench.train_presets import get_train_preset, preset_data
    from gendet.evaluation.fidelity import default_cache_dir

    preset = get_train_preset(args.preset)
    if args.model or args.subset or (args.data and preset.data_preset is not None):
        raise UsageError(f"--preset {preset.name} fixes the model and the data: drop --model/--data/--subset")
    args.model = preset.model
    args.overrides = [f"{k}={v}" for k, v in preset.overrides.items()] + list(args.overrides)
    for key, value in preset.train_args.items():
        setattr(args, key, value)
    if preset.data_preset is None:
        if not args.data:
            raise UsageError(f"--preset {preset.name} trains on your genuine-image manifest: pass --data MANIFEST "
                             "(path,label,split,generator,group; e.g. shared/data/genuine/MANIFEST.csv)")
        return {"manifest": str(Path(args.data).resolve())}
    root, info = preset_data(preset, Path(args.cache_dir) if args.cache_dir else default_cache_dir(), args.seed,
                             progress=not args.no_progress)
    args.data, args.layout = str(root), "genimage"
    return info


def run(args: argparse.Namespace) -> int:
    """Train; under torchrun each rank runs this with its share of every batch (DDP), rank 0 writes."""
    from gendet.training import distributed

    dist_info, device = distributed.setup(args.device)
    ok = False
    try:
        code = _run(args, dist_info, device)
        ok = True
        return code
    finally:
        distributed.teardown(ok)


def _run(args: argparse.Namespace, dist_info: Any, device: str) -> int:
    from gendet.training import distributed

    say = print if dist_info.is_main else _quiet
    with distributed.main_process_first():  # a --preset data cache is built once, by rank 0
        data_info = apply_preset(args)
    if args.model not in list_detectors():
        raise UsageError(f"unknown model {args.model!r}; registered: {', '.join(list_detectors())}")
    if not 1 <= args.jpeg_quality <= 100:
        raise UsageError(f"--jpeg-quality must be in 1..100, got {args.jpeg_quality}")
    if args.model == "unigendet":
        if dist_info.enabled:
            raise UsageError("unigendet trains in one process: run it without torchrun")
        from gendet.cli.train_unified import run_unified

        return run_unified(args, data_info)
    if _uses_head_solver(args):
        if dist_info.enabled:
            raise UsageError("--solver head fits in one process: run it without torchrun")
        return _run_head_fit(args, data_info)
    return _run_epochs(args, dist_info, device, data_info, say)


def _run_epochs(args: argparse.Namespace, dist_info: Any, device: str, data_info: dict[str, Any] | None,
                say: Any) -> int:
    """The epoch trainer (gendet.training.trainer), single process or one rank under torchrun."""
    from gendet.training import distributed
    from gendet.training.state import seed_everything
    from gendet.training.trainer import ResumeError, train

    if args.threshold == "fpr":
        raise UsageError("--threshold fpr needs out-of-fold scores: use it with --solver head (a probe)")
    if args.lr is None:
        args.lr = 1e-4
    cfg = _train_config(args)
    cfg.device = device  # under torchrun: this rank's GPU
    if args.weights is not None and not Path(args.weights).is_file():
        raise UsageError(f"--weights {args.weights} is not a file")
    out = Path(args.out).expanduser()
    check_out_dir(out, args.resume, args.overwrite)

    # Data first: a wrong --data/--subset should fail before any model is built.
    d = load_training_data(args, data_info)
    data, layout, all_samples, train_samples, val_samples = d.root, d.layout, d.all, d.train, d.val

    seed_everything(cfg.seed)  # the model's initial weights depend on the seed too
    detector = _build_detector(args, say)
    pp = detector.preprocess(args.align, args.jpeg_quality)
    say(f"data: {data} (layout {layout}{', subset ' + args.subset if args.subset else ''}): "
          f"{len(train_samples)} train, {len(val_samples)} held-out validation samples; align={args.align}")

    extra = {
        "data_root": str(data.resolve()),
        "subset": args.subset,
        "layout": layout,
        "weights": str(Path(args.weights).resolve()) if args.weights else None,
        "backbone": f"pretrained from {args.weights}" if args.weights else "from scratch",
        "overrides": parse_overrides(args.overrides),
        "command": command_line(args),
        "resumed": bool(args.resume),
    }
    distributed.barrier()  # every rank has checked --out before rank 0 changes it
    if args.overwrite and dist_info.is_main:
        clear_run(out)
    try:
        summary = train(detector, train_samples, val_samples, pp, cfg, out, resume=args.resume, extra_config=extra)
    except ResumeError as e:
        raise UsageError(str(e)) from None
    if dist_info.is_main:
        _print_summary(summary)
        if data_info is not None:
            _write_card(args, out, all_samples, data_info)
    return 0


def _build_detector(args: argparse.Namespace, say: Any) -> Any:
    """The detector of --model/--set, with --weights loaded into its backbone (not when resuming)."""
    try:
        detector = create_detector(args.model, **parse_overrides(args.overrides))
    except (TypeError, ValueError) as e:
        raise UsageError(f"cannot build {args.model!r}: {e}") from None
    if args.weights and not args.resume:
        try:
            with trust_torchscript(args.trust_torchscript):
                detector.load_backbone_weights(args.weights)
        except (ValueError, CheckpointError, OSError, RuntimeError) as e:
            raise UsageError(f"cannot load --weights {args.weights}: {e}") from None
        say(f"backbone weights loaded from {args.weights}")
    elif not args.weights:
        say(f"no --weights given: {args.model} starts from scratch (random initialisation)")
    return detector


def _uses_head_solver(args: argparse.Namespace) -> bool:
    from gendet.models import get_detector_class

    has_head = issubclass(get_detector_class(args.model), HeadFitting)
    if args.solver == "head" and not has_head:
        raise UsageError(f"--solver head needs a probe-style detector (with fit_head); {args.model!r} has none")
    return has_head and args.solver != "sgd"


def _run_head_fit(args: argparse.Namespace, data_info: dict[str, Any] | None) -> int:
    """--solver head: backbone features of the recipe's views (cached by content), a logistic-regression
    head, the threshold on the held-out part; a normal checkpoint comes out."""
    from gendet.api.train import fit_head_run
    from gendet.training.state import seed_everything

    out = Path(args.out).expanduser()
    if args.resume:
        raise UsageError("--resume: a head fit has no resume state (its features are cached: rerun with --overwrite)")
    check_out_dir(out, False, args.overwrite)
    d = load_training_data(args, data_info)
    seed_everything(args.seed)
    try:
        detector = create_detector(args.model, **parse_overrides(args.overrides))
    except (TypeError, ValueError, RuntimeError) as e:
        raise UsageError(f"cannot build {args.model!r}: {e}") from None
    print(f"data: {d.root} (layout {d.layout}): {len(d.train)} train, {len(d.val)} held-out samples; "
          f"align={args.align}; backbone {detector.config.get('backbone')} (packaged weights)")
    if not 0.0 <= args.target_fpr < 1.0:
        raise UsageError(f"--target-fpr must be in [0, 1), got {args.target_fpr}")
    record = {"subset": args.subset, "overrides": parse_overrides(args.overrides), "command": command_line(args),
              "holdout": args.holdout}
    summary = fit_head_run(detector, d, out, align=args.align, jpeg_quality=args.jpeg_quality, seed=args.seed,
                           threshold=args.threshold, target_fpr=args.target_fpr, device=args.device,
                           workers=args.workers, cache_dir=args.cache_dir, progress=not args.no_progress,
                           record=record, overwrite=args.overwrite)
    m = summary["val_metrics"] or {}
    print(f"head fitted on {summary['n_train']} images ({summary['seconds']:.1f} s, features computed "
          f"{summary['features']['computed']}, cached {summary['features']['cached']}); held-out AUC "
          f"{m.get('auc', float('nan')):.4f}; threshold {summary['threshold']:.4f} ({summary['threshold_source']})")
    if summary["decode_errors"]["files"]:
        print(f"{len(summary['decode_errors']['files'])} files could not be read (listed in config.json)")
    if args.preset == "default":
        from gendet.bench.model_card import write_genuine_card

        print("writing the model card (scoring the manifest's val split clean and under each degradation)")
        write_genuine_card(out, d.all, args, device=args.device)
        print(f"model card: {out / 'MODEL_CARD.md'}")
    elif data_info is not None:
        _write_card(args, out, d.all, data_info)
    print(f"checkpoint: {out}")
    return 0


def _quiet(*args: Any, **kwargs: Any) -> None:
    """`print` for ranks other than 0."""


def _write_card(args: argparse.Namespace, out: Path, samples: list, data_info: dict[str, Any]) -> None:
    import torch

    from gendet.bench.model_card import CARD_MD, build_model_card
    from gendet.bench.train_presets import get_train_preset
    from gendet.models.checkpoint import store_weights_as

    preset = get_train_preset(args.preset)
    if preset.weights_dtype != "float32":
        # The card is measured on the weights as stored, so its numbers are those users get.
        store_weights_as(out, getattr(torch, preset.weights_dtype))
    training_data = {
        "description": "gendet's local benchmark (gendet bench --preset tiny): crops of the shipped real photos, "
                       "split by photo, and one subset per generator family trained here",
        "subsets": {g: {"family": sub.get("family"), "counts": sub.get("counts"), "fidelity": sub.get("fidelity")}
                    for g, sub in data_info.get("subsets", {}).items()},
        "data_key": data_info.get("key"),
    }
    print("writing the model card (evaluating on every subset's val split and degradation)")
    build_model_card(out, [s for s in samples if s.split == "val"], preset.card_name, training_data,
                     f"gendet train --preset {args.preset} --out {args.out} --seed {args.seed}", preset.notes,
                     device=args.device)
    print(f"model card: {out / CARD_MD}")


def _print_summary(s: dict[str, Any]) -> None:
    m = s.get("val_metrics") or {}

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [
        f"stopped: {s['stop_reason']} after {s['epochs_run']} epoch(s), {s['global_step']} steps "
        f"({s['seconds']:.1f} s)",
        f"best epoch: {fmt(s['best_epoch'])}  val AUC: {fmt(m.get('auc'))}  val acc: {fmt(m.get('acc'))} "
        f"(real {fmt(m.get('real_acc'))}, fake {fmt(m.get('fake_acc'))})",
        f"threshold: {fmt(s['threshold'])} ({s['threshold_source']}); fitted on validation: "
        f"{fmt(s['threshold_val'])}",
        f"decode errors: {s['decode_errors']['train']} train, {s['decode_errors']['val']} val (listed in the log)",
        "files:",
        *[f"  {f}" for f in s["files"]],
    ]
    print("\n".join(lines), file=sys.stdout)
