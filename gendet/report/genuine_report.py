"""The genuine benchmark's report: leave-one-group-out, recipes, train-on-one, Task 2, real sets, edited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gendet.report import plots
from gendet.report.builder import ReportBuilder


def _provenance(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"label": results["detector"]["label"], "command": results.get("command"), "seed": results.get("seed"),
             "alignment": results.get("align")}]


def logo_rows(results: dict[str, Any], recipe: str = "default") -> list[dict[str, Any]]:
    rec = results["recipes"][recipe]
    counts = results["data"]["counts"]["groups"]
    return [{"held-out group": g, "AUC": m["auc"], "AUC (val only)": m["auc_val_only"],
             "TPR at threshold": m["fake_acc"], "FPR (real val)": m["fpr"],
             "n generated (train+val)": counts[g]["train"] + counts[g]["val"]}
            for g, m in rec["logo"].items()]


def recipe_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"recipe": name, "what": r["description"], "LOGO mean AUC": r["logo_mean_auc"],
             "LOGO min AUC": r["logo_min_auc"], "LOGO mean AUC (val only)": r["logo_mean_auc_val_only"],
             "Task 2 mean AUC": r.get("task2_mean_auc"), "all-groups val AUC": r["all"]["val"]["auc"],
             "edited AUC": (r.get("edited") or {}).get("auc")}
            for name, r in results["recipes"].items()]


def build_genuine_report(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write out_dir/report.html (self-contained) and report.md from a genuine results.json dict."""
    rb = ReportBuilder("gendet bench: preset genuine", subtitle="real generators vs camera photos")
    rb.add_heading("Summary")
    default = results["recipes"].get("default") or next(iter(results["recipes"].values()))
    rb.add_key_values({
        "command": results.get("command"), "seed": results.get("seed"), "alignment": results.get("align"),
        "detector": results["detector"]["label"], "data": results["data"]["manifest"],
        "files": results["data"]["n_files"], "groups": ", ".join(results["groups"]),
        "leave-one-group-out mean AUC (default recipe)": default["logo_mean_auc"],
        "worst held-out group AUC": default["logo_min_auc"],
        "Task 2 mean AUC": default.get("task2_mean_auc"),
        "wall time (s)": results.get("timings", {}).get("total_s"),
        "features computed / from cache": f"{results['timings'].get('computed')} / {results['timings'].get('cached')}",
    })
    for k, v in results["protocol"].items():
        if k != "views":
            rb.add_note(f"{k}: {v}")

    rb.add_heading("Task 1: leave one generator group out")
    rows = logo_rows(results)
    rb.add_figure(plots.grouped_bars({"AUC": {r["held-out group"]: r["AUC"] for r in rows},
                                      "TPR at threshold": {r["held-out group"]: r["TPR at threshold"] for r in rows}},
                                     title="Held-out group: AUC and share caught", ylabel="", chance=0.5),
                  caption="Per held-out group (default recipe)")
    rb.add_table(rows, caption="Each row: a head trained without that group, tested on all its images vs the real "
                               "val photos; threshold fitted on a hold-out of the training data")
    curves = {g: (c["labels"], c["scores"]) for g, c in results.get("curves", {}).items() if not g.startswith("_")}
    if curves:
        rb.add_figure(plots.roc_curves(curves, title="ROC, held-out groups"), caption="ROC per held-out group")
    comp = results.get("compare") or {}
    if comp:
        rb.add_table([{"model": f"{name} ({c['model']})", "mean AUC": c["mean_auc"],
                       **{g: v["auc"] for g, v in c["groups"].items()}} for name, c in comp.items()],
                     caption="Shipped models scored as they are (never trained on this data): AUC per group "
                             "(its images vs real val)")
    rb.add_provenance(_provenance(results))

    rb.add_heading("Training recipes (each part removed)")
    rb.add_table(recipe_rows(results), caption="Same splits, seed and features; only the recipe changes")

    rb.add_heading("Train on one group")
    if results.get("train_on_one"):
        rb.add_figure(plots.heatmap(results["train_on_one"], title="AUC: train on one group (rows), test on each "
                                    "(val split vs real val)", row_label="trained on", col_label="tested on",
                                    vmin=0.5, vmax=1.0, colorbar_label="AUC"), caption="Train-on-one matrix")

    rb.add_heading("Task 2: degraded images")
    t2 = {name: {d: v["auc"] for d, v in r["task2"].items() if d != "none"} for name, r in results["recipes"].items()
          if len(r.get("task2", {})) > 1}
    if t2:
        clean = {name: results["recipes"][name]["task2"]["none"]["auc"] for name in t2}
        rb.add_figure(plots.degradation_bars(t2, metric="auc", clean=clean), caption="AUC per degradation, head "
                      "trained on every group (dashed: clean)")
        rb.add_table([{"recipe": n, "clean": clean[n], **v} for n, v in t2.items()],
                     caption="Task 2 AUC on the val split")

    rb.add_heading("False positives per real source set")
    rs = default.get("real_sets", {})
    if rs:
        rb.add_figure(plots.grouped_bars({"FPR": {k: v["fpr"] for k, v in rs.items()}}, title="Camera photos "
                                         "called generated (val split, all-groups head)", ylabel="FPR",
                                         ylim=(0.0, max(0.2, max(v["fpr"] for v in rs.values()) + 0.05)),
                                         reference=0.05, reference_label="goal 5%"),
                      caption="Per real source set")
        rb.add_table([{"source set": k, "n": v["n"], "FPR": v["fpr"], "goal applies (n >= 20)": v["goal_applies"]}
                      for k, v in rs.items()])
    if default.get("by_format"):
        rb.add_table([{"pair": k, **v} for k, v in default["by_format"].items()],
                     caption="AUC by file format (all-groups head, val split): how much the container still "
                             "leaks through alignment")
    rb.add_heading("Edited photos and calibration")
    if default.get("edited"):
        e = default["edited"]
        rb.add_key_values({"edited vs real val AUC": e["auc"], "edited called generated": e["fake_acc"],
                           "n edited": e["n_fake"]}, caption="Real photos edited by a generator (never trained on)")
    cal = results.get("curves", {}).get("_calibration")
    if cal:
        rb.add_figure(plots.calibration_diagram(cal["labels"], cal["scores"], ece=default["all"]["val"]["ece"]),
                      caption="Reliability of P(generated), all-groups head on the val split")
    if results.get("errors"):
        rb.add_table(results["errors"], caption="Files that could not be read")
    out_dir.mkdir(parents=True, exist_ok=True)
    return rb.write_html(out_dir / "report.html"), rb.write_md(out_dir / "report.md")
