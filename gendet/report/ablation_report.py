"""The UniGenDet ablation's report: one table (means with 95% intervals over seeds), the claims, bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gendet.report import plots
from gendet.report.builder import ReportBuilder
from gendet.report.study import add_claims
from gendet.report.study import plus_minus as _pm


def build_ablation_report(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    ab = results["ablation"]
    rb = ReportBuilder("gendet bench: UniGenDet ablation", subtitle=results.get("description"))
    rb.add_heading("Summary")
    rb.add_key_values({"command": results.get("command"), "seeds": ", ".join(map(str, ab["seeds"])),
                       "schedule": f"{ab['recipe']['name']}: GDUF {ab['recipe']['gduf_steps']} steps, stage 2 "
                                   f"{ab['recipe']['diga_steps']} steps, lr {ab['recipe']['lr']}",
                       "detector trained on": ab["train_subset"], "KID samples": ab["fidelity_n"],
                       "wall time (s)": results.get("timings", {}).get("total_s")})
    rb.add_text("Variants differ only by their switches: SMSA (latent tokens in detection), GDUF (one model "
                "trained jointly vs a detector and a generator trained separately, same steps), DIGA (stage 2 with "
                "the alignment loss vs the flow loss alone, same steps). Detection: accuracy (threshold 0.5) and AUC "
                "on every subset's val split, mean over subsets and over unseen subsets only. Generation: KID of "
                f"{ab['fidelity_n']} samples against val real crops (Inception features). Mean ± 95% t-interval "
                "over seeds.")
    if ab.get("text_term"):
        rb.add_note(f"GDUF text term: {ab['text_term']}.")
    rb.add_table([{"variant": v, "switches": ", ".join(f"{k}={'on' if on else 'off'}" for k, on in
                                                       ab["variants"][v].items()),
                   "mean acc": _pm(t["acc_mean"]), "mean AUC": _pm(t["auc_mean"]),
                   "unseen acc": _pm(t["acc_unseen"]), "unseen AUC": _pm(t["auc_unseen"]), "KID": _pm(t["kid"])}
                  for v, t in ab["table"].items()], caption="UniGenDet ablation (lower KID is better)")
    add_claims(rb, ab["claims"], "The paper's claims, scaled down, on the means")
    rb.add_figure(plots.grouped_bars({"AUC (all)": {v: t["auc_mean"]["mean"] for v, t in ab["table"].items()},
                                      "AUC (unseen)": {v: t["auc_unseen"]["mean"] for v, t in ab["table"].items()}},
                                     title="Detection", ylabel="AUC"), caption="Cross-generator AUC per variant")
    kids = {v: t["kid"]["mean"] for v, t in ab["table"].items()}
    top = max([k for k in kids.values() if k is not None] or [1.0])
    rb.add_figure(plots.grouped_bars(kids, title="Generation", ylabel="KID", ylim=(0.0, 1.2 * top)),
                  caption="KID per variant (lower is better)")
    grids = [(Path(p).read_bytes(), v) for v, p in ab.get("sample_grids", {}).items() if Path(p).is_file()]
    if grids:
        rb.add_images(grids, caption=f"Samples of each variant's generator (seed {ab['seeds'][0]})")
    rb.add_provenance([{"label": "ablation", "command": results.get("command", ""), "seed": ab["seeds"]}])
    return rb.write_html(out_dir / "report.html"), rb.write_md(out_dir / "report.md")
