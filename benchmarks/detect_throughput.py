"""Throughput of `gendet detect` against a naive loop and the model-only bound, plus peak RSS.

On the same images and model, in one run:
  (a) pipeline  - gendet.detect.scan(): DataLoader workers decode, batched forward, JSONL written
  (b) naive     - for each file: decode, preprocess, forward a batch of one
  (c) model     - forward only, on tensors decoded beforehand, at the same batch size as (a)
  (d) core bound - what the machine's cores could do if decoding and the model shared them with
                   no overhead: cores / (decode+preprocess core-ms + model core-ms on 1 thread)
  (a) is run with provenance on (the default: C2PA/XMP/EXIF/generator chunks read from the same bytes),
  off, and on + invisible-watermark decoding (--watermark), side by side: what provenance costs;
  (a') and (c') are (a) and (c) with the model exported to ONNX and run by onnxruntime (--engine onnx).
--hog N runs N busy-looping processes beside every measurement (a shared machine); the --threads auto
line is then compared with the best fixed setting measured in the same load.
and the ratios a/b (what batching + overlapped decoding buy), a/c (how much of the
decode cost is hidden behind compute; 1.0 = all of it) and a/d (how close the pipeline gets
to the cores' limit when decoding costs as much as the model, as with a small model on a CPU).
Peak RSS: a child process scans --rss-n inputs (hard links to the bench images, made on the
fly) and reports ru_maxrss of itself and of its largest decoding worker; a scan of a tenth
as many inputs runs first so the two can be compared (flat = memory does not grow with n).

Images: JPEG crops (q90) of gendet's shipped real photos at --image-size-on-disk, each with camera EXIF
and an XMP packet (what provenance reads in a camera photo).
Model: --checkpoint, else the shipped default model, else (or with --stand-in) a freshly initialised
resnet50[arch=resnet18] at --stand-in-size px (same compute as a trained one; scores meaningless);
--lite0: a probe on the packaged EfficientNet-Lite0, 4 crops of 224 px per image as its `jpeg` preprocessing
asks (an untrained head: the compute of a Lite0-based detector; img/s counts images, not crops).

  python benchmarks/detect_throughput.py --n 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gendet  # noqa: F401 - sets OMP_WAIT_POLICY before torch loads
from gendet.cli.detect_cmd import default_workers
from gendet.data.decode import decode_image
from gendet.data.preprocess import ImageTransform
from gendet.data.real_photos import list_photos
from gendet.detect import ScanModel, default_checkpoint_dir, load_scan_model, scan
from gendet.detect.pipeline import score_batch
from gendet.detect.prepare import ScanTask
from gendet.models.checkpoint import save_checkpoint
from gendet.models.registry import create_detector
from gendet.provenance import ProvenanceOptions, read_provenance
from gendet.provenance.watermark import available as watermark_available


def _camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS 5D Mark II", "Adobe Photoshop Lightroom 6.3"
    ifd = exif.get_ifd(0x8769)
    ifd[0x829A], ifd[0x829D], ifd[0x8827] = 1 / 200, 5.6, 100
    return exif


CAMERA_EXIF = _camera_exif()
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
       b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"/>'
       b'</rdf:RDF></x:xmpmeta>')


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """n JPEG crops (size x 4/3 size, landscape) of the shipped real photos."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [decode_image(p) for p in list_photos()]
    w, h = size * 4 // 3, size
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        scale = max(w / photo.width, h / photo.height) * float(rng.uniform(1.0, 1.5))
        im = photo.resize((max(w, round(photo.width * scale)), max(h, round(photo.height * scale))))
        x, y = int(rng.integers(0, im.width - w + 1)), int(rng.integers(0, im.height - h + 1))
        p = folder / f"img_{i:05d}.jpg"
        im.crop((x, y, x + w, y + h)).save(p, quality=90, exif=CAMERA_EXIF, xmp=XMP)
        paths.append(p)
    return paths


def stand_in_checkpoint(out: Path, size: int) -> Path:
    torch.manual_seed(0)
    det = create_detector("resnet50", arch="resnet18", image_size=size)
    pp = det.preprocess("jpeg")
    save_checkpoint(out, det, {"preprocess": pp.to_dict(), "align": "jpeg", "threshold": 0.5,
                               "threshold_source": "fixed", "name": "stand-in (untrained)"})
    return out


