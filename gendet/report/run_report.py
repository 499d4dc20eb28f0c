"""The report of one run directory: summary, metrics, matrix, degradations, ROC, calibration, training, examples.

Each section that shows numbers is followed by the command, seed and alignment
that produced them. A section whose inputs are missing is replaced by a note.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gendet.report import plots
from gendet.report.builder import ReportBuilder
from gendet.report.confident import confident_examples
from gendet.report.run_data import (
    CLEAN_NAMES,
    DEGRADATION_ORDER,
    METRIC_KEYS,
    EvalResult,
    PredictionTable,
    RunData,
    load_run,
)

METRIC_LABELS = {"tpr_at_fpr_1pct": "tpr@1%fpr"}
_HYPER_KEYS = ("backbone", "weights", "n_train", "n_val", "epochs", "epochs_run", "best_epoch", "stop_reason",
               "batch_size", "lr", "weight_decay", "warmup", "warmup_steps", "grad_accum", "grad_clip", "holdout",
               "val_fraction", "patience", "threshold_mode", "device", "amp", "seconds_per_epoch")


def _cfg(run: RunData) -> dict[str, Any]:
    return run.config or {}


def _align(run: RunData, ev: EvalResult | None = None) -> Any:
    if ev is not None and ev.data.get("align") is not None:
        return ev.data["align"]
    cfg = _cfg(run)
    return cfg.get("align") or (cfg.get("preprocess") or {}).get("align")


def _provenance(run: RunData, evals: list[EvalResult] | None = None) -> list[dict[str, Any]]:
    """One entry per eval file (or the training config when `evals` is None)."""
    cfg = _cfg(run)
    if evals is None:
        return [{"label": "training", "seed": cfg.get("seed"), "align": _align(run), "command": cfg.get("command")}]
    return [
        {
            "label": ev.tag,
            "seed": ev.data.get("seed", cfg.get("seed")),
            "align": _align(run, ev),
            "threshold": _threshold_text(ev.data, cfg),
            "command": ev.data.get("command"),
        }
        for ev in evals
    ]


def _threshold(ev: EvalResult, cfg: dict[str, Any]) -> float:
    for v in (ev.data.get("threshold"), cfg.get("threshold")):
        if v is not None and math.isfinite(float(v)):
            return float(v)
    return 0.5


def _threshold_text(d: dict[str, Any], cfg: dict[str, Any]) -> str:
    t = d.get("threshold", cfg.get("threshold"))
    src = d.get("threshold_source", cfg.get("threshold_source"))
    return f"{t:.3f} ({src})" if isinstance(t, int | float) else f"{t} ({src})"


def _metric_row(label: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
    row = dict(label)
    for k in METRIC_KEYS:
        row[METRIC_LABELS.get(k, k)] = m.get(k)
    row["threshold"] = m.get("threshold")
    row["threshold source"] = m.get("threshold_source")
    return row


def _short_metrics(m: Any) -> str | None:
    if not isinstance(m, dict):
        return None
    parts = [f"n={m['n']}" if m.get("n") is not None else ""]
    parts += [f"{k}={m[k]:.3f}" for k in ("acc", "auc", "ece") if isinstance(m.get(k), int | float)]
    return ", ".join(p for p in parts if p) or None


def _thr(d: dict[str, Any]) -> dict[str, Any]:
    """Threshold facts a per-subset block inherits from its file (metrics are never inherited)."""
    return {k: d[k] for k in ("threshold", "threshold_source") if k in d}


def _section(rb: ReportBuilder, title: str, level: int, body: Callable[[], None]) -> None:
    rb.add_heading(title, level)
    body()


# ---- sections -------------------------------------------------------------------------------
def _summary(rb: ReportBuilder, run: RunData) -> None:
    cfg = _cfg(run)
    if not cfg:
        rb.add_note("config.json is missing or unreadable: model and training facts are unknown; "
                    "the sections below come from the eval files only.")
    pp = cfg.get("preprocess") or {}
    align = _align(run)
    kv: list[tuple[str, Any]] = [
        ("run directory", str(run.run_dir)),
        ("model", cfg.get("model")),
        ("model config", json.dumps(cfg.get("model_config"), sort_keys=True) if cfg.get("model_config") else None),
        ("data root", cfg.get("data_root")),
        ("training subset", cfg.get("subset") or ("all" if cfg else None)),
        ("layout", cfg.get("layout")),
        ("alignment", f"{align}" + (f" (JPEG quality {pp.get('jpeg_quality')})" if align == "jpeg" else "")),
        ("input size", f"{pp.get('size')} px, {'resize + crop' if pp.get('resize') else 'crop only'}" if pp else None),
        ("threshold", _threshold_text(cfg, cfg) if cfg else None),
        ("threshold fitted on held-out train", cfg.get("threshold_val")),
        ("held-out validation", _short_metrics(cfg.get("val_metrics"))),
        ("seed", cfg.get("seed")),
    ]
    kv += [(k, cfg[k]) for k in _HYPER_KEYS if k in cfg]
    if isinstance(cfg.get("decode_errors"), list):
        kv.append(("unreadable training files", len(cfg["decode_errors"])))
    kv += [("gendet version", cfg.get("gendet_version")), ("git commit", cfg.get("git_commit")),
           ("eval files", ", ".join(e.path.name for e in run.evals) or None)]
    rb.add_key_values([(k, v) for k, v in kv if v is not None])
    if align == "none":
        rb.add_note("Format alignment was OFF (--align none): real and generated images may differ in container "
                    "and size, and a detector can score well by reading the format instead of the content.")
    if cfg.get("command"):
        rb.add_text("Training command:")
        rb.add_code(str(cfg["command"]))
    for n in run.notes:
        rb.add_note(n)


def _metrics(rb: ReportBuilder, run: RunData) -> None:
    if not run.evals:
        rb.add_note("No eval/*.json files: run `gendet eval --checkpoint RUN_DIR ...` to add metrics.")
        return
    rows = []
    for ev in run.evals:
        base = {"eval": ev.tag, "degradation": ev.degradation or "none"}
        rows.append(_metric_row({**base, "subset": "all"}, ev.data))
        for name, m in (ev.data.get("subsets") or {}).items():
            rows.append(_metric_row({**base, "subset": name}, {**_thr(ev.data), **m}))
        for deg, m in _degradation_block(ev).items():
            rows.append(_metric_row({"eval": ev.tag, "degradation": deg, "subset": "all"}, {**_thr(ev.data), **m}))
    rb.add_table(rows, caption="Metrics per eval file and subset (acc = accuracy at the threshold shown).")
    names = {"n": "n", "rouge_l": "ROUGE-L", "tfidf_cosine": "TF-IDF cosine", "exact_match": "exact match"}
    expl = [{"eval": ev.tag, **{label: ev.data["explanation"].get(k) for k, label in names.items()}}
            for ev in run.evals if isinstance(ev.data.get("explanation"), dict)]
    if expl:
        rb.add_table(expl, caption="Generated explanations vs the reference texts (ROUGE-L F-measure, "
                                   "TF-IDF cosine, exact match; greedy decoding).")
    errors = []
    for ev in run.evals:
        notes = ev.data.get("notes")
        if notes:
            rb.add_note(f"{ev.tag}: {notes if isinstance(notes, str) else '; '.join(map(str, notes))}")
        errors += [[ev.tag, *[str(x) for x in list(e)[:2]]] for e in ev.data.get("errors") or []]
    if errors:
        rb.add_note(f"{len(errors)} file(s) could not be read and were left out of the metrics "
                    f"({', '.join(sorted({e[0] for e in errors}))}).")
        rb.add_table(errors[:20], columns=["eval", "path", "reason"],
                     caption=f"Unreadable files ({min(20, len(errors))} of {len(errors)} shown)")
    rb.add_provenance(_provenance(run, run.evals))


def _train_subset_of(run: RunData, ev: EvalResult) -> str:
    """Row label of the cross-generator matrix: the subset the evaluated checkpoint was trained on."""
    ckpt = ev.data.get("checkpoint")
    cfg = _cfg(run)
    if ckpt and Path(ckpt).resolve() != run.run_dir.resolve() and (Path(ckpt) / "config.json").is_file():
        try:
            cfg = json.loads((Path(ckpt) / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            return Path(ckpt).name
    return str(cfg.get("subset") or "all")


def _matrix(rb: ReportBuilder, run: RunData) -> None:
    evals = [e for e in run.clean_evals if e.data.get("subsets")]
    cols = {s for e in evals for s in e.data["subsets"]}
    if len(cols) < 2:
        rb.add_note("Fewer than two test subsets were evaluated without degradation, so there is no "
                    "cross-generator matrix (evaluate on a multi-generator root to get one).")
        return
    acc: dict[str, dict[str, Any]] = {}
    auc: dict[str, dict[str, Any]] = {}
    for ev in evals:
        row = _train_subset_of(run, ev)
        for s, m in ev.data["subsets"].items():
            acc.setdefault(row, {})[s] = m.get("acc")
            auc.setdefault(row, {})[s] = m.get("auc")
    rb.add_figure(plots.heatmaps({"accuracy": acc, "ROC-AUC": auc}, colorbar_label="score"),
                  caption="Cross-generator matrix: rows = training subset, columns = test subset; "
                          "last column = row mean. Grey = undefined.")
    rb.add_table([{"train \\ test": r, **v, "mean": _mean(v.values())} for r, v in acc.items()],
                 caption="Accuracy matrix")
    rb.add_provenance(_provenance(run, evals))


def _mean(values: Any) -> float | None:
    xs = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return float(np.mean(xs)) if xs else None


def _degradation_rows(run: RunData) -> tuple[list[tuple[str, dict[str, Any]]], list[EvalResult]]:
    found: list[tuple[str, dict[str, Any]]] = []
    used: list[EvalResult] = []
    for ev in run.evals:
        if ev.degradation is not None:
            found.append((ev.degradation, ev.data))
            used.append(ev)
        for deg, m in _degradation_block(ev).items():
            found.append((deg, m))
            if ev not in used:
                used.append(ev)
    names = [n for n, _ in found]
    if len(set(names)) < len(names):  # same degradation from several files: keep them apart
        found = [(f"{n} ({ev.tag})" if names.count(n) > 1 else n, m)
                 for (n, m), ev in zip(found, _owners(run), strict=True)]
    order = {n: i for i, n in enumerate(DEGRADATION_ORDER)}
    found.sort(key=lambda t: (order.get(t[0].split(" ")[0], len(order)), t[0]))
    return found, used


def _degradation_block(ev: EvalResult) -> dict[str, dict[str, Any]]:
    """An eval file's `degradations` block without its undegraded entry (that one is the top level)."""
    block = ev.data.get("degradations") or {}
    return {str(k): v for k, v in block.items() if str(k).lower() not in CLEAN_NAMES and isinstance(v, dict)}


