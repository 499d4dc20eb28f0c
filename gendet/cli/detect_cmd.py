"""`gendet detect`: is this image generated? For one file, a folder, or a million paths.

One file and no --output: a verdict line on stdout. Otherwise one record per
input, streamed as JSONL or CSV to --output (default: stdout).
Exit codes: 0 all inputs scored; 1 some inputs failed (all others written; a resumed output's
earlier error records count too);
2 usage errors (arguments, checkpoint, output file).
"""

from __future__ import annotations

import argparse
import os
import sys

from gendet.cli.main import UsageError
from gendet.cli.provenance_options import add_provenance_options, scan_task
from gendet.data.decode import DecodeLimits
from gendet.detect.inputs import check_specs, is_single_file, iter_inputs
from gendet.detect.model import (
    ModelSetupError,
    ScanModel,
    default_checkpoint_dir,
    is_onnx_file,
    load_scan_model,
    resolve_device,
)
from gendet.detect.pipeline import ScanSummary, iter_record_batches
from gendet.detect.prepare import PROVENANCE_MODES, ScanTask
from gendet.detect.scan import ScanResult, scan
from gendet.detect.writers import FORMATS, OutputError, Record
from gendet.extras import require

EPILOG = """\
inputs: FILE, FOLDER (walked for image files), 'GLOB' (quote it; ** recurses),
  @LIST or --paths-from LIST (a text file of paths, one per line), - (paths on stdin).
records: {"path","score","label","threshold","model","error","model_version","verdict","reason","conflict",
  "provenance"}; score = P(generated) in [0,1] from the pixels only, label "fake" iff score >= threshold, else
  "real"; on failure label/score are null and error says why. provenance: what the file says about itself
  (C2PA, IPTC/XMP, EXIF, generator text chunks, with --watermark invisible watermarks), one finding each
  {signal, says, strength, detail, error, generator, model}. verdict: generated | edited | real | unknown, by
  one rule: a signed, declared or embedded finding that says generated/edited decides; otherwise the pixel
  label; conflicts between the two are in "conflict". CSV: provenance flattened to two columns.
  Paths are absolute; a file name that is not valid UTF-8 appears in JSONL as \\udcXX escapes:
  os.fsencode(json.loads(line)["path"]) gives its exact bytes.
examples:
  gendet detect photo.jpg
  gendet detect ~/Pictures --output scan.jsonl --workers 4
  find /data -name '*.png' | gendet detect - --output scan.csv
  gendet detect ~/Pictures --output scan.jsonl --resume     # continue a killed scan
  gendet detect uploads/ --provenance only --output meta.csv  # metadata only, no pixel model (fast)
  gendet detect /data --engine ray --address auto --output scan.jsonl   # on a Ray cluster (docs/cluster.md)
"""


def _limit_defaults() -> str:
    return ", ".join(f"{k}={v:g}" for k, v in DecodeLimits().to_dict().items())


def default_workers() -> int:
    # Leave one core to the model; decoding workers beyond ~8 rarely pay off.
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="scan images, folders or path lists for generated images (JSONL/CSV records)",
        description="Say whether images are AI-generated. Scores are P(generated); "
        f"without --checkpoint the model shipped with gendet is used ({default_checkpoint_dir()}).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="files, folders, globs, @LIST, or - for stdin")
    p.add_argument("--paths-from", action="append", default=[], metavar="LIST",
                   help="text file with one path per line (same as @LIST; repeatable)")
    p.add_argument("--checkpoint", default=None, metavar="DIR", help="checkpoint directory (default: shipped model)")
    p.add_argument("--model", dest="checkpoint", metavar="NAME",
                   help="a shipped model by name instead of --checkpoint: default, fast (see `gendet models`)")
    p.add_argument("--output", "-o", default=None, metavar="OUT",
                   help="OUT.jsonl, OUT.csv or - for stdout (default: a verdict line for one file, else stdout)")
    p.add_argument("--format", default=None, choices=FORMATS, help="record format (default: from OUT's extension)")
    p.add_argument("--resume", action="store_true", help="skip paths already in OUT and append to it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--force", action="store_true",
                   help="with --resume: append even though OUT holds another model's records")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None,
                   help=f"decoding worker processes (default: CPU cores - 1, here {default_workers()})")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", default="auto", metavar="auto|N",
                   help="CPU threads for the model. auto (default): all cores, unless the first batches show "
                   "the model is faster than decoding; then CPU cores - workers, leaving the decoders their cores")
    p.add_argument("--threshold", default=None, metavar="fixed|val|FLOAT",
                   help="decision threshold (default: the checkpoint's own): fixed 0.5, val (fitted on "
                   "held-out training data) or a number")
    p.add_argument("--decode-limit", action="append", default=[], metavar="KEY=VALUE",
                   help="change a decode budget (repeatable), e.g. timeout_s=30, max_aspect=64, max_pixels=..., "
                   "max_file_bytes, max_resized_pixels, max_jpeg_markers, max_jpeg_scans, max_png_chunks "
                   f"(defaults: {_limit_defaults()})")
    p.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                   help="walk sub-folders of folder inputs (default: yes)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    add_provenance_options(p, PROVENANCE_MODES)
    r = p.add_argument_group("engine")
    r.add_argument("--engine", default=None, choices=("local", "onnx", "ray"),
                   help="local: decoder processes on this machine, the model in torch; onnx: the same with the "
                   "model in onnxruntime (--checkpoint MODEL.onnx from `gendet export`, or a checkpoint exported "
                   "on the fly), same records; ray: Ray Data (decode tasks + a model actor pool), same records "
                   "(default: onnx for a .onnx --checkpoint, else local)")
    r.add_argument("--address", default=None,
                   help="ray: cluster address (auto, ray://HOST:10001); default: a local Ray instance")
    r.add_argument("--ray-actors", type=int, default=None,
                   help="ray: model actors (default: one per GPU, else CPUs - 1)")
    r.add_argument("--ray-cpus-per-actor", type=float, default=None, help="ray: CPUs each actor claims (default 1)")
    r.add_argument("--ray-gpus-per-actor", type=float, default=None,
                   help="ray: GPUs each actor claims (default 1 when the cluster has GPUs, else 0)")
    return p


