"""Time and peak memory per hostile file: gendet's decoder under its default DecodeLimits, one child process
per file (so each peak is that file's alone), plus a whole `gendet detect` scan of the corpus.

    python benchmarks/hostile_decode.py [--scale 1.0] [--out runs/hostile] [--seed 0]

The corpus is the red-team set of tests/data/hostile_corpus.py at `--scale` of the attack sizes (1.0 = as
attacked: a 600000x1 PNG, a JPEG of 20,000 scans, one of 4 million empty APP markers, a PNG of a million
text chunks, a FIFO, a symlink loop), plus large legitimate images at the limits (a 36 Mpx JPEG, a PNG just
under the 89 Mpx source cap) and the structure floods with their structure limits lifted (so only the time
budget stands between them and the decoder). Goal (issue 17): every file <= 1 GB extra memory and <= 10 s,
or an error within that. Prints a table; writes it as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from data.hostile_corpus import build_redteam_corpus  # noqa: E402

CHILD = r"""
import json, sys, time
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
from gendet.data.decode import DecodeError, DecodeLimits
from gendet.data.preprocess import Preprocess, decode_for_model, ImageTransform
import numpy as np
limits = DecodeLimits(**json.loads(sys.argv[2]))
pp = Preprocess(size=260, resize=False, crops=4)  # the shipped default model's preprocessing
base = rss("VmRSS")
t = time.perf_counter()
try:
    img = decode_for_model(sys.argv[1], pp, limits)
    ImageTransform(pp)(img, np.random.default_rng(0))
    result = "decoded %dx%d" % img.size
except DecodeError as e:
    result = "error (%s): %s" % (e.kind, e.reason)
print(json.dumps({"seconds": time.perf_counter() - t, "extra_bytes": rss("VmHWM") - base, "result": result}))
"""

LIFTED = {"max_jpeg_markers": 10**9, "max_jpeg_scans": 10**9, "max_png_chunks": 10**9}


def legit_files(folder: Path, seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    out = {}
    big = Image.fromarray(rng.integers(0, 256, (64, 86, 3), dtype=np.uint8)).resize((6928, 5196), Image.BILINEAR)
    out["jpeg_36mpx"] = folder / "big36.jpg"
    big.save(out["jpeg_36mpx"], quality=90)
    w, h = 10900, 8200  # 89.4 Mpx: just under the source cap
    ramp = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(3, axis=2)
    out["png_89mpx"] = folder / "big89.png"
    Image.fromarray(np.broadcast_to(ramp, (h, w, 3)).copy()).save(out["png_89mpx"], compress_level=1)
    return out


def run_child(path: Path, limits: dict, timeout: float = 120.0) -> dict:
    t = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(limits)], capture_output=True,
                             text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - t, "extra_bytes": None, "result": f"killed after {timeout} s"}
    if out.returncode != 0:
        return {"seconds": time.perf_counter() - t, "extra_bytes": None,
                "result": f"child failed ({out.returncode}): {out.stderr.strip()[-200:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def scan_corpus(folder: Path) -> dict:
    """The whole corpus through `gendet detect --workers 1` with the shipped model: wall time, peak RSS."""
    out = folder / "scan.jsonl"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gendet", "detect", str(folder), "--output", str(out), "--workers",
                           "1", "--overwrite", "--no-progress"], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    import resource

    return {"seconds": round(seconds, 1), "exit": proc.returncode, "records": len(records),
            "errors": sum(r["error"] is not None for r in records),
            "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "summary": next((ln for ln in proc.stderr.splitlines() if ln.startswith("gendet detect:")), "")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", default="runs/hostile")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gendet-hostile-"))
    corpus = build_redteam_corpus(work / "corpus", args.scale)
    legit = legit_files(work / "corpus", args.seed)
    rows = []
    for name, path in {**corpus, **legit}.items():
        rows.append({"file": name, "bytes": path.stat().st_size if path.is_file() and not path.is_symlink() else 0,
                     "limits": "default", **run_child(path, {})})
    for name in ("many_scans_jpeg", "many_markers_jpeg", "many_text_chunks_png"):
        rows.append({"file": name, "bytes": corpus[name].stat().st_size, "limits": "structure limits lifted",
                     **run_child(corpus[name], LIFTED)})
    scan = scan_corpus(work / "corpus")
    print(f"{'file':24} {'limits':24} {'MB on disk':>10} {'seconds':>8} {'extra MB':>9}  result")
    for r in rows:
        mb = "-" if r["extra_bytes"] is None else f"{r['extra_bytes'] / 2**20:.0f}"
        print(f"{r['file']:24} {r['limits']:24} {r['bytes'] / 2**20:10.2f} {r['seconds']:8.2f} {mb:>9}  "
              f"{r['result'][:90]}")
    print(f"scan of the corpus (gendet detect --workers 1, shipped model): {scan}")
    worst_s = max(r["seconds"] for r in rows)
    worst_mb = max((r["extra_bytes"] or 0) / 2**20 for r in rows)
    print(f"worst file: {worst_s:.2f} s, {worst_mb:.0f} MB extra (goal <= 10 s, <= 1024 MB)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hostile_decode.json").write_text(json.dumps({"scale": args.scale, "rows": rows, "scan": scan}, indent=2))


if __name__ == "__main__":
    main()
