"""Model cards: what a checkpoint was trained on, how it scores per subset and degradation, its limits.

`card.json` is machine-readable (the server's /v1/model returns it); `MODEL_CARD.md` is
the same for people. Every number is computed here from the checkpoint, on the val
splits of the data it names, with the command and seed that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gendet.data.sample import Sample
from gendet.evaluation.protocol import degradation_table
from gendet.io import atomic_write_text
from gendet.models.checkpoint import load_checkpoint
from gendet.version import VERSION

CARD_JSON = "card.json"
CARD_MD = "MODEL_CARD.md"


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def build_model_card(
    ckpt_dir: Path, test_samples: list[Sample], name: str, training_data: dict[str, Any], command: str,
    notes: list[str], device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate the checkpoint on `test_samples` (clean + the six degradations) and write the card."""
    detector, cfg = load_checkpoint(ckpt_dir, device)
    from gendet.data.preprocess import Preprocess

    pp = Preprocess.from_dict(cfg["preprocess"])
    threshold, source = float(cfg["threshold"]), str(cfg["threshold_source"])
    table, _ = degradation_table(detector, test_samples, pp, threshold, source, batch_size=128, device=device,
                                 seed=int(cfg.get("seed", 0)))
    card = {
        "name": name,
        "model": cfg["model"],
        "variant": str(getattr(detector, "variant", cfg["model"])),
        "parameters": detector.num_parameters,
        "gendet_version": VERSION,
        "command": command,
        "seed": cfg.get("seed"),
        "preprocess": cfg["preprocess"],
        "align": cfg.get("align"),
        "threshold": threshold,
        "threshold_source": source,
        "threshold_note": "fitted (balanced accuracy) on a held-out 10% of the training split, "
                          "never on the evaluation split" if source == "val" else "fixed default",
        "training_data": training_data,
        "evaluation": {"split": "val of every subset (never trained on)", "metrics": table},
        "limits": notes,
        "labels": "score = P(generated); label 'fake' iff score >= threshold",
    }
    atomic_write_text(ckpt_dir / CARD_JSON, json.dumps(card, indent=2, default=str))
    atomic_write_text(ckpt_dir / CARD_MD, render_markdown(card))
    return card


def _degradation_and_limits(metrics: dict[str, Any], limits: list[str], split: str) -> list[str]:
    return [
        f"## Under each degradation ({split})",
        "",
        "| degradation | acc | AUC |",
        "|---|---|---|",
        *[f"| {name} | {_fmt(r['acc'])} | {_fmt(r['auc'])} |" for name, r in metrics.items()],
        "",
        "## Limits",
        "",
        *[f"- {n}" for n in limits],
        "",
    ]


def render_markdown(card: dict[str, Any]) -> str:
    m = card["evaluation"]["metrics"]
    clean = m["none"]
    subsets = sorted(clean.get("subsets", {}))
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- Detector: `{card['variant']}` ({card['parameters']:,} parameters), gendet {card['gendet_version']}",
        f"- Input: {card['preprocess']['size']} px, resize={card['preprocess']['resize']}, "
        f"format alignment `{card['align']}` (JPEG quality {card['preprocess']['jpeg_quality']})",
        f"- Threshold: {card['threshold']:.4f} ({card['threshold_source']}: {card['threshold_note']})",
        f"- Labels: {card['labels']}",
        f"- Reproduce: `{card['command']}` (seed {card['seed']})",
        "",
        "## Training data",
        "",
        "```json",
        json.dumps(card["training_data"], indent=2, default=str),
        "```",
        "",
        "## Held-out results (val split of each subset)",
        "",
        "| subset | n | acc | real acc | fake acc | AUC |",
        "|---|---|---|---|---|---|",
        *[f"| {g} | {s['n']} | {_fmt(s['acc'])} | {_fmt(s['real_acc'])} | {_fmt(s['fake_acc'])} | {_fmt(s['auc'])} |"
          for g in subsets for s in (clean["subsets"][g],)],
        f"| **all** | {clean['n']} | {_fmt(clean['acc'])} | {_fmt(clean['real_acc'])} | {_fmt(clean['fake_acc'])} "
        f"| {_fmt(clean['auc'])} |",
        "",
        *_degradation_and_limits(m, card["limits"], "all subsets' val"),
    ]
    return "\n".join(lines)


SOURCES_CSV = "TRAINING_SOURCES.csv"
_SOURCE_COLUMNS = ("path", "sha256", "label", "split", "generator", "model", "source_set", "origin", "license")


