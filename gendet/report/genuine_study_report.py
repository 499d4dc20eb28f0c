"""The report of any ablation study on the genuine preset: its table (mean ± 95% interval over seeds), its claims
with Welch p-values, per-group AUCs, bars, sample grids and timings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gendet.report import plots
from gendet.report.builder import ReportBuilder
from gendet.report.study import add_claims
from gendet.report.study import plus_minus as _pm


def build_genuine_study_report(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    ab = results["ablation"]
    rb = ReportBuilder(f"gendet bench: {ab['study']} ablation on the genuine preset",
                       subtitle=results.get("description"))
    rb.add_heading("Summary")
    rb.add_key_values({"command": results.get("command"), "seeds": ", ".join(map(str, ab["seeds"])),
                       "model": ab.get("model"), "recipe": ab["recipe"].get("name"),
                       "wall time (s)": ab.get("timings", {}).get("total_s")})
    if ab.get("protocol"):
        rb.add_text(ab["protocol"])
    metrics = sorted({m for row in ab["table"].values() for m in row})
    rb.add_table([{"variant": v, **{m: _pm(row[m]) for m in metrics if m in row}} for v, row in ab["table"].items()],
                 caption="Mean ± 95% t-interval over seeds (AUC: higher is better; KID: lower is better)")
    add_claims(rb, ab["claims"], "The paper's claims on the genuine preset")
    aucs = {v: row["logo_mean_auc"]["mean"] for v, row in ab["table"].items() if "logo_mean_auc" in row}
    if aucs:
        rb.add_figure(plots.grouped_bars({"leave-one-group-out AUC": aucs}, title="Detection", ylabel="AUC"),
                      caption="Mean leave-one-group-out AUC per variant")
    groups = sorted({g for rs in ab["runs"].values() for r in rs for g in r.get("per_group", {})})
    if groups:
        rb.add_table([{"variant": v, "seed": r["seed"], **{g: r["per_group"].get(g) for g in groups}}
                      for v, rs in ab["runs"].items() for r in rs if "per_group" in r],
                     caption="AUC per held-out group, per seed")
    grids = [((out_dir / "ablation" / r["samples"]).read_bytes(), v) for v, rs in ab["runs"].items() for r in rs
             if r.get("samples") and (out_dir / "ablation" / r["samples"]).is_file()]
    if grids:
        rb.add_images(grids, caption=f"Samples of each variant's generator (seed {ab['seeds'][0]})")
    for k, v in ab.get("notes", {}).items():
        rb.add_note(f"{k}: {v}")
    rb.add_key_values({k: v for k, v in ab.get("timings", {}).items()})
    rb.add_provenance([{"label": "ablation", "command": results.get("command", ""), "seed": ab["seeds"]}])
    return rb.write_html(out_dir / "report.html"), rb.write_md(out_dir / "report.md")