def _owners(run: RunData) -> list[EvalResult]:
    owners = []
    for ev in run.evals:
        if ev.degradation is not None:
            owners.append(ev)
        owners += [ev] * len(_degradation_block(ev))
    return owners


def _degradations(rb: ReportBuilder, run: RunData) -> None:
    found, used = _degradation_rows(run)
    if not found:
        rb.add_note("No degraded evaluation found (run `gendet eval --degradation NAME` with one of "
                    f"{', '.join(DEGRADATION_ORDER)}).")
        return
    clean = run.clean_evals[0].data if run.clean_evals else {}
    values = {"accuracy": {n: m.get("acc") for n, m in found}, "ROC-AUC": {n: m.get("auc") for n, m in found}}
    ref = {"accuracy": clean.get("acc"), "ROC-AUC": clean.get("auc")}
    rb.add_figure(plots.degradation_bars(values, metric="score", clean=ref, chance=0.5,
                                          title="Accuracy and AUC per degradation"),
                  caption="Dashed lines: the same metric without degradation" if clean else "")
    rows = []
    for n, m in found:
        r = {"degradation": n, **{METRIC_LABELS.get(k, k): m.get(k) for k in METRIC_KEYS}}
        if clean.get("acc") is not None and m.get("acc") is not None:
            r["acc change vs clean"] = float(m["acc"]) - float(clean["acc"])
        rows.append(r)
    rb.add_table(rows, caption="Metrics under each degradation (applied after format alignment)")
    rb.add_provenance(_provenance(run, used + [e for e in run.clean_evals[:1] if e not in used]))


