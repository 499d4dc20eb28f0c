"""`gendet generate`: sample images from a model that generates (a UniGenDet checkpoint)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gendet.cli.main import UsageError, command_line
from gendet.models.checkpoint import CheckpointError


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="generate images with a UniGenDet checkpoint (PNGs + a grid)",
                       description="Sample images from a UniGenDet checkpoint's generation path (rectified flow in "
                                   "its autoencoder's latent space, classifier-free guidance).")
    p.add_argument("--checkpoint", required=True, help="a UniGenDet checkpoint directory (gendet train --model "
                                                       "unigendet)")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--class", dest="class_id", type=int, default=0, help="class to condition on")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--cfg-scale", type=float, default=None, help="guidance scale (1 = none; default: the model's)")
    p.add_argument("--sampler", default="heun", choices=("heun", "euler"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--out", required=True, help="output directory for the PNGs, grid.png and generate.json")
    return p


def run(args: argparse.Namespace) -> int:
    import torch
    from torchvision.utils import save_image

    from gendet.detect.model import resolve_device
    from gendet.models.checkpoint import load_checkpoint

    if args.n < 1 or args.batch_size < 1 or (args.steps is not None and args.steps < 1):
        raise UsageError("--n, --batch-size and --steps must be >= 1")
    try:
        device = resolve_device(args.device)
        model, _ = load_checkpoint(args.checkpoint, str(device))
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        raise UsageError(f"cannot load --checkpoint {args.checkpoint}: {e}") from None
    if not hasattr(model, "generate") or model.name != "unigendet":
        raise UsageError(f"{args.checkpoint} holds a {model.name!r} detector, which cannot generate; "
                         "use a unigendet checkpoint")
    if not 0 <= args.class_id < int(model.config["num_classes"]):
        raise UsageError(f"--class must be in 0..{int(model.config['num_classes']) - 1}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    images = model.generate(args.n, args.seed, classes=torch.full((args.n,), args.class_id, dtype=torch.long),
                            steps=args.steps, cfg_scale=args.cfg_scale, batch_size=args.batch_size,
                            sampler=args.sampler)
    seconds = time.perf_counter() - start
    from PIL import Image

    for i, img in enumerate(images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(out / f"{i:05d}.png")
    save_image(images[:64].float() / 255.0, str(out / "grid.png"), nrow=8, padding=2)
    record = {"command": command_line(args), "checkpoint": str(Path(args.checkpoint).resolve()), "n": args.n,
              "class": args.class_id, "seed": args.seed, "steps": args.steps or model.config["sample_steps"],
              "cfg_scale": model.config["cfg_scale"] if args.cfg_scale is None else args.cfg_scale,
              "sampler": args.sampler, "seconds": round(seconds, 2), "device": str(device)}
    (out / "generate.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {args.n} images and grid.png to {out} in {seconds:.1f} s")
    return 0
