"""`gendet serve`: the detector as an HTTP API (POST /v1/detect) with a web page at /.

The model is loaded (and checked) before the port is bound, so a bad checkpoint is a usage
error (exit 2), not a crashed server. Exit codes: 0 after a clean shutdown (Ctrl-C); 2 usage errors.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

import torch

from gendet.cli.main import UsageError
from gendet.cli.provenance_options import add_provenance_options, scan_task
from gendet.data.decode import DecodeLimits
from gendet.detect.model import ModelSetupError, default_checkpoint_dir, is_onnx_file, load_scan_model, resolve_device
from gendet.extras import require
from gendet.serve.limits import DEFAULT_FORMATS, MB, ConnectionGuards, Limits

EPILOG = """\
endpoints: POST /v1/detect (multipart files, or JSON {"images": [base64, ...]}; ?explain=true adds a heat map
  and the evidence text), GET /v1/model (model card), GET /health, OpenAPI docs at /docs, web page at /.
  Each result: {"name","score","label","threshold","model","error","status"}; score = P(generated).
security: the server binds 127.0.0.1 unless told otherwise. On any other address it refuses to start without
  an API key (GENDET_API_KEY, or --api-key), because anyone who can reach the port could otherwise use the
  model and its CPU; clients then send X-API-Key: KEY (or Authorization: Bearer KEY). --insecure overrides
  this, for trusted networks only. Prefer the environment variable: --api-key is visible in `ps`.
examples:
  gendet serve                                   # http://127.0.0.1:8000/
  curl -F file=@photo.jpg http://127.0.0.1:8000/v1/detect
  GENDET_API_KEY=secret gendet serve --host 0.0.0.0 --workers 2
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="serve the detector over HTTP (API + web page)",
        description="Serve the detector as an HTTP API with a web page for checking images. "
        f"Without --checkpoint the model shipped with gendet is used ({default_checkpoint_dir()}).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--checkpoint", default=None, metavar="DIR", help="checkpoint directory (default: shipped model)")
    p.add_argument("--model", dest="checkpoint", metavar="NAME",
                   help="a shipped model by name instead of --checkpoint: default, fast (see `gendet models`)")
    p.add_argument("--workers", type=int, default=1,
                   help="uvicorn worker processes, each with its own copy of the model (default 1)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--engine", default=None, choices=("torch", "onnx"),
                   help="torch, or onnx: onnxruntime on --checkpoint MODEL.onnx (from `gendet export`) or on the "
                   "checkpoint exported at start-up; explanations need torch (default: onnx for a .onnx "
                   "--checkpoint, else torch)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model in each worker (default: CPU cores / workers); fewer leaves "
                   "cores to decoding uploads (benchmarks/README.md)")
    p.add_argument("--threshold", default=None, metavar="fixed|val|FLOAT",
                   help="decision threshold (default: the checkpoint's own), as in `gendet detect`")
    p.add_argument("--api-key", default=None, help="require this key on /v1/* (default: $GENDET_API_KEY if set)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without an API key (trusted networks only; see below)")
    add_provenance_options(p, ("on", "off"), "provenance (as in gendet detect)")
    g = p.add_argument_group("batching")
    g.add_argument("--max-batch", type=int, default=32, help="largest batch of concurrent images (1 = no batching)")
    g.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long the first waiting image waits for others to join its batch (default 5)")
    g = p.add_argument_group("limits (each refusal is a 4xx with the reason)")
    g.add_argument("--max-upload-mb", type=float, default=20.0, help="image bytes per request (default 20, 413)")
    g.add_argument("--max-pixels", type=int, default=Limits.max_pixels, help="pixels per image (413)")
    g.add_argument("--max-images", type=int, default=Limits.max_images, help="images per request (413)")
    g.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                   help="accepted Pillow formats, comma-separated (others: 415)")
    g.add_argument("--max-queue", type=int, default=Limits.max_queue,
                   help="images in the pipeline: decoding, waiting for the model, being scored (503 + Retry-After)")
    g.add_argument("--max-requests", type=int, default=Limits.max_requests,
                   help="requests being read or processed at once (503 + Retry-After)")
    g.add_argument("--max-explain-queue", type=int, default=Limits.max_explain_queue,
                   help="?explain=true images waiting for or getting an explanation (503 + Retry-After)")
    g.add_argument("--decode-workers", type=int, default=None,
                   help="decoder processes per server worker (default: CPU cores, at least 2)")
    g.add_argument("--decode-limit", action="append", default=[], metavar="KEY=VALUE",
                   help="change a decode budget, as in `gendet detect` (e.g. timeout_s=5); max_pixels and the byte "
                   "cap come from --max-pixels and --max-upload-mb")
    g = p.add_argument_group("connections")
    g.add_argument("--header-timeout", type=float, default=ConnectionGuards.header_timeout_s,
                   help="seconds a client has to send its request headers (then 408 and closed)")
    g.add_argument("--body-timeout", type=float, default=ConnectionGuards.body_timeout_s,
                   help="seconds a client has to send its request body (then 408 and closed)")
    g.add_argument("--max-connections", type=int, default=ConnectionGuards.max_connections,
                   help="open connections per worker; when full, the one waiting longest for its headers is "
                   "closed, else the new one gets 503")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def build_limits(args: argparse.Namespace) -> Limits:
    try:
        return Limits(max_upload_bytes=int(args.max_upload_mb * MB), max_pixels=args.max_pixels,
                      max_images=args.max_images, max_queue=args.max_queue, max_requests=args.max_requests,
                      max_explain_queue=args.max_explain_queue, decode=DecodeLimits.from_pairs(args.decode_limit),
                      formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()))
    except ValueError as e:
        raise UsageError(str(e)) from None


