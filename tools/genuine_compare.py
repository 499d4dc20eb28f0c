"""One Markdown row per `gendet bench --preset genuine` run (its default recipe), detectors side by side.

    python tools/genuine_compare.py runs/genuine/results.json runs/g18/bench-*/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from genuine_tables import f


def row(path: str) -> str:
    r = json.loads(Path(path).read_text())
    d = r["recipes"]["default"]
    sets = {k: v for k, v in d.get("real_sets", {}).items() if v.get("goal_applies")}
    worst = max(sets.items(), key=lambda kv: kv[1]["fpr"], default=None)
    worst_s = "–" if worst is None else f"{worst[1]['fpr']:.3f} ({worst[0]})"
    return (f"| {r['detector']['name']} | {r['seed']} | {f(d['logo_mean_auc'])} | {f(d['logo_min_auc'])} | "
            f"{f(d['logo_mean_tpr'])} | {f(d['logo_mean_fpr'])} | {f(d.get('task2_mean_auc'))} | "
            f"{f(d['all']['val']['auc'])} | {f((d.get('edited') or {}).get('auc'))} | {worst_s} | "
            f"{r['timings']['total_s'] / 60:.0f} |")


def main(paths: list[str]) -> None:
    print("| detector | seed | LOGO mean AUC | LOGO min AUC | caught at threshold | real val called generated | "
          "Task 2 mean AUC | all-groups val AUC | edited AUC | worst real set (n ≥ 20) called generated | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for p in paths:
        print(row(p))


if __name__ == "__main__":
    main(sys.argv[1:])