def _with_predictions(evals: list[EvalResult]) -> list[EvalResult]:
    return [e for e in evals if e.predictions is not None and len(e.predictions)]


def _with_clean_predictions(run: RunData) -> list[tuple[EvalResult, PredictionTable]]:
    out = []
    for e in run.clean_evals:
        p = e.clean_predictions
        if p is not None and len(p):
            out.append((e, p))
    return out


def _roc(rb: ReportBuilder, run: RunData) -> None:
    evs = _with_predictions(run.evals)
    if not evs:
        rb.add_note("No predictions CSV found next to the eval files, so ROC curves cannot be drawn.")
        return
    for ev, p in _with_clean_predictions(run):
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {"all": (p.labels, p.scores)}
        gens = sorted({g for g in p.generators if g})
        if len(gens) > 1:
            curves.update({g: (q.labels, q.scores) for g in gens for q in [p.where("generator", g)]})
        rb.add_figure(plots.roc_curves(curves, title=f"ROC by subset ({ev.tag})"),
                      caption=f"{ev.tag}: one curve for all samples and one per test subset.")
    by_deg: dict[str, PredictionTable] = {}
    for ev in evs:
        p = ev.predictions
        assert p is not None
        for d in sorted(set(p.degradations)):
            name = (ev.degradation or "clean") if d.lower() in CLEAN_NAMES else d
            key = name if name not in by_deg else f"{name} ({ev.tag})"
            by_deg[key] = p.where("degradation", d)
    if len(by_deg) > 1:
        order = {n: i for i, n in enumerate(("clean", *DEGRADATION_ORDER))}
        keys = sorted(by_deg, key=lambda k: (order.get(k.split(" ")[0], 99), k))
        rb.add_figure(plots.roc_curves({k: (by_deg[k].labels, by_deg[k].scores) for k in keys},
                                       title="ROC by degradation"),
                      caption="All test samples, one curve per degradation.")
    rb.add_provenance(_provenance(run, evs))


