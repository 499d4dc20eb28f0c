"""The HRR ablation's report: the variant table, Task 2, the size shift, label noise, kept components, claims."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from gendet.report import plots
from gendet.report.builder import ReportBuilder, format_value
from gendet.report.study import add_claims
from gendet.report.study import plus_minus as _pm


def _mean_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    vals = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if v is not None:
            vals.append(float(v))
    return float(np.mean(vals)) if vals else None


def _kept_by_group(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean number of kept components per scale / fused group over seeds."""
    counts: Counter[str] = Counter()
    for r in runs:
        counts.update(name.split("/")[0] for name in r.get("kept", []))
    return {g: c / max(1, len(runs)) for g, c in sorted(counts.items())}


def build_hrr_report(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    ab = results["ablation"]
    rec, table, runs = ab["recipe"], ab["table"], ab["runs"]
    rb = ReportBuilder("gendet bench: HRR ablation", subtitle=results.get("description"))
    rb.add_heading("Summary")
    cache = ab.get("reconstruction_cache", {})
    rb.add_key_values({
        "command": results.get("command"), "seeds": ", ".join(map(str, ab["seeds"])),
        "schedule": f"{rec['name']}: {rec['epochs']} epochs, batch {rec['batch_size']}, lr {rec['lr']}; "
                    f"reconstruction t = {rec['t']}, {rec['steps']} Euler steps",
        "detectors trained on": ab["train_subset"],
        "reconstructions": f"{cache.get('misses', 0)} computed, {cache.get('hits', 0)} memory hits, "
                           f"{cache.get('disk_hits', 0)} disk hits",
        "wall time (s)": results.get("timings", {}).get("total_s", ab.get("wall_s")),
    })
    rb.add_text("dire: one scale, linear head (BCE). hrr w/o refinement: scales 1, 1/2, 1/4, linear head (BCE). hrr: "
                "the same with the additive refinement (Welsch loss, group sparsity, KL bottleneck). Accuracy at "
                "the fixed threshold 0.5 and AUC on every subset's val split; 'unseen' leaves out the training "
                "subset. Mean ± 95% t-interval over seeds.")
    main = [v for v in ab["variants"] if ab["variants"][v]["label_noise"] == 0]
    rb.add_table([{"variant": v, "mean acc": _pm(table[v]["acc_mean"]), "mean AUC": _pm(table[v]["auc_mean"]),
                   "unseen acc": _pm(table[v]["acc_unseen"]), "unseen AUC": _pm(table[v]["auc_unseen"]),
                   "kept / given": "–" if table[v]["n_kept"]["mean"] is None else
                   f"{table[v]['n_kept']['mean']:.1f} / {runs[v][0].get('n_components')}"}
                  for v in main], caption="Task 1 (cross-generator)")
    robust = [v for v in ab.get("robustness_variants", []) if v in table]
    rb.add_table([{"variant": v, **{d: format_value(_mean_of(runs[v], "task2", d, "auc"))
                                    for d in (runs[v][0].get("task2") or {})},
                   "mean AUC (degraded)": _pm(table[v]["task2_auc"]), "mean acc (degraded)": _pm(table[v]["task2_acc"])}
                  for v in robust], caption=f"Task 2: AUC on {ab['train_subset']}'s val split under each degradation")
    rb.add_table([{"variant": v, "64 px (trained)": _pm(table[v]["auc_mean"]),
                   **{f"{s} px": format_value(_mean_of(runs[v], "size", str(s))) for s in rec["test_sizes"]},
                   "AUC drop": _pm(table[v]["size_drop"])} for v in robust],
                 caption="Size shift: mean AUC over subsets when the val crops are resized to other sizes")
    noisy = [(0.0, "hrr", "hrr (squared loss)")] + [
        (r, f"hrr, {round(r * 100)}% label noise", f"hrr (squared loss), {round(r * 100)}% label noise")
        for r in rec["label_noise"]]
    rb.add_table([{"label noise": f"{round(r * 100)}%", "correntropy (Welsch) AUC": _pm(table[w]["auc_mean"]),
                   "squared-loss AUC": _pm(table[s]["auc_mean"])} for r, w, s in noisy],
                 caption="Robustness of the refinement loss to flipped training labels (cross-generator AUC)")
    rb.add_figure(plots.grouped_bars({"correntropy": {f"{round(r * 100)}%": table[w]["auc_mean"]["mean"]
                                                      for r, w, _ in noisy},
                                      "squared": {f"{round(r * 100)}%": table[s]["auc_mean"]["mean"]
                                                  for r, _, s in noisy}},
                                     title="AUC vs label noise", ylabel="AUC"),
                  caption="Refinement loss under label noise")
    kept = _kept_by_group(runs.get("hrr", []))
    if kept:
        rb.add_table([{"group": g, "kept components (mean over seeds)": round(n, 1)} for g, n in kept.items()],
                     caption="Components the refinement of 'hrr' kept, by scale (s1 = full size) and fused channels")
    add_claims(rb, ab["claims"], "HRR's claims, scaled down, on the means over seeds")
    rb.add_figure(plots.grouped_bars({"AUC (all)": {v: table[v]["auc_mean"]["mean"] for v in main},
                                      "AUC (unseen)": {v: table[v]["auc_unseen"]["mean"] for v in main}},
                                     title="Cross-generator detection", ylabel="AUC"), caption="Task 1 AUC per variant")
    rb.add_provenance([{"label": "ablation", "command": results.get("command", ""), "seed": ab["seeds"]}])
    return rb.write_html(out_dir / "report.html"), rb.write_md(out_dir / "report.md")