def tiny_checkpoint(out: Path, like: ScanModel) -> Path:
    det = create_detector("tiny_cnn", image_size=like.preprocess.size)
    save_checkpoint(out, det, {"preprocess": like.preprocess.to_dict(), "align": like.preprocess.align,
                               "threshold": 0.5, "threshold_source": "fixed"})
    return out


def lite0_checkpoint(out: Path) -> Path:
    torch.manual_seed(0)
    det = create_detector("probe", backbone="lite0", image_size=224)
    pp = det.preprocess("jpeg")
    save_checkpoint(out, det, {"preprocess": pp.to_dict(), "align": "jpeg", "threshold": 0.5,
                               "threshold_source": "fixed", "name": "lite0 probe (untrained head)"})
    return out


def hog(n: int) -> list[subprocess.Popen]:
    """n processes that keep one core busy each until killed (also if this benchmark dies)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    atexit.register(lambda: [p.kill() for p in procs])
    return procs


def pick_checkpoint(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    if args.checkpoint:
        return Path(args.checkpoint), "given"
    if getattr(args, "lite0", False):
        return lite0_checkpoint(tmp / "lite0"), "Lite0 probe at 224 px (untrained head: scores meaningless)"
    if getattr(args, "stand_in", False):  # serve_load.py shares this picker without the flag
        return stand_in_checkpoint(tmp / "stand_in", args.stand_in_size), (
            f"STAND-IN asked for: an untrained resnet50[arch=resnet18] at {args.stand_in_size} px, "
            "a compute-bound model (scores meaningless)")
    if (default_checkpoint_dir() / "model.safetensors").is_file():
        return default_checkpoint_dir(), "shipped default model"
    return stand_in_checkpoint(tmp / "stand_in", args.stand_in_size), (
        f"STAND-IN: the default model is not shipped yet; an untrained resnet50[arch=resnet18] at "
        f"{args.stand_in_size} px (same compute as a trained one)"
    )


def _system_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine since boot (Linux), None elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    return sum(fields) - fields[3] - fields[4], sum(fields)


def bench_pipeline(folder: Path, model: ScanModel, args: argparse.Namespace, out: Path,
                   threads: int | str = "auto", task: ScanTask | None = None,
                   cpu: list[dict[str, float]] | None = None) -> float:
    """(a) as `gendet detect` runs it (--threads auto, provenance on), or with a fixed --threads N / another task.
    cpu: gets where the CPU went in this run (machine busy core-s, this process's core-s, images, wall s, the
    model's wall s)."""
    j0, p0 = _system_jiffies(), time.process_time()
    t = time.perf_counter()
    res = scan([str(folder)], model, output=str(out), overwrite=True, batch_size=args.batch_size,
               workers=args.workers, device=args.device, threads=threads, task=task)
    dt = time.perf_counter() - t
    j1, p1 = _system_jiffies(), time.process_time()
    assert res.summary.errors == 0, res.summary.error_examples
    if cpu is not None and j0 is not None and j1 is not None:
        hz = os.sysconf("SC_CLK_TCK")
        cpu.append({"busy_s": (j1[0] - j0[0]) / hz, "all_s": (j1[1] - j0[1]) / hz, "main_s": p1 - p0,
                    "n": res.summary.total, "wall_s": dt, "rate": res.summary.total / dt,
                    "model_s": res.summary.model_seconds})
    return res.summary.total / dt


def bench_naive(paths: list[Path], model: ScanModel, device: torch.device) -> tuple[float, float]:
    """(images/s, mean ms of decode + preprocess per image)."""
    transform = ImageTransform(model.preprocess, train=False)
    rng = np.random.default_rng(0)
    prep = 0.0
    t = time.perf_counter()
    for p in paths:
        t0 = time.perf_counter()
        x = transform(decode_image(p), rng)[None]
        prep += time.perf_counter() - t0
        score_batch(model, x, device)
    dt = time.perf_counter() - t
    return len(paths) / dt, 1000 * prep / len(paths)


def provenance_core_ms(paths: list[Path], watermark: bool) -> float:
    """Mean ms per image of reading provenance from the file's bytes (+ decoding watermarks from its pixels)."""
    datas = [p.read_bytes() for p in paths]
    images = [decode_image(d) for d in datas] if watermark else [None] * len(datas)
    options = ProvenanceOptions(watermark=watermark)
    t = time.perf_counter()
    for data, image in zip(datas, images, strict=True):
        read_provenance(data, options, image)
    return 1000 * (time.perf_counter() - t) / len(datas)


def bench_model_only(paths: list[Path], model: ScanModel, batch_size: int, device: torch.device) -> float:
    transform = ImageTransform(model.preprocess, train=False)
    rng = np.random.default_rng(0)
    x = torch.stack([transform(decode_image(p), rng) for p in paths])
    t = time.perf_counter()
    for i in range(0, len(x), batch_size):
        score_batch(model, x[i:i + batch_size], device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - t)


def model_core_ms(paths: list[Path], model: ScanModel, batch_size: int, device: torch.device) -> float:
    """CPU time of the model per image on one thread: its share of the cores, for the core bound (d)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return 1000.0 / bench_model_only(paths, model, batch_size, device)
    finally:
        torch.set_num_threads(threads)


def rss_child(argv: list[str]) -> None:
    """Child process: scan a folder, print peak RSS (MiB) of this process and its largest worker as JSON."""
    import resource

    folder, ckpt, batch_size, workers, device = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    model = load_scan_model(ckpt, device)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = scan([folder], model, output=str(Path(tmp) / "out.jsonl"), batch_size=batch_size,
                   workers=workers, device=device)
        dt = time.perf_counter() - t
    kib = 1024.0  # ru_maxrss is in KiB on Linux
    print(json.dumps({
        "n": res.summary.total, "errors": res.summary.errors, "seconds": dt,
        "main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
        "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
    }))


def measure_rss(images: list[Path], n: int, tmp: Path, ckpt: Path, args: argparse.Namespace) -> dict:
    folder = tmp / f"rss_{n}"
    folder.mkdir()
    for i in range(n):  # inputs made on the fly: hard links (else copies) of the bench images
        src, dst = images[i % len(images)], folder / f"r_{i:06d}.jpg"
        try:
            os.link(src, dst)
        except OSError:
            dst.write_bytes(src.read_bytes())
    cmd = [sys.executable, __file__, "--_rss-child", str(folder), str(ckpt), str(args.batch_size),
           str(args.workers), args.device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model, else a stand-in)")
    ap.add_argument("--stand-in", action="store_true",
                    help="measure the untrained resnet50[arch=resnet18] stand-in instead of the shipped model")
    ap.add_argument("--stand-in-size", type=int, default=224, help="input size of the stand-in model (64 or 224)")
    ap.add_argument("--n", type=int, default=256, help="images for (a), (b), (c)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=default_workers(), help="decoding workers for (a)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repeats of (a), (b), (c); best is reported")
    ap.add_argument("--image-size-on-disk", type=int, default=256, help="shorter side of the JPEGs on disk")
    ap.add_argument("--rss-n", type=int, default=10_000, help="inputs for the peak-RSS scan (0 = skip)")
    ap.add_argument("--lite0", action="store_true", help="measure a Lite0 probe at 224 px (see above)")
    ap.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the onnx engine (a', c', d'; needs gendet[onnx])")
    ap.add_argument("--onnx-spinning", action="store_true",
                    help="also measure (a') and (c') with onnxruntime's spinning threads (its default)")
    ap.add_argument("--onnx-intra", action="store_true",
                    help="also measure (a') and (c') with each chunk on a pool of threads (onnxruntime's usual "
                    "intra-op parallelism) instead of gendet's one chunk per thread")
    ap.add_argument("--hog", type=int, default=0, help="busy-looping processes beside the measurements")
    ap.add_argument("--watermark", action=argparse.BooleanOptionalAction, default=True,
                    help="also time (a) with invisible-watermark decoding (needs gendet[watermark])")
    ap.add_argument("--rss-checkpoint", default=None,
                    help="checkpoint for the RSS scans (default: the same model); 'tiny' = a tiny_cnn with the same "
                    "preprocessing, so 10k inputs take seconds (the pipeline's memory, not the big model's)")
    return ap.parse_args()


CPU_ACCOUNTS: list[dict[str, float]] = []  # the (a') runs' CPU accounting (bench_pipeline)


def measure(args: argparse.Namespace, model: ScanModel, onnx_model: ScanModel | None, images: list[Path], tmp: Path,
            device: torch.device, onnx_variants: dict[str, ScanModel] | None = None
            ) -> tuple[dict[str, list[float]], float]:
    """Interleaved repeats of every measurement (img/s per run), and the naive loop's decode ms/img (best).

    Interleaved, best of each: on a shared machine this compares the methods under similar load instead
    of whichever ran during a quiet moment."""
    runs: dict[str, list[float]] = {"a": [], "a_all": [], "a_spare": [], "a_off": [], "a_wm": [], "b": [],
                                    "c": [], "a_onnx": [], "a_onnx_all": [], "a_onnx_spare": [], "c_onnx": [],
                                    "c1_onnx": []}
    onnx_variants = onnx_variants or {}
    for name in onnx_variants:
        runs[f"a_onnx_{name}"], runs[f"c_onnx_{name}"] = [], []
    cores = os.cpu_count() or 1
    spare = max(1, cores - args.workers)  # cores the decoding workers leave free
    folder, out = tmp / "images", tmp / "out.jsonl"
    prep_ms = []
    for _ in range(args.repeats):
        runs["c"].append(bench_model_only(images, model, args.batch_size, device))
        runs["a"].append(bench_pipeline(folder, model, args, out))
        if device.type == "cpu" and args.workers > 0:  # the two settings --threads auto picks from
            runs["a_all"].append(bench_pipeline(folder, model, args, out, cores))
            runs["a_spare"].append(bench_pipeline(folder, model, args, out, spare))
        runs["a_off"].append(bench_pipeline(folder, model, args, out, task=ScanTask("off")))
        if args.watermark and watermark_available():
            runs["a_wm"].append(bench_pipeline(folder, model, args, out,
                                               task=ScanTask("on", ProvenanceOptions(watermark=True))))
        if onnx_model is not None:
            if device.type == "cpu":  # the bound (d'), from this repeat's one-thread speed, not one taken at the end
                onnx_model.detector.set_num_threads(1)
                runs["c1_onnx"].append(bench_model_only(images[: 4 * args.batch_size], onnx_model, args.batch_size,
                                                        device))
            onnx_model.detector.set_num_threads(cores)
            runs["c_onnx"].append(bench_model_only(images, onnx_model, args.batch_size, device))
            runs["a_onnx"].append(bench_pipeline(folder, onnx_model, args, out, cpu=CPU_ACCOUNTS))
            if device.type == "cpu" and args.workers > 0:
                runs["a_onnx_all"].append(bench_pipeline(folder, onnx_model, args, out, cores))
                runs["a_onnx_spare"].append(bench_pipeline(folder, onnx_model, args, out, spare))
            for name, variant in onnx_variants.items():  # other onnxruntime settings, side by side
                variant.detector.set_num_threads(cores)
                runs[f"c_onnx_{name}"].append(bench_model_only(images, variant, args.batch_size, device))
                runs[f"a_onnx_{name}"].append(bench_pipeline(folder, variant, args, out))
        b_rate, ms = bench_naive(images, model, device)
        runs["b"].append(b_rate)
        prep_ms.append(ms)
    if args.repeats > 1:
        print("all runs (img/s): " + "; ".join(f"{k}: {', '.join(f'{v:.1f}' for v in v_)}"
                                               for k, v_ in runs.items() if v_))
    return runs, min(prep_ms)


def report_pipeline(runs: dict[str, list[float]], args: argparse.Namespace, prep_ms: float) -> None:
    """(a) with each thread setting, (a'), (c'), provenance on/off, (b), (c) and their ratios."""
    cores = os.cpu_count() or 1
    spare = max(1, cores - args.workers)
    a, b, c = (max(runs[k]) for k in "abc")
    print(f"(a) gendet detect pipeline : {a:8.1f} img/s  (--threads auto)")
    for key, n, why in (("a_all", cores, "all cores"), ("a_spare", spare, "cores - workers")):
        if runs[key]:
            print(f"    same with --threads {n:<3d}: {max(runs[key]):8.1f} img/s  ({why})")
    fixed = max(max(runs["a_all"] or [0]), max(runs["a_spare"] or [0]))
    if fixed:
        print(f"    --threads auto / best fixed = {a / fixed:.2f} (goal >= 0.9)")
    if runs["a_onnx"]:
        ao, co = max(runs["a_onnx"]), max(runs["c_onnx"])
        print(f"(a') pipeline, --engine onnx: {ao:8.1f} img/s  (--threads auto) = {ao / a:.2f} x the torch engine")
        for key, n in (("a_onnx_all", cores), ("a_onnx_spare", spare)):
            if runs[key]:
                print(f"    same with --threads {n:<3d}: {max(runs[key]):8.1f} img/s")
        fixed_o = max(max(runs["a_onnx_all"] or [0]), max(runs["a_onnx_spare"] or [0]))
        if fixed_o:
            print(f"    --threads auto / best fixed = {ao / fixed_o:.2f}")
        print(f"(c') model only, onnx       : {co:8.1f} img/s = {co / c:.2f} x torch")
        for name, what in (("spin", "threads spinning (onnxruntime's default)"),
                           ("intra", "each chunk on all threads (intra-op)")):
            if runs.get(f"a_onnx_{name}"):
                print(f"    onnx, {what}: pipeline {max(runs[f'a_onnx_{name}']):8.1f} img/s, model only "
                      f"{max(runs[f'c_onnx_{name}']):8.1f} img/s")
    off = max(runs["a_off"])
    print(f"    same, provenance off   : {off:8.1f} img/s  (provenance on costs {100 * (1 - a / off):+.1f} %)")
    if runs["a_wm"]:
        wm = max(runs["a_wm"])
        print(f"    same, + --watermark    : {wm:8.1f} img/s  ({100 * (1 - wm / off):+.1f} % vs off)")
    print(f"(b) naive per-image loop   : {b:8.1f} img/s  (decode + preprocess {prep_ms:.2f} ms/img)")
    print(f"(c) model only (batch {args.batch_size:>3}) : {c:8.1f} img/s")
    print(f"a/b = {a / b:.2f} (goal >= 1.3 on CPU, >= 5 on GPU)   a/c = {a / c:.2f} (goal >= 0.9)")


def report_bounds(runs: dict[str, list[float]], args: argparse.Namespace, prep_ms: float, model: ScanModel,
                  onnx_model: ScanModel | None, images: list[Path], device: torch.device) -> None:
    """(d), (d'): what the cores allow from single-thread costs; and the provenance checks' cost."""
    cores = os.cpu_count() or 1
    a = max(runs["a"])
    m_ms = model_core_ms(images[: 4 * args.batch_size], model, args.batch_size, device)
    d = cores * 1000.0 / (prep_ms + m_ms)
    print(f"(d) core bound             : {d:8.1f} img/s  (decode + preprocess {prep_ms:.2f} + model "
          f"{m_ms:.2f} core-ms/img on {cores} cores)   a/d = {a / d:.2f}")
    if onnx_model is not None and runs["c1_onnx"]:
        # the best one-thread speed of the repeats, each measured beside that repeat's (a'): on this VM the model
        # alone moved 28-33 core-ms/img between minutes, and a bound taken once, at the end, moved a'/d' with it
        ao, o_ms = max(runs["a_onnx"]), 1000.0 / max(runs["c1_onnx"])
        d_o = cores * 1000.0 / (prep_ms + o_ms)
        print(f"(d') core bound, onnx       : {d_o:8.1f} img/s  (model {o_ms:.2f} core-ms/img on 1 thread, best of "
              f"{len(runs['c1_onnx'])})   a'/d' = {ao / d_o:.2f} (goal >= 0.9)")
        # (d') counts a core as doing one thread's work alone; with every core running the model at once, each
        # image costs more (shared caches and memory): (c') against cores x the one-thread speed says how much
        scaling = min(1.0, max(runs["c_onnx"]) / (cores * max(runs["c1_onnx"])))
        d_s = cores * 1000.0 / (prep_ms + o_ms / scaling)
        print(f"    the model on {cores} threads at once (c') = {scaling:.2f} x {cores} x its one-thread speed; "
              f"with that: bound {d_s:.1f} img/s, a' / it = {ao / d_s:.2f}")
        if CPU_ACCOUNTS:  # the fastest (a') run: where its CPU went
            acc = max(CPU_ACCOUNTS, key=lambda r: r["rate"])
            main_ms, busy_ms = 1000 * acc["main_s"] / acc["n"], 1000 * acc["busy_s"] / acc["n"]
            print(f"    (a') CPU: the machine {100 * acc['busy_s'] / acc['all_s']:.0f} % busy; per image "
                  f"{busy_ms:.1f} core-ms in all, {main_ms:.1f} in the scanning process (model {o_ms:.1f} alone), "
                  f"{busy_ms - main_ms:.1f} elsewhere (decoder processes; {prep_ms:.2f} decode + preprocess alone)")
            print(f"    (a') wall time: the model scoring {100 * acc['model_s'] / acc['wall_s']:.1f} % of it "
                  f"({acc['wall_s'] - acc['model_s']:.2f} of {acc['wall_s']:.2f} s went on start-up and between "
                  "batches)")
    p_ms = provenance_core_ms(images[:64], watermark=False)
    print(f"provenance                 : {p_ms:.2f} core-ms/img = {100 * p_ms / (prep_ms + m_ms):.2f} % of "
          "decode + model")
    if args.watermark and watermark_available():
        w_ms = provenance_core_ms(images[:16], watermark=True) - p_ms
        print(f"  + --watermark            : {w_ms:.1f} core-ms/img = {100 * w_ms / (prep_ms + m_ms):.1f} % "
              "of decode + model")


def report_rss(args: argparse.Namespace, images: list[Path], tmp: Path, ckpt: Path, model: ScanModel) -> None:
    if args.rss_checkpoint == "tiny":
        rss_ckpt = tiny_checkpoint(tmp / "tiny", model)
    else:
        rss_ckpt = Path(args.rss_checkpoint) if args.rss_checkpoint else ckpt
    for n in (max(1, args.rss_n // 10), args.rss_n):
        r = measure_rss(images, n, tmp, rss_ckpt, args)
        print(f"peak RSS, {r['n']:>6d} inputs ({r['seconds']:.0f} s, model {rss_ckpt.name}): "
              f"main {r['main_mib']:.0f} MiB, largest worker {r['worker_mib']:.0f} MiB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_rss-child":
        rss_child(sys.argv[2:])
        return
    args = parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="gendet_bench_") as tmp_s:
        tmp = Path(tmp_s)
        ckpt, origin = pick_checkpoint(args, tmp)
        model = load_scan_model(ckpt, device)
        images = make_images(tmp / "images", args.n, args.image_size_on_disk)
        print(f"model: {model.name} from {ckpt} ({origin}); input {model.preprocess.size} px, "
              f"align {model.preprocess.align}")
        print(f"images: {args.n} JPEGs {args.image_size_on_disk * 4 // 3}x{args.image_size_on_disk}; "
              f"batch {args.batch_size}; workers {args.workers}; device {device}; torch threads "
              f"{torch.get_num_threads()}; CPU cores {os.cpu_count()}; busy-loop hogs beside it: {args.hog}")
        bench_model_only(images[: args.batch_size], model, args.batch_size, device)  # warm-up
        onnx_model, variants = None, {}
        if args.onnx:
            from gendet.detect.onnx_export import export_onnx
            from gendet.detect.onnx_model import load_onnx_model

            onnx_model = load_onnx_model(export_onnx(model, tmp / "model.onnx"), device)
            bench_model_only(images[: args.batch_size], onnx_model, args.batch_size, device)  # warm-up
            if args.onnx_spinning:
                variants["spin"] = load_onnx_model(tmp / "model.onnx", device, spinning=True)
            if args.onnx_intra:
                variants["intra"] = load_onnx_model(tmp / "model.onnx", device, parallel="intra")
        if args.workers > 0:  # the first scan of a process starts the decoders' forkserver: not billed to (a)
            t = time.perf_counter()
            scan([str(images[0])], model, output=str(tmp / "warm.jsonl"), overwrite=True, workers=args.workers,
                 device=args.device)
            print(f"first scan's start-up (decoder forkserver, once per process): {time.perf_counter() - t:.1f} s")
        hogs = hog(args.hog)
        runs, prep_ms = measure(args, model, onnx_model, images, tmp, device, variants)
        report_pipeline(runs, args, prep_ms)
        if device.type == "cpu":
            report_bounds(runs, args, prep_ms, model, onnx_model, images, device)
        for h in hogs:
            h.kill()
        if args.rss_n > 0:
            report_rss(args, images, tmp, ckpt, model)

if __name__ == "__main__":
    main()