def _real_fake(rb: ReportBuilder, run: RunData) -> None:
    # undegraded: all samples and each subset; degraded: all samples only (keeps the chart readable)
    rows: dict[str, dict[str, Any]] = {}
    clean = run.clean_evals
    for ev in clean:
        prefix = "" if len(clean) == 1 else f"{ev.tag}: "
        rows[f"{prefix}all"] = ev.data
        for s, m in (ev.data.get("subsets") or {}).items():
            rows[f"{prefix}{s}"] = m
    for name, m in _degradation_rows(run)[0]:
        rows[f"{name} (all)"] = m
    rows = {k: v for k, v in rows.items() if v.get("real_acc") is not None or v.get("fake_acc") is not None}
    if not rows:
        rb.add_note("No real/fake accuracies in the eval files.")
        return
    rb.add_figure(plots.real_fake_bars(rows), caption="Accuracy on real images and on generated images at the "
                  "decision threshold; a large gap means the threshold favours one class.")
    gaps = {k: abs(float(v["real_acc"]) - float(v["fake_acc"])) for k, v in rows.items()
            if v.get("real_acc") is not None and v.get("fake_acc") is not None}
    worst = max(gaps, key=gaps.get) if gaps else None  # type: ignore[arg-type]
    if worst is not None and gaps[worst] > 0.2:
        src = (run.evals[0].data.get("threshold_source") if run.evals else None) or "?"
        hint = "" if src == "val" else " (consider --threshold val)"
        rb.add_note(f"Real and fake accuracy differ by {gaps[worst]:.2f} on '{worst}': the threshold "
                    f"(source: {src}) favours one class on this data{hint}.")
    rb.add_provenance(_provenance(run, run.evals))


