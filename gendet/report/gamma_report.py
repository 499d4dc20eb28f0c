"""The GAMMA ablation's report: image-level and pixel-level tables, the claims, bars and sample masks
(image | true mask | each variant's predicted mask)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gendet.data.decode import decode_image
from gendet.data.manipulations.codes import SOURCE_REAL
from gendet.report import plots
from gendet.report.builder import ReportBuilder
from gendet.report.study import add_claims
from gendet.report.study import plus_minus as _pm

IMAGE_COLUMNS = {"unseen AUC": "auc_unseen", "unseen acc": "acc_unseen", "mean AUC": "auc_mean",
                 "manipulated AUC": "manip_auc", "manipulated acc": "manip_acc", "Task 2 acc": "degr_acc"}
PIXEL_COLUMNS = {"pixel F1": "pixel_f1", "pixel IoU": "pixel_iou", "pixel AUC": "pixel_auc",
                 "real FP rate": "real_fp_rate"}


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def per_kind_rows(ab: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (variant, kind): pixel metrics averaged over seeds."""
    rows = []
    for variant, runs in ab["runs"].items():
        kinds = [r["per_kind"] for r in runs if r.get("per_kind")]
        for kind in sorted({k for pk in kinds for k in pk}):
            cells = [pk[kind] for pk in kinds if kind in pk]
            rows.append({"variant": variant, "kind": kind, "images": cells[0]["n"],
                         **{m: _mean([c.get(m) for c in cells])
                            for m in ("f1", "iou", "pixel_auc", "source_acc", "fp_rate", "image_acc")}})
    return rows


def sample_masks_figure(ab: dict[str, Any]) -> bytes | None:
    """Rows: shown samples; columns: image, true mask, then each variant's P(manipulated) map."""
    sm = ab.get("sample_masks") or {}
    runs = {v: np.load(p) for v, p in sm.get("runs", {}).items() if Path(p).is_file()}
    if not runs or not sm.get("paths"):
        return None
    n, cols = len(sm["paths"]), 2 + len(runs)
    fig = Figure(figsize=(1.35 * cols, 1.35 * n + 0.4), layout="constrained")
    axes = fig.subplots(n, cols, squeeze=False)
    truth = next(iter(runs.values()))["truth"]
    for i, path in enumerate(sm["paths"]):
        panels = [(np.asarray(decode_image(path)), None, "image"),
                  ((truth[i] != SOURCE_REAL).astype(float), "gray", "true mask")]
        panels += [(r["prob"][i].astype(float), "inferno", f"{v}") for v, r in runs.items()]
        for j, (img, cmap, title) in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
        axes[i][0].set_ylabel(sm["kinds"][i].replace("_", " "), fontsize=6)
    return plots.fig_to_png(fig)


def build_gamma_report(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    ab = results["ablation"]
    rb = ReportBuilder("gendet bench: GAMMA ablation", subtitle=results.get("description"))
    rb.add_heading("Summary")
    r = ab["recipe"]
    rb.add_key_values({
        "command": results.get("command"), "seeds": ", ".join(map(str, ab["seeds"])),
        "schedule": f"{r['name']}: batch {r['batch_size']}, lr {r['lr']}, optimizer steps per variant "
                    + ", ".join(f"{v} {s}" for v, s in ab["steps"].items()),
        "detector trained on": f"{ab['train_subset']} (+ the manipulated subset where the variant uses it)",
        "backbone": f"{ab['model_config']['backbone']} widths {ab['model_config'].get('widths')}, "
                    f"{ab['model_config']['image_size']} px",
        "manipulated data": ab["manipulated_root"], "mask encoding": ab.get("mask_encoding"),
        "wall time (s)": results.get("timings", {}).get("total_s")})
    rb.add_text("Variants differ only by their switches: seg_heads (the mask and source heads and their losses), "
                "rca (classification tokens attend to the segmentation features), manipulated (the manipulated "
                "subset's train split in the training pool; the same number of optimizer steps either way). "
                "Image level: GenImage Task 1 on every subset's val split (unseen = the generator subsets "
                "other than the training one; the manipulated subset is reported apart) and Task 2 (mean "
                "accuracy over the six degradations of the training subset's val split), threshold 0.5. "
                "Pixel level: F1 / IoU at 0.5 per image and pooled pixel-AUC on the partly manipulated val "
                "images; real FP rate = share of real pixels called manipulated. Mean ± 95% t-interval over seeds.")
    rb.add_table([{"variant": v, "switches": ", ".join(f"{k}={'on' if on else 'off'}"
                                                        for k, on in ab["variants"][v].items()),
                   **{c: _pm(t[m]) for c, m in {**IMAGE_COLUMNS, **PIXEL_COLUMNS}.items()}}
                  for v, t in ab["table"].items()], caption="GAMMA ablation")
    if len(ab["seeds"]) < 2:
        rb.add_note("One seed: no intervals and no p-values; a difference here may be seed noise.")
    add_claims(rb, ab["claims"], "The paper's claims, scaled down, on the means (reported whether or not they hold)")
    rb.add_figure(plots.grouped_bars({name: {v: t[m]["mean"] for v, t in ab["table"].items()}
                                      for name, m in (("unseen AUC", "auc_unseen"), ("manipulated AUC", "manip_auc"),
                                                      ("pixel F1", "pixel_f1"))},
                                     title="GAMMA variants", ylabel="value"),
                  caption="Image-level AUC on unseen generators and on the manipulated subset; pixel F1")
    rb.add_heading("Pixel level, per manipulation kind")
    rb.add_table(per_kind_rows(ab), caption="Mean over seeds; F1/IoU undefined on images with nothing manipulated")
    fig = sample_masks_figure(ab)
    if fig is not None:
        rb.add_figure(fig, caption=f"Sample val images of each kind: image, true mask, and P(manipulated) of each "
                                   f"variant with segmentation heads (seed {ab['seeds'][0]})")
    rb.add_heading("Task 1 per subset")
    subsets = sorted({g for runs in ab["runs"].values() for rr in runs for g in rr["per_subset"]})
    rb.add_table([{"variant": v, **{g: _mean([rr["per_subset"].get(g, {}).get("auc") for rr in runs])
                                    for g in subsets}} for v, runs in ab["runs"].items()],
                 caption="AUC per val subset, mean over seeds")
    rb.add_provenance([{"label": "gamma ablation", "command": results.get("command", ""), "seed": ab["seeds"]}])
    return rb.write_html(out_dir / "report.html"), rb.write_md(out_dir / "report.md")
