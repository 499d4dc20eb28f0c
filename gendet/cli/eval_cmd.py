"""`gendet eval`: score a data set with a checkpoint and write metrics JSON + per-image predictions CSV.

Exit codes: 0 success; 1 some files could not be decoded (results still written)
or none could; 2 usage errors (bad paths, arguments, checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import torch

from gendet.cli.main import UsageError, command_line
from gendet.data.layouts import LAYOUTS
from gendet.data.preprocess import ALIGN_MODES, Preprocess
from gendet.data.sample import Sample
from gendet.evaluation.degradations import DEGRADATIONS
from gendet.evaluation.eval_job import eval_record, evaluate_blocks
from gendet.evaluation.inference import Predictions
from gendet.evaluation.protocol import read_eval_samples, resolve_threshold, write_predictions_csv
from gendet.evaluation.text_metrics import explanation_report
from gendet.io import atomic_write_text
from gendet.models.base import Detector
from gendet.models.checkpoint import CheckpointError, checkpoint_preprocess, load_checkpoint


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="evaluate a checkpoint on a data set (metrics JSON + predictions CSV)",
        description="Evaluate a trained checkpoint with the GenImage protocol metrics. "
        "Labels: 1 = generated, 0 = real; scores are P(generated).",
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint directory (from gendet train)")
    p.add_argument("--data", required=True, metavar="ROOT", help="data root (folder, manifest or FakeClue JSON)")
    p.add_argument("--layout", default="auto", choices=["auto", *LAYOUTS], help="data layout (default: auto)")
    p.add_argument("--subset", default=None, metavar="NAME", help="evaluate only this subset (generator)")
    p.add_argument(
        "--split", default="auto", choices=["auto", "train", "val", "test"],
        help="split to evaluate; auto = test if present, else val (GenImage's test set), else all",
    )
    p.add_argument(
        "--degradation", default="none", choices=["none", *DEGRADATIONS, "all"],
        help="GenImage Task 2 degradation applied after alignment; 'all' = none + all six",
    )
    p.add_argument(
        "--threshold", default="fixed", metavar="fixed|val|FLOAT",
        help="decision threshold: fixed 0.5, the checkpoint's threshold fitted on held-out training data, "
        "or a number (default: fixed)",
    )
    p.add_argument("--json", default=None, metavar="OUT.json", help="output file (default: DIR/eval/<tag>.json)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--align", default=None, choices=ALIGN_MODES,
        help="override the checkpoint's format alignment (numbers are then not comparable)",
    )
    p.add_argument(
        "--no-explanations", action="store_true",
        help="skip explanation metrics (ROUGE-L, TF-IDF cosine) for models with a text head; "
        "generating texts is slower than scoring",
    )
    return p


def _tag(data: Path, subset: str | None, split: str, degradation: str) -> str:
    parts = [data.stem if data.is_file() else data.resolve().name]
    parts += [p for p in (subset, None if split == "auto" else split, degradation) if p and p != "none"]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-") or "eval"


def _check_args(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise UsageError(f"--device {args.device!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available on this machine")


def _load(args: argparse.Namespace) -> tuple[Detector, dict[str, Any], Preprocess, str]:
    """Detector, its config, the preprocessing to use, and the checkpoint's own alignment."""
    ckpt = Path(args.checkpoint)
    if not ckpt.is_dir():
        raise UsageError(f"--checkpoint {ckpt}: not a directory")
    try:
        detector, config = load_checkpoint(ckpt, args.device)
        pp = checkpoint_preprocess(detector, config)
    except (CheckpointError, KeyError, TypeError, ValueError) as e:  # KeyError/TypeError: unknown model/config keys
        raise UsageError(f"cannot load checkpoint {ckpt}: {e}") from None
    trained_align = pp.align
    if args.align is not None and args.align != trained_align:
        print(
            f"warning: --align {args.align} overrides the checkpoint's alignment ({trained_align}); "
            "these numbers are not comparable with evaluations under the checkpoint's preprocessing",
            file=sys.stderr,
        )
        pp = dataclasses.replace(pp, align=args.align)
    return detector, config, pp, trained_align


