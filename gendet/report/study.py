"""The one report of every ablation study (`build_study_report`), and its cells: mean ± 95% interval, claims."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gendet.report import plots
from gendet.report.builder import ReportBuilder, format_value


def plus_minus(cell: dict[str, Any]) -> str:
    """'mean ± half-width' of an `interval` cell (gendet.bench.ablations), '–' without a mean."""
    mean, half = cell.get("mean"), cell.get("ci95")
    if mean is None:
        return "–"
    return format_value(mean) + ("" if half is None else f" ± {format_value(half)}")


def add_claims(rb: ReportBuilder, claims: dict[str, dict[str, Any]], caption: str) -> None:
    """One row per claim: the two means, the relative change where a claim has one, holds, Welch's p."""
    relative = any("relative_reduction" in r for r in claims.values())
    rb.add_table([{"claim": c, "full": r.get("full"), "ablated": r.get("ablated"),
                   **({"relative": r.get("relative_reduction")} if relative else {}),
                   "holds here": r.get("holds"), "p (Welch, seeds)": r.get("p_value")}
                  for c, r in claims.items()], caption=caption)


def _per_group_rows(ab: dict[str, Any]) -> list[dict[str, Any]]:
    """AUC per held-out group (genuine) or per val subset (tiny), one row per variant and seed."""
    rows = []
    for v, rs in ab["runs"].items():
        for r in rs:
            cells = r.get("per_group") or r.get("per_subset")
            if cells:
                rows.append({"variant": v, "seed": r["seed"],
                             **{g: c.get("auc") if isinstance(c, dict) else c for g, c in sorted(cells.items())}})
    return rows


def _summary(rb: ReportBuilder, results: dict[str, Any], ab: dict[str, Any]) -> None:
    recipe = ab.get("recipe", {})
    rb.add_heading("Summary")
    rows = {"command": results.get("command"), "seeds": ", ".join(map(str, ab["seeds"])), "model": ab.get("model"),
            "trained on": ab.get("train_subset"),
            "recipe": f"{recipe.get('name')}: " + ", ".join(f"{k} {v}" for k, v in recipe.items()
                                                           if k != "name" and not isinstance(v, dict)),
            "wall time (s)": ab.get("timings", {}).get("total_s")}
    rb.add_key_values({k: v for k, v in rows.items() if v is not None})


def build_study_report(results: dict[str, Any], out_dir: Path, title: str,
                       sections: Callable[[ReportBuilder, dict[str, Any], Path], None] | None = None
                       ) -> tuple[Path, Path]:
    """The report of any ablation study (results.json's "ablation" block from gendet.bench.study.run_study):
    summary, protocol, the mean ± interval table, the claims, headline bars, AUC per group, sample grids, then
    the study's own `sections`, notes and timings. Returns (report.html, report.md) under out_dir."""
    ab = results["ablation"]
    rb = ReportBuilder(f"gendet bench: {title}", subtitle=results.get("description"))
    _summary(rb, results, ab)
    if ab.get("protocol"):
        rb.add_text(ab["protocol"])
    rb.add_heading("Variants and claims")
    variants = ab.get("variants", {})
    metrics = list(next(iter(ab["table"].values()), {}))
    rb.add_table([{"variant": v, **({"switches": ", ".join(f"{k}={'on' if on else 'off'}" for k, on in
                                                           variants[v].items() if isinstance(on, bool))}
                                    if isinstance(variants.get(v), dict) else {}),
                   **{m: plus_minus(row[m]) for m in metrics if m in row}} for v, row in ab["table"].items()],
                 caption="Mean ± 95% t-interval over seeds (AUC, accuracy: higher is better; KID: lower is better)")
    if len(ab["seeds"]) < 2:
        rb.add_note("One seed: no intervals and no p-values; a difference here may be seed noise.")
    add_claims(rb, ab["claims"], "The paper's claims, on the means over seeds (reported whether or not they hold)")
    if metrics:
        head = metrics[0]
        rb.add_figure(plots.grouped_bars({head: {v: row[head]["mean"] for v, row in ab["table"].items()}},
                                         title=title, ylabel=head), caption=f"{head} per variant")
    groups = _per_group_rows(ab)
    if groups:
        rb.add_table(groups, caption="AUC per held-out group, per seed" if ab.get("preset") == "genuine" else
                     "Task 1: AUC per val subset, per seed")
    grids = [((out_dir / "ablation" / r["samples"]).read_bytes(), v) for v, rs in ab["runs"].items() for r in rs
             if r.get("samples") and (out_dir / "ablation" / r["samples"]).is_file()]
    if grids:
        rb.add_images(grids, caption=f"Samples of each variant's generator (seed {ab['seeds'][0]})")
    if sections is not None:
        sections(rb, ab, out_dir)
    for k, v in ab.get("notes", {}).items():
        rb.add_note(f"{k}: {v}")
    rb.add_heading("Timings (s)")
    rb.add_key_values(dict(ab.get("timings", {})))
    rb.add_provenance([{"label": "ablation", "command": results.get("command", ""), "seed": ab["seeds"]}])
    return rb.write_html(out_dir / "report.html"), rb.write_md(out_dir / "report.md")