def _group_rows(preds: Any, threshold: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per generator group: its val images vs the real val photos; per real source set: false positives."""
    import numpy as np

    from gendet.bench.genuine import real_set_rates
    from gendet.evaluation.metrics import compute_metrics

    samples, scores = preds.samples, np.asarray(preds.scores)
    real = [i for i, s in enumerate(samples) if s.label == 0]
    groups: dict[str, Any] = {}
    for g in sorted({s.generator for s in samples if s.label == 1}):
        idx = [i for i, s in enumerate(samples) if s.label == 1 and s.generator == g] + real
        m = compute_metrics(np.array([samples[i].label for i in idx]), scores[idx], threshold)
        groups[g] = {"n": m["n"] - len(real), "auc": m["auc"], "tpr": m["fake_acc"]}
    return groups, real_set_rates(samples, scores, threshold)


def write_sources(ckpt_dir: Path, samples: list[Sample], root: Path) -> dict[str, Any]:
    """TRAINING_SOURCES.csv: every training file with its sha256, origin and licence (so anyone can rebuild)."""
    import csv
    import io

    from gendet.lazy_import import file_sha256

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    w.writerow(_SOURCE_COLUMNS)
    origins: dict[str, int] = {}
    licences: dict[str, int] = {}
    for s in samples:
        sha = s.extra.get("sha256") or file_sha256(s.path)
        try:
            rel = str(Path(s.path).resolve().relative_to(root.resolve()))
        except ValueError:
            rel = str(s.path)
        w.writerow([rel, sha, s.label, s.split, s.generator, s.extra.get("model", ""), s.extra.get("source_set", ""),
                    s.extra.get("origin", ""), s.extra.get("license", "")])
        origins[str(s.extra.get("origin", ""))] = origins.get(str(s.extra.get("origin", "")), 0) + 1
        lic = str(s.extra.get("license", ""))
        licences[lic] = licences.get(lic, 0) + 1
    atomic_write_text(ckpt_dir / SOURCES_CSV, buf.getvalue())
    return {"files": len(samples), "origins": len(origins), "licences": dict(sorted(licences.items()))}


def write_genuine_card(ckpt_dir: Path, samples: list[Sample], args: Any, device: str = "cpu") -> dict[str, Any]:
    """The card of a model trained on a genuine manifest: measured on its val split through the scan
    pipeline (clean, per group, per real set, Task 2, ECE), plus the leave-one-group-out table of
    `gendet bench --preset genuine` when its results.json is given (--bench-results)."""
    from gendet.bench.train_presets import get_train_preset
    from gendet.data.preprocess import Preprocess

    preset = get_train_preset(args.preset)
    detector, cfg = load_checkpoint(ckpt_dir, device)
    pp = Preprocess.from_dict(cfg["preprocess"])
    threshold, source = float(cfg["threshold"]), str(cfg["threshold_source"])
    val = [s for s in samples if s.split != "train"]
    train = [s for s in samples if s.split == "train"]
    table, preds = degradation_table(detector, val, pp, threshold, source, batch_size=64, device=device,
                                     workers=int(getattr(args, "workers", 0) or 0), seed=int(cfg.get("seed", 0)),
                                     progress=True)
    groups, real_sets = _group_rows(preds["none"], threshold)
    manifest = Path(str(args.data))
    sources = write_sources(ckpt_dir, train, manifest.parent if manifest.is_file() else manifest)
    bench = None
    if getattr(args, "bench_results", None):
        bench = json.loads(Path(args.bench_results).read_text())
    card = {
        "name": preset.card_name,
        "model": cfg["model"],
        "variant": str(getattr(detector, "variant", cfg["model"])),
        "parameters": detector.num_parameters,
        "gendet_version": VERSION,
        "command": cfg.get("command"),
        "seed": cfg.get("seed"),
        "preprocess": cfg["preprocess"],
        "align": cfg.get("align"),
        "backbone": cfg.get("backbone"),
        "threshold": threshold,
        "threshold_source": source,
        "threshold_note": (f"at most {cfg['target_fpr']:.0%} of the training split's camera photos called generated, "
                           "on out-of-fold scores (5 folds by near-duplicate cluster), never the evaluation split"
                           if cfg.get("target_fpr") is not None else
                           f"fitted (balanced accuracy) on a held-out {cfg.get('holdout', 0):.0%} of the training "
                           "split (by near-duplicate cluster), never on the evaluation split"),
        "training_data": {"manifest": str(manifest), "train_files": len(train),
                          "counts": {"real": sum(s.label == 0 for s in train),
                                     "generated": sum(s.label == 1 for s in train)},
                          "sources": sources, "source_list": SOURCES_CSV},
        "evaluation": {"split": "the manifest's val split (never trained on)", "metrics": table,
                       "groups": groups, "real_sets": real_sets},
        "leave_one_group_out": None if bench is None else {
            "command": bench.get("command"), "seed": bench.get("seed"),
            "mean_auc": bench["recipes"]["default"]["logo_mean_auc"],
            "min_auc": bench["recipes"]["default"]["logo_min_auc"],
            "groups": {g: {"auc": m["auc"], "tpr": m["fake_acc"], "fpr": m["fpr"]}
                       for g, m in bench["recipes"]["default"]["logo"].items()},
            "compare": {k: v["mean_auc"] for k, v in bench.get("compare", {}).items()}},
        "limits": preset.notes,
        "labels": "score = P(generated); label 'fake' iff score >= threshold",
    }
    atomic_write_text(ckpt_dir / CARD_JSON, json.dumps(card, indent=2, default=str))
    atomic_write_text(ckpt_dir / CARD_MD, render_genuine_markdown(card))
    return card


def render_genuine_markdown(card: dict[str, Any]) -> str:
    m = card["evaluation"]["metrics"]
    clean = m["none"]
    td = card["training_data"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- Detector: `{card['variant']}` ({card['parameters']:,} parameters), gendet {card['gendet_version']}",
        f"- Backbone: {card['backbone']}",
        f"- Input: {card['preprocess']['size']} px crops, resize={card['preprocess']['resize']}, "
        f"{card['preprocess'].get('crops', 1)} crops per image (mean logit), format alignment `{card['align']}` "
        f"(JPEG quality {card['preprocess']['jpeg_quality']})",
        f"- Threshold: {card['threshold']:.4f} ({card['threshold_source']}: {card['threshold_note']})",
        f"- Labels: {card['labels']}",
        f"- Reproduce: `{card['command']}`",
        "",
        "## Training data",
        "",
        f"{td['train_files']} files of `{td['manifest']}`'s train split ({td['counts']['real']} camera photos, "
        f"{td['counts']['generated']} generated), from {td['sources']['origins']} origins. Every file with its "
        f"sha256, origin and licence: `{td['source_list']}`. Licences (files): "
        + ", ".join(f"{k or 'n/a'} {v}" for k, v in td["sources"]["licences"].items()) + ".",
        "",
        "## Held-out results (val split, never trained on)",
        "",
        f"All val images: AUC {_fmt(clean['auc'])}, acc {_fmt(clean['acc'])} (real {_fmt(clean['real_acc'])}, "
        f"generated {_fmt(clean['fake_acc'])}), ECE {_fmt(clean['ece'])}.",
        "",
        "| generator group | n | AUC vs real val | caught at threshold |",
        "|---|---|---|---|",
        *[f"| {g} | {r['n']} | {_fmt(r['auc'])} | {_fmt(r['tpr'])} |"
          for g, r in card["evaluation"]["groups"].items()],
        "",
        "| real source set (val) | n | called generated |",
        "|---|---|---|",
        *[f"| {k} | {r['n']} | {_fmt(r['fpr'])} |" for k, r in card["evaluation"]["real_sets"].items()],
        "",
    ]
    logo = card.get("leave_one_group_out")
    if logo:
        lines += [
            "## Generators it never saw (leave one group out)",
            "",
            f"`{logo['command']}` (seed {logo['seed']}): the same recipe trained without each group, tested on "
            f"all of that group's images against the real val photos. Mean AUC {_fmt(logo['mean_auc'])}, worst "
            f"{_fmt(logo['min_auc'])}.",
            "",
            "| held-out group | AUC | caught | real val called generated |",
            "|---|---|---|---|",
            *[f"| {g} | {_fmt(r['auc'])} | {_fmt(r['tpr'])} | {_fmt(r['fpr'])} |" for g, r in logo["groups"].items()],
            "",
            *[f"Shipped model `{k}` on the same images (never trained on them): mean AUC {_fmt(v)}."
              for k, v in logo.get("compare", {}).items()],
            "",
        ]
    lines += _degradation_and_limits(m, card["limits"], "val split")
    return "\n".join(lines)