def _check(args: argparse.Namespace) -> tuple[list[str], int]:
    if args.engine is None:  # an exported .onnx file can only run on onnxruntime
        args.engine = "onnx" if is_onnx_file(args.checkpoint) else "local"
    specs = list(args.inputs) + [f"@{f}" for f in args.paths_from]
    try:
        check_specs(specs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    workers = default_workers() if args.workers is None else args.workers
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    if args.threads != "auto":
        if not str(args.threads).isdigit() or int(args.threads) < 1:
            raise UsageError(f"--threads must be auto or a number >= 1, got {args.threads!r}")
        args.threads = int(args.threads)
    _check_resume(args)
    _check_ray(args)
    try:
        args.limits = DecodeLimits.from_pairs(args.decode_limit)
    except ValueError as e:
        raise UsageError(str(e)) from None
    args.task = scan_task(args)
    return specs, workers


def _check_resume(args: argparse.Namespace) -> None:
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other")
    if args.resume and args.output in (None, "-"):
        raise UsageError("--resume needs --output FILE")
    if args.force and not args.resume:
        raise UsageError("--force only applies to --resume")


def _check_ray(args: argparse.Namespace) -> None:
    if args.engine != "ray" and (args.address or args.ray_actors or args.ray_cpus_per_actor is not None
                                   or args.ray_gpus_per_actor is not None):
        raise UsageError("--address and --ray-* options need --engine ray")
    if args.ray_actors is not None and args.ray_actors < 1:
        raise UsageError(f"--ray-actors must be >= 1, got {args.ray_actors}")
    for flag in ("ray_cpus_per_actor", "ray_gpus_per_actor"):
        if (getattr(args, flag) or 0) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0")



def _verdict(specs: list[str], model: ScanModel, device: str, limits: DecodeLimits, task: ScanTask) -> int:
    """The one-file answer: a human line on stdout, then one line per provenance finding."""
    summary = ScanSummary()
    batches = iter_record_batches(iter_inputs(specs), model, batch_size=1, workers=0, device=device, summary=summary,
                                  limits=limits, task=task)
    rec = next(r for batch in batches for r in batch)
    if rec.error is not None and rec.verdict is None:
        print(f"{rec.path}: error: {rec.error}", file=sys.stderr)
        _print_findings(rec)
        return 1
    words = {"generated": "GENERATED (fake)", "edited": "EDITED", "real": "REAL", "unknown": "UNKNOWN"}
    line = f"{rec.path}: {words.get(str(rec.verdict), 'REAL' if rec.label == 'real' else 'GENERATED')}"
    if rec.score is not None:
        cmp = ">=" if rec.label == "fake" else "<"
        line += f"  score {rec.score:.4f} {cmp} threshold {rec.threshold:.4f} ({model.threshold_source})"
    print(f"{line}  model {rec.model}")
    if rec.reason and rec.reason.startswith("provenance:"):
        print(f"  reason: {rec.reason}")
    if rec.conflict:
        print(f"  conflict: {rec.conflict}")
    _print_findings(rec)
    if rec.error is not None:
        print(f"{rec.path}: error: {rec.error}", file=sys.stderr)
        return 1
    return 0


def _print_findings(rec: Record) -> None:
    for f in rec.provenance or ():
        error = f"  [error: {f['error']}]" if f.get("error") else ""
        print(f"  provenance: {f['signal']} says {f['says']} ({f['strength']}): {f['detail']}{error}")


# a scan whose model scored under half its wall time waited on decoding (a few inputs: start-up dominates)
DECODE_BOUND_BELOW, DECODE_BOUND_MIN_INPUTS = 0.5, 200


def _print_summary(result: ScanResult, where: str, workers: int | None = None) -> None:
    s, err = result.summary, sys.stderr
    if result.dropped_bytes:
        print(f"resume: dropped a partial last record ({result.dropped_bytes} bytes) from {where}", file=err)
    rate = f"{s.images_per_second:.1f} img/s" if s.seconds > 0 else "-"
    resumed = f", {s.resumed} already done (resume)" if s.resumed else ""
    if result.earlier_errors:
        resumed += f", {result.earlier_errors} errors among the records kept from before"
    print(
        f"gendet detect: {s.total} inputs in {s.seconds:.1f} s ({rate}): {s.fake} fake, {s.real} real, "
        f"{s.errors} errors{resumed}; records in {where}"
        + (f"; model on {s.model_threads} CPU threads" if s.model_threads else "")
        + (f", scoring {100 * s.model_busy:.0f} % of the time" if s.model_seconds > 0 else ""),
        file=err,
    )
    if s.model_seconds > 0 and s.total >= DECODE_BOUND_MIN_INPUTS and s.model_busy < DECODE_BOUND_BELOW:
        more = " (more --workers may help)" if workers is not None and workers < (os.cpu_count() or 1) else ""
        print(f"  decoding bound this scan: the model scored during {100 * s.model_busy:.0f} % of it and waited "
              f"for decoded images (or the output) the rest{more}", file=err)
    if s.by_provenance or s.conflicts:
        print(f"  provenance: {s.by_provenance} verdicts set by a signed/declared/embedded finding, "
              f"{s.conflicts} records with a conflict between provenance and pixels (see their \"conflict\")",
              file=err)
    if s.replaced_workers:
        print(f"  {s.replaced_workers} decoder process(es) were stopped or died and were replaced "
              "(a file being decoded by one has an error record saying so)", file=err)
    if result.inputs.duplicates:
        print(f"  {result.inputs.duplicates} inputs named a path already scanned (one record each)", file=err)
    if result.inputs.skipped_not_image:
        print(f"  skipped {result.inputs.skipped_not_image} non-image files in folders, e.g. "
              f"{result.inputs.examples_not_image[0]}", file=err)
    for path, reason in s.error_examples[:3]:
        print(f"  error: {path}: {reason}", file=err)


def run(args: argparse.Namespace) -> int:
    specs, workers = _check(args)
    try:
        # ray: the driver only checks the checkpoint and reads its threshold; actors pick their device
        device = resolve_device("cpu" if args.engine == "ray" else args.device)
        if args.engine == "onnx":
            from gendet.detect.onnx_model import load_onnx_model

            model = load_onnx_model(args.checkpoint, device, args.threshold)
        else:
            model = load_scan_model(args.checkpoint, device, args.threshold)
    except (ValueError, ModelSetupError) as e:
        raise UsageError(str(e)) from None
    if args.engine == "ray":
        return _run_ray(args, specs, model)
    if args.output is None and is_single_file(specs):
        return _verdict(specs, model, str(device), args.limits, args.task)
    output = "-" if args.output is None else args.output
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        result = scan(
            specs, model, output=output, fmt=args.format, resume=args.resume, overwrite=args.overwrite,
            batch_size=args.batch_size, workers=workers, device=device, recursive=args.recursive,
            progress=progress, threads=args.threads, force=args.force, limits=args.limits, task=args.task,
        )
    except OutputError as e:
        raise UsageError(str(e)) from None
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): stop quietly; point stdout at devnull so the exit flush is silent
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    _print_summary(result, "stdout" if output == "-" else output, workers)
    return 1 if result.summary.errors or result.earlier_errors else 0


def _run_ray(args: argparse.Namespace, specs: list[str], model: ScanModel) -> int:
    require("ray", "--engine ray")
    from gendet.detect.ray_engine import RayOptions, scan_ray

    if args.device not in ("auto", "cpu", "cuda"):
        raise UsageError("--engine ray: --device must be auto, cpu or cuda (actors get their own GPUs)")
    output = "-" if args.output is None else args.output
    options = RayOptions(args.address, args.ray_actors, args.ray_cpus_per_actor, args.ray_gpus_per_actor)
    try:
        result = scan_ray(specs, model, output=output, fmt=args.format, resume=args.resume, overwrite=args.overwrite,
                          batch_size=args.batch_size, device=args.device, recursive=args.recursive,
                          progress=sys.stderr.isatty() if args.progress is None else args.progress, options=options,
                          force=args.force, task=args.task)
    except OutputError as e:
        raise UsageError(str(e)) from None
    _print_summary(result, "stdout" if output == "-" else output)  # Ray's actors score: no model_seconds
    return 1 if result.summary.errors or result.earlier_errors else 0