def build_guards(args: argparse.Namespace) -> ConnectionGuards:
    try:
        return ConnectionGuards(args.header_timeout, args.body_timeout, args.max_connections)
    except ValueError as e:
        raise UsageError(str(e)) from None


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (servers hold one per connection); returns it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def _check(args: argparse.Namespace) -> tuple[Limits, str | None]:
    if args.engine is None:  # an exported .onnx file can only run on onnxruntime
        args.engine = "onnx" if is_onnx_file(args.checkpoint) else "torch"
    args.host = args.host.strip("[]")  # [::1] is how URLs write it; the socket wants ::1
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.max_batch < 1:
        raise UsageError(f"--max-batch must be >= 1, got {args.max_batch}")
    if args.batch_wait_ms < 0:
        raise UsageError(f"--batch-wait-ms must be >= 0, got {args.batch_wait_ms}")
    if args.decode_workers is not None and args.decode_workers < 1:
        raise UsageError(f"--decode-workers must be >= 1, got {args.decode_workers}")
    limits = build_limits(args)
    api_key = args.api_key or os.environ.get("GENDET_API_KEY") or None
    if not is_loopback(args.host) and api_key is None and not args.insecure:
        raise UsageError(
            f"refusing to serve on {args.host} without an API key: anyone who can reach this port could use the "
            "model. Set GENDET_API_KEY (or --api-key), or pass --insecure on a trusted network"
        )
    return limits, api_key


def run(args: argparse.Namespace) -> int:
    limits, api_key = _check(args)
    guards = build_guards(args)
    uvicorn = require("uvicorn", "gendet serve")
    for module in ("fastapi", "python_multipart", "swagger_ui_bundle"):
        require(module, "gendet serve")

    from gendet.serve import protocol
    from gendet.serve.app import API_KEY_ENV, SETTINGS_ENV, create_app

    try:
        device = resolve_device(args.device)
        if args.engine == "onnx":  # fail here, before binding the port
            from gendet.detect.onnx_model import load_onnx_model

            model = load_onnx_model(args.checkpoint, device, args.threshold)
        else:
            model = load_scan_model(args.checkpoint, device, args.threshold)
    except (ValueError, ModelSetupError) as e:
        raise UsageError(str(e)) from None
    task = scan_task(args)
    settings = {"device": str(device), "threshold": args.threshold, "limits": limits.to_dict(),
                "batch_wait_ms": args.batch_wait_ms, "max_batch": args.max_batch,
                "decode_workers": args.decode_workers, "provenance": task.provenance,
                "watermark": task.options.watermark, "c2pa_trust": task.options.trust_anchors, "engine": args.engine}
    protocol.configure(guards)
    open_files = raise_open_file_limit()
    if open_files < guards.max_connections + 64:
        print(f"gendet serve: warning: only {open_files} open files allowed; --max-connections "
              f"{guards.max_connections} may not be reachable (ulimit -n)", file=sys.stderr)
    server_options = {"http": protocol.GuardedHttpToolsProtocol.PATH, "timeout_keep_alive": 5}
    shown = "localhost" if args.host in ("127.0.0.1", "::1") else args.host
    print(f"gendet serve: http://{shown}:{args.port}/ (API docs /docs), model {model.name} on {device}, "
          f"threshold {model.threshold:.4g}, {args.workers} worker(s), "
          f"{'API key required' if api_key else 'no API key'}", file=sys.stderr)
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // args.workers)
    if args.workers == 1:
        torch.set_num_threads(threads)
        if hasattr(model.detector, "set_num_threads"):
            model.detector.set_num_threads(threads)
        app = create_app(model=model, api_key=api_key, **settings)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **server_options)
        return 0
    # Worker processes import the app themselves: settings travel in the environment.
    onnx_file = getattr(model.detector, "path", None)  # workers reopen the very file this process exported
    settings.update(checkpoint=str(onnx_file or model.checkpoint), torch_threads=threads, guards=guards.to_dict())
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    if api_key:
        os.environ[API_KEY_ENV] = api_key
    uvicorn.run("gendet.serve.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, **server_options)
    return 0