def _calibration(rb: ReportBuilder, run: RunData) -> None:
    pairs = _with_clean_predictions(run)
    if not pairs:
        rb.add_note("No predictions CSV for an undegraded evaluation, so no reliability diagram.")
        return
    for ev, p in pairs:
        ece = ev.data.get("ece")
        rb.add_figure(plots.calibration_diagram(p.labels, p.scores, ece=ece, title=f"Reliability ({ev.tag})"),
                      caption="Fraction of generated images per score bin against the mean score; "
                              "bottom: score histogram by true class.")
    rb.add_provenance(_provenance(run, [ev for ev, _ in pairs]))


def _training(rb: ReportBuilder, run: RunData) -> None:
    if not run.train_log:
        rb.add_note("No train_log.jsonl / train_log.csv in the run directory.")
        return
    try:
        png = plots.training_curves(run.train_log, title=f"Training {_cfg(run).get('model', '')}".strip())
    except ValueError as e:
        rb.add_note(f"Training log present but not plottable: {e}")
        return
    rb.add_figure(png, caption=f"{len(run.train_log)} log rows.")
    rb.add_provenance(_provenance(run))


def _examples(rb: ReportBuilder, run: RunData, top_k: int, thumb_px: int) -> None:
    pairs = _with_clean_predictions(run)
    if not pairs:
        rb.add_note("No predictions CSV for an undegraded evaluation, so no example images.")
        return
    cfg = _cfg(run)
    for ev, p in pairs:
        thr = _threshold(ev, cfg)
        roots = [r for r in (ev.data.get("data_root"), cfg.get("data_root")) if r] + [ev.path.parent, run.run_dir]
        ex = confident_examples(p, thr, top_k=top_k, roots=roots, thumb_px=thumb_px)
        if len(pairs) > 1:
            rb.add_heading(f"Examples from {ev.tag}", 3)
        rb.add_text(f"Threshold {thr:.3f}: {ex.n_right} correct and {ex.n_wrong} wrong predictions; "
                    f"showing up to {top_k} of each, ranked by distance of the score from the threshold.")
        for kind, items, n in (("right", ex.right, ex.n_right), ("wrong", ex.wrong, ex.n_wrong)):
            if items:
                rb.add_images(items, caption=f"Most confident {kind}")
            elif n == 0:
                rb.add_note(f"No {kind} predictions.")
            else:
                rb.add_note(f"None of the {n} {kind} predictions could be read from disk.")
        if ex.skipped:
            rb.add_note(f"{len(ex.skipped)} image(s) could not be read and were skipped, e.g. "
                        f"{ex.skipped[0][0]}: {ex.skipped[0][1]}")
    rb.add_provenance(_provenance(run, [ev for ev, _ in pairs]))


def add_run_sections(rb: ReportBuilder, run: RunData, top_k: int = 8, level: int = 2, thumb_px: int = 112) -> None:
    """Append every section of a run's report to `rb` (headings at `level`)."""
    _section(rb, "Summary", level, lambda: _summary(rb, run))
    _section(rb, "Metrics", level, lambda: _metrics(rb, run))
    _section(rb, "Cross-generator matrix", level, lambda: _matrix(rb, run))
    _section(rb, "Degraded images", level, lambda: _degradations(rb, run))
    _section(rb, "ROC curves", level, lambda: _roc(rb, run))
    _section(rb, "Real vs fake accuracy", level, lambda: _real_fake(rb, run))
    _section(rb, "Calibration", level, lambda: _calibration(rb, run))
    _section(rb, "Training curves", level, lambda: _training(rb, run))
    _section(rb, "Most confident right and wrong", level, lambda: _examples(rb, run, top_k, thumb_px))


def build_run_report(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, top_k: int = 8, thumb_px: int = 112
) -> tuple[Path, Path]:
    """Write `report.html` (self-contained) and `report.md` (+ `report_files/`) for a run directory.

    Raises RunDirError when the directory has neither config.json nor eval files.
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir
    cfg = _cfg(run)
    title = f"gendet report: {cfg.get('model') or run.run_dir.name}"
    subtitle = f"Run directory {run.run_dir}" + (f", trained on {cfg['subset']}" if cfg.get("subset") else "")
    rb = ReportBuilder(title, subtitle)
    add_run_sections(rb, run, top_k=top_k, thumb_px=thumb_px)
    return rb.write_html(out / "report.html"), rb.write_md(out / "report.md")
