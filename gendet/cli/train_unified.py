"""`gendet train --model unigendet --stage gduf|diga`: argument handling for UniGenDet's two stages."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gendet.cli.main import UsageError
from gendet.cli.train_common import check_out_dir, command_line, load_training_data, parse_overrides
from gendet.models.checkpoint import CheckpointError
from gendet.training.run_dir import clear_run


def unified_config(args: argparse.Namespace, recipe: dict[str, Any], stage: str):
    from gendet.training.unified import UnifiedConfig

    try:
        return UnifiedConfig(
            stage=stage, steps=args.steps or recipe[f"{stage}_steps"], det_batch=args.batch_size or recipe["det_batch"],
            det_gen_ratio=args.det_gen_ratio, lr=args.lr or recipe["lr"], weight_decay=args.weight_decay,
            warmup=args.warmup, grad_clip=args.grad_clip, threshold_mode=args.threshold, seed=args.seed,
            amp="off" if args.amp == "off" else "auto",
            device=args.device, workers=args.workers, save_every_steps=args.save_every,
            progress=not args.no_progress,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _stage_model(args: argparse.Namespace, overrides: dict[str, Any], train: list) -> tuple[Any, Any]:
    """The model to train in --stage and, for DIGA, the frozen teacher (the --init GDUF model)."""
    from gendet.models.checkpoint import load_checkpoint
    from gendet.models.unigendet.build import build_unigendet

    teacher = None
    if args.stage == "diga":
        if not args.init:
            raise UsageError("--stage diga needs --init DIR: the GDUF checkpoint to align")
        if overrides:
            raise UsageError("--stage diga continues the --init model: --set is not allowed")
        try:
            model, _ = load_checkpoint(args.init)
        except (CheckpointError, FileNotFoundError, ValueError) as e:
            raise UsageError(f"cannot load --init {args.init}: {e}") from None
        if model.name != "unigendet":
            raise UsageError(f"--init {args.init} holds a {model.name!r} model, not unigendet")
        teacher = model.frozen_copy()
    else:
        if args.init:
            raise UsageError("--init is for --stage diga")
        try:
            model = build_unigendet(overrides, train, args.autoencoder)
        except (TypeError, ValueError, FileNotFoundError, CheckpointError) as e:
            raise UsageError(f"cannot build unigendet: {e}") from None
    return model, teacher


def run_unified(args: argparse.Namespace, data_info: dict[str, Any] | None) -> int:
    from gendet.models.unigendet.build import RECIPES
    from gendet.training.state import seed_everything
    from gendet.training.trainer import ResumeError
    from gendet.training.unified import train_unified

    if args.weights:
        raise UsageError("unigendet has no pretrained backbone to load: drop --weights")
    if args.amp == "fp16":
        raise UsageError("unigendet trains in bf16 autocast on CUDA (--amp auto|bf16) or float32 (--amp off)")
    overrides = parse_overrides(args.overrides)
    recipe_name = args.recipe or overrides.get("preset", "tiny")
    if recipe_name not in RECIPES:
        raise UsageError(f"unknown --recipe {recipe_name!r}; available: {', '.join(RECIPES)}")
    cfg = unified_config(args, RECIPES[recipe_name], args.stage)
    out = Path(args.out).expanduser()
    check_out_dir(out, args.resume, args.overwrite)
    d = load_training_data(args, data_info)
    seed_everything(cfg.seed)
    model, teacher = _stage_model(args, overrides, d.train)
    pp = model.preprocess(args.align, args.jpeg_quality)
    print(f"unigendet/{args.stage}: {model.num_parameters / 1e6:.2f} M parameters, {cfg.steps} steps, "
          f"{len(d.train)} train / {len(d.val)} held-out samples from {d.root}")
    extra = {"data_root": str(d.root.resolve()), "subset": args.subset, "layout": d.layout,
             "stage": args.stage, "init": str(Path(args.init).resolve()) if args.init else None,
             "recipe": recipe_name, "overrides": overrides, "command": command_line(args),
             "resumed": bool(args.resume)}
    if args.overwrite:
        clear_run(out)
    try:
        summary = train_unified(model, d.train, d.val, pp, cfg, out, teacher=teacher, resume=args.resume,
                                extra_config=extra, max_steps=args.max_steps)
    except ResumeError as e:
        raise UsageError(str(e)) from None
    m = summary.get("val_metrics") or {}
    print(f"done in {summary['seconds']} s: {summary['global_step']} steps; text loss {summary['text_loss']}")
    if m:
        print(f"held-out validation: acc {m.get('acc')}, AUC {m.get('auc')}, threshold {summary['threshold']} "
              f"({summary['threshold_source']})")
    print(f"checkpoint: {out}")
    return 0
