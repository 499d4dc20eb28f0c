"""Model cards: what a checkpoint was trained on, how it scores per subset and degradation, its limits.

`card.json` is machine-readable (the server's /v1/model returns it); `MODEL_CARD.md` is
the same for people. Every number is computed here from the checkpoint, on the val
splits of the data it names, with the command and seed that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gendet
from gendet.data.sample import Sample
from gendet.evaluation.protocol import degradation_table
from gendet.models.checkpoint import atomic_write_text, load_checkpoint

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
        "gendet_version": gendet.__version__,
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
        "## Under each degradation (all subsets' val)",
        "",
        "| degradation | acc | AUC |",
        "|---|---|---|",
        *[f"| {name} | {_fmt(r['acc'])} | {_fmt(r['auc'])} |" for name, r in m.items()],
        "",
        "## Limits",
        "",
        *[f"- {n}" for n in card["limits"]],
        "",
    ]
    return "\n".join(lines)
