"""The benchmark's report: data (sizes, fidelity, sample grids), Task 1 matrices, Task 2 table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gendet.report import plots
from gendet.report.builder import ReportBuilder


def _as_nested(matrix: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """cross_generator_matrix output -> {train subset: {test subset: value}} for the heat maps."""
    return {r: dict(zip(matrix["columns"], row, strict=True)) for r, row in zip(matrix["rows"], matrix["values"],
                                                                              strict=True)}


def _provenance(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"label": "benchmark", "command": results.get("command", ""), "seed": results.get("seed"),
             "align": results.get("align")}]


def _data_section(rb: ReportBuilder, results: dict[str, Any], data_root: Path | None) -> None:
    data = results["data"]
    rb.add_heading("Data: GenImage in miniature")
    rb.add_text(
        f"Real class: {data.get('real', {}).get('source', '?')} — photos split by source photo "
        f"(train: {len(data.get('real', {}).get('splits', {}).get('train', []))} photos, "
        f"val: {len(data.get('real', {}).get('splits', {}).get('val', []))} photos). "
        f"All images {data.get('size')} px {data.get('container', 'PNG')} in both classes; "
        f"evaluation alignment: {results.get('align')}."
    )
    rows = []
    for name, sub in data.get("subsets", {}).items():
        fid = sub.get("fidelity") or {}
        rows.append({
            "subset": name,
            "family": sub.get("family"),
            **{f"{split} ai/nature": "{}/{}".format(c.get("ai", 0), c.get("nature", 0))
               for split in ("train", "val") for c in (sub.get("counts", {}).get(split, {}),)},
            "KID": fid.get("kid"),
            "KID std": fid.get("kid_std"),
            "FID": fid.get("fid"),
            "features": fid.get("features"),
            "n (fidelity)": fid.get("n_fake"),
        })
    rb.add_table(rows, caption="Subsets, sizes and fidelity (KID/FID of each generator's val images against the "
                               "val real crops; lower is better; FID is null below its minimum sample count)")
    if data.get("fidelity_note"):
        rb.add_note(f"Fidelity: {data['fidelity_note']}")
    if data_root is not None:
        grids = [(data_root / "real_samples.png", "real (val crops)")]
        grids += [(data_root / sub["samples_grid"], name) for name, sub in data.get("subsets", {}).items()
                  if sub.get("samples_grid")]
        items = [(p.read_bytes(), cap) for p, cap in grids if p.is_file()]
        if items:
            rb.add_images(items, caption="Sample grids: real crops and each generator's val samples")


def build_bench_report(results: dict[str, Any], out_dir: Path, data_root: Path | None = None) -> tuple[Path, Path]:
    """Write out_dir/report.html (self-contained) and out_dir/report.md from a results.json dict."""
    rb = ReportBuilder(f"gendet bench: preset {results['preset']}", subtitle=results.get("description"))
    rb.add_heading("Summary")
    rb.add_key_values({
        "command": results.get("command"),
        "seed": results.get("seed"),
        "alignment": results.get("align"),
        "device": results.get("device"),
        "gendet version": results.get("gendet_version"),
        "subsets": ", ".join(results["subsets"]),
        "detectors": ", ".join(results["detectors"]),
        "wall time (s)": results.get("timings", {}).get("total_s"),
    })
    for label, why in results.get("skipped_detectors", {}).items():
        rb.add_note(f"{label} skipped: {why}")
    rb.add_note("Every baseline here starts from scratch (no ImageNet or CLIP weights are available offline "
                "unless given with --weights); reduced-width variants are named as such.")
    _data_section(rb, results, data_root)

    rb.add_heading("Task 1: cross-generator accuracy")
    rb.add_text("Rows: the subset a detector was trained on; columns: the subset's val split it was tested on. "
                "Threshold: each cell's checkpoint threshold (source in the cell table).")
    for metric in ("acc", "auc"):
        mats = {label: _as_nested(m[metric]) for label, m in results["matrix"].items()}
        if mats:
            rb.add_figure(plots.heatmaps(mats, colorbar_label=metric), caption=f"Cross-generator {metric}")
    rb.add_table([
        {"detector": label, "mean acc": m["acc"]["mean"], "mean AUC": m["auc"]["mean"],
         "mean real acc": m["real_acc"]["mean"], "mean fake acc": m["fake_acc"]["mean"]}
        for label, m in results["matrix"].items()
    ], caption="Means over all (train, test) cells")
    rb.add_figure(plots.real_fake_bars({label: {"real_acc": m["real_acc"]["mean"],
                                                "fake_acc": m["fake_acc"]["mean"]}
                                        for label, m in results["matrix"].items()}),
                  caption="Real vs fake accuracy (mean over cells): an imbalance means the threshold is off")
    rb.add_provenance(_provenance(results))

    rb.add_heading("Task 2: degraded images")
    rb.add_text("Each detector is tested on its own training subset's val split under the six degradations "
                "(applied after alignment; mean over training subsets).")
    per_det: dict[str, dict[str, float | None]] = {}
    clean: dict[str, float | None] = {}
    for label, cells in results["degradations"].items():
        names = list(next(iter(cells.values()))["table"]) if cells else []
        vals = {}
        for n in names:
            xs = [c["table"][n]["acc"] for c in cells.values() if c["table"][n].get("acc") is not None]
            vals[n] = sum(xs) / len(xs) if xs else None
        clean[label] = vals.pop("none", None)
        per_det[label] = vals
    if per_det:
        rb.add_figure(plots.degradation_bars(per_det, metric="acc", clean=clean),
                      caption="Accuracy per degradation (dashed: clean)")
        rb.add_table([{"detector": d, "clean": clean[d], **v,
                       "mean (6)": (sum(x for x in v.values() if x is not None) / max(1, sum(
                           x is not None for x in v.values())))}
                      for d, v in per_det.items()], caption="Accuracy under each degradation")
    rb.add_provenance(_provenance(results))

    rb.add_heading("Cells")
    rows = []
    for label, cells in results["cells"].items():
        for subset, c in cells.items():
            rows.append({"detector": label, "train subset": subset, "threshold": c["threshold"],
                         "threshold source": c["threshold_source"], "threshold (val fit)": c.get("threshold_val"),
                         "best epoch": c.get("best_epoch"), "train s": c.get("seconds_train"),
                         "total s": c.get("seconds_total"), "reused": c.get("reused")})
    rb.add_table(rows, caption="Per (detector, training subset): thresholds, timings; each is a run directory "
                               "under runs/<detector>/<subset> that `gendet report` can open")
    out_dir.mkdir(parents=True, exist_ok=True)
    return rb.write_html(out_dir / "report.html"), rb.write_md(out_dir / "report.md")
