"""A scan whose decoder processes are killed from outside (SIGKILL, as the OOM killer does) while it runs.

    python benchmarks/scan_worker_kills.py [--n 120] [--kills 5] [--seed 0]

Writes --n JPEGs (800x600 noise), starts `gendet detect` on them (the shipped model, --workers 2), waits
--wait s, then kills one decoder process every 0.7 s, --kills times (decoders are the children of the
scan's forkserver). Reports the records written, how many distinct paths, the kills, the exit code and the
error records. Goal (issue 17): every input gets exactly one record; only files being decoded at a kill
get an error record.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from proc_tree import children_by_parent  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--wait", type=float, default=12.0, help="seconds before the first kill (model loading)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gendet-kills-"))
    rng = np.random.default_rng(args.seed)
    for i in range(args.n):
        Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(folder / f"img_{i:04d}.jpg",
                                                                                  quality=90)
    out = folder / "out.jsonl"
    scan = subprocess.Popen([sys.executable, "-m", "gendet", "detect", str(folder), "--workers", "2",
                             "--batch-size", "8", "-o", str(out), "--no-progress"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(args.wait)
    killed = 0
    for _ in range(args.kills):
        tree = children_by_parent()
        servers = [p for p in tree.get(scan.pid, [])
                   if "forkserver" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
        workers = tree.get(servers[0], []) if servers else []
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed += 1
        time.sleep(0.7)
    _, err = scan.communicate()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [r for r in records if r["error"]]
    print(f"inputs {args.n}, records {len(records)}, distinct paths {len({r['path'] for r in records})}, "
          f"decoders killed {killed}, exit {scan.returncode}, error records {len(errors)}")
    for r in errors:
        print(f"  {Path(r['path']).name}: {r['error']}")
    print(next((line for line in err.splitlines() if line.startswith("gendet detect:")), err[-300:]))


if __name__ == "__main__":
    main()