def _samples(args: argparse.Namespace, config: dict[str, Any]) -> tuple[list[Sample], str]:
    """The labelled samples to evaluate and the layout they were read with."""
    try:
        samples, layout = read_eval_samples(args.data, args.layout, args.subset, args.split)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    trained_on = config.get("data_root")
    if trained_on and any(s.split == "train" for s in samples):
        same = Path(str(trained_on)).resolve() == Path(args.data).resolve()
        if same:
            print(
                "warning: evaluating images marked as training split of the data this checkpoint was trained on",
                file=sys.stderr,
            )
    return samples, layout


def _explanations(
    args: argparse.Namespace, detector: Detector, pp: Preprocess, preds: Predictions, csv_path: Path
) -> dict[str, Any] | None:
    if args.no_explanations:
        return None
    degradation = None if args.degradation in ("none", "all") else args.degradation
    return explanation_report(detector, preds.samples, pp, csv_path, degradation=degradation,
                              batch_size=args.batch_size, device=args.device, seed=args.seed)


def _fmt(v: Any) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def _summary_line(name: str, m: dict[str, Any], width: int) -> str:
    return (
        f"  {name:<{width}} n={m['n']:<6d} acc={_fmt(m['acc'])} real={_fmt(m['real_acc'])} "
        f"fake={_fmt(m['fake_acc'])} auc={_fmt(m['auc'])} ap={_fmt(m['ap'])} eer={_fmt(m['eer'])} "
        f"ece={_fmt(m['ece'])}"
    )


def _print_summary(result: dict[str, Any], out: Path, csv_path: Path) -> None:
    print(
        f"gendet eval: {result['model']} on {result['data_root']} (split {'+'.join(result['splits'])}, "
        f"align {result['align']}, "
        f"threshold {result['threshold']:.3f} {result['threshold_source']})"
    )
    blocks = {"all": result, **result["subsets"]}
    width = max(len(k) for k in blocks)
    for name, m in blocks.items():
        print(_summary_line(name, m, width))
    if "degradations" in result:
        width = max(len(k) for k in result["degradations"])
        print("degradations (all images):")
        for name, m in result["degradations"].items():
            print(_summary_line(name, m, width))
        print(f"  mean acc over the six degradations: {_fmt(result['degradation_summary']['mean'])}")
    if "explanation" in result:
        e = result["explanation"]
        print(f"explanations: n={e['n']} rouge_l={_fmt(e['rouge_l'])} tfidf_cosine={_fmt(e['tfidf_cosine'])} "
              f"exact_match={_fmt(e['exact_match'])} (texts in {e['explanations_file']})")
    if result["errors"]:
        print(f"{len(result['errors'])} files could not be decoded (listed under 'errors' in the JSON), e.g.:")
        for path, reason in result["errors"][:3]:
            print(f"  {path}: {reason}")
    print(f"wrote {out} and {csv_path}")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    detector, config, pp, trained_align = _load(args)
    try:
        threshold, source = resolve_threshold(args.threshold, config)
    except ValueError as e:
        raise UsageError(str(e)) from None
    samples, layout = _samples(args, config)
    torch.manual_seed(args.seed)
    try:
        blocks = evaluate_blocks(detector, samples, pp, threshold, source, args.degradation, args.batch_size,
                                 args.workers, args.device, args.seed, progress=sys.stderr.isatty())
    except ValueError as e:  # nothing decodable
        print(f"gendet eval: error: {e}", file=sys.stderr)
        return 1
    out = Path(args.json) if args.json else Path(args.checkpoint) / "eval" / (
        _tag(Path(args.data), args.subset, args.split, args.degradation) + ".json"
    )
    csv_path = out.with_name(out.stem + ".predictions.csv")
    explanation = _explanations(args, detector, pp, blocks.preds[blocks.main],
                                out.with_name(out.stem + ".explanations.csv"))
    result = eval_record(blocks, samples, pp, explanation, align_checkpoint=trained_align, model=config.get("model"),
                         checkpoint=str(Path(args.checkpoint).resolve()), data_root=str(Path(args.data).resolve()),
                         layout=layout, subset=args.subset, split=args.split, command=command_line(args),
                         seed=args.seed, predictions_file=csv_path.name)
    atomic_write_text(out, json.dumps(result, indent=2, allow_nan=False))
    write_predictions_csv(csv_path, blocks.preds)
    _print_summary(result, out, csv_path)
    return 1 if blocks.errors else 0
