"""`gendet eval`'s job: a checkpoint's metrics on labelled samples, clean or under the protocol's degradations, and
the eval JSON (the CLI only reads arguments, calls these and prints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gendet.data.preprocess import Preprocess
from gendet.data.sample import Sample
from gendet.evaluation.inference import Predictions
from gendet.evaluation.metrics import METRIC_KEYS
from gendet.evaluation.protocol import degradation_mean, degradation_table, evaluate
from gendet.version import VERSION


@dataclass
class EvalBlocks:
    """Metrics per degradation ("none" = clean), their predictions, and every undecodable file once."""

    degradation: str  # what was asked: "none", one of the six, or "all"
    table: dict[str, dict[str, Any]]
    preds: dict[str, Predictions]
    errors: list[list[str]]

    @property
    def main(self) -> str:
        """The block the headline metrics come from (clean when every degradation ran)."""
        return "none" if self.degradation == "all" else self.degradation


def evaluate_blocks(detector: Any, samples: list[Sample], pp: Preprocess, threshold: float, source: str,
                    degradation: str, batch_size: int, workers: int, device: str, seed: int,
                    progress: bool) -> EvalBlocks:
    """Score `samples` once per asked degradation ("all": clean and the six). Raises ValueError when nothing
    could be decoded."""
    kw = {"batch_size": batch_size, "workers": workers, "device": device, "seed": seed}
    if degradation == "all":
        table, preds = degradation_table(detector, samples, pp, threshold, source, progress=progress, **kw)
    else:
        metrics, p = evaluate(detector, samples, pp, threshold, source, degradation=degradation,
                              progress=f"eval {degradation}" if progress else False, **kw)
        table, preds = {degradation: metrics}, {degradation: p}
    errors: list[list[str]] = []
    for block in table.values():
        errors.extend(e for e in block.pop("errors") if e not in errors)
    return EvalBlocks(degradation, table, preds, errors)


def eval_record(blocks: EvalBlocks, samples: list[Sample], pp: Preprocess, explanation: dict[str, Any] | None,
                **context: Any) -> dict[str, Any]:
    """The eval JSON: the main block's metrics, per-subset metrics, the degradation table when every degradation
    ran, and `context` (model, checkpoint, data root, layout, command, seed, ...)."""
    main = blocks.table[blocks.main]
    result: dict[str, Any] = {k: main[k] for k in METRIC_KEYS}
    if "notes" in main:
        result["notes"] = main["notes"]
    result.update(subsets=main.get("subsets", {}),
                  generators=sorted({s.generator for s in blocks.preds[blocks.main].samples}),
                  degradation=blocks.degradation, align=pp.align, preprocess=pp.to_dict(), **context,
                  splits=sorted({s.split for s in samples}), gendet_version=VERSION, errors=blocks.errors)
    if blocks.degradation == "all":
        result["degradations"] = blocks.table
        result["degradation_summary"] = {"metric": "acc", "mean": degradation_mean(blocks.table, "acc")}
    if explanation is not None:
        result["explanation"] = explanation
    return result
