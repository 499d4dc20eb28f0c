"""Print the README's genuine-benchmark tables (Markdown) from a `gendet bench --preset genuine` results.json.

    python tools/genuine_tables.py runs/genuine/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def f(v: object) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main(path: str) -> None:
    r = json.loads(Path(path).read_text())
    d = r["recipes"]["default"]
    counts = r["data"]["counts"]["groups"]
    fast = (r.get("compare") or {}).get("fast", {}).get("groups", {})
    print("| held-out group | n | AUC | AUC (val only) | caught at threshold | real val called generated "
          "| fast model AUC |")
    print("|---|---|---|---|---|---|---|")
    for g, m in d["logo"].items():
        print(f"| {g} | {counts[g]['train'] + counts[g]['val']} | {f(m['auc'])} | {f(m['auc_val_only'])} | "
              f"{f(m['fake_acc'])} | {f(m['fpr'])} | {f(fast.get(g, {}).get('auc'))} |")
    print(f"| **mean** | | **{f(d['logo_mean_auc'])}** | {f(d['logo_mean_auc_val_only'])} | {f(d['logo_mean_tpr'])} | "
          f"{f(d['logo_mean_fpr'])} | {f((r.get('compare') or {}).get('fast', {}).get('mean_auc'))} |")
    print()
    print("| recipe | what | LOGO mean AUC | LOGO min AUC | Task 2 mean AUC | all-groups val AUC | edited AUC |")
    print("|---|---|---|---|---|---|---|")
    for name, rec in r["recipes"].items():
        print(f"| {name} | {rec['description']} | {f(rec['logo_mean_auc'])} | {f(rec['logo_min_auc'])} | "
              f"{f(rec.get('task2_mean_auc'))} | {f(rec['all']['val']['auc'])} | "
              f"{f((rec.get('edited') or {}).get('auc'))} |")
    print()
    names = [k for k in d["task2"] if k != "none"]
    print("| | clean | " + " | ".join(names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 2))
    print(f"| AUC | {f(d['task2']['none']['auc'])} | " + " | ".join(f(d["task2"][n]["auc"]) for n in names)
          + f" | {f(d['task2_mean_auc'])} |")
    print()
    print("| real source set (val) | n | called generated |")
    print("|---|---|---|")
    for k, v in d["real_sets"].items():
        print(f"| {k} | {v['n']} | {f(v['fpr'])} |")
    print()
    for k, v in (d.get("by_format") or {}).items():
        print(f"- {k}: AUC {f(v['auc'])} ({v['n_fake']} vs {v['n_real']})")
    print()
    print("train-on-one (rows: trained on; columns: tested on):")
    groups = list(r["train_on_one"])
    print("| | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for g, row in r["train_on_one"].items():
        print(f"| {g} | " + " | ".join(f(row[h]) for h in groups) + " |")
    print()
    print("timings:", r["timings"], "edited:", {k: d["edited"][k] for k in ("auc", "fake_acc", "n_fake")},
          "all-groups val:", {k: d["all"]["val"][k] for k in ("auc", "acc", "fake_acc", "real_acc", "ece")},
          "threshold", d["all"]["threshold"])


if __name__ == "__main__":
    main(sys.argv[1])
