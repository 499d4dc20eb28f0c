"""Explanation quality: generated vs reference explanation texts (FakeClue-style data).

The metrics follow the reference UniGenDet evaluation: ROUGE-L F-measure (rouge-score,
Porter stemming) and the cosine similarity of TF-IDF vectors, with the vectorizer fitted
on the predictions and references together. An empty prediction scores 0 on everything.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from torch.utils.data import DataLoader

from gendet.data.dataset import ImageDataset, collate_items
from gendet.data.preprocess import ImageOp, ImageTransform, Preprocess
from gendet.data.sample import Sample
from gendet.evaluation.degradations import get_degradation
from gendet.io import atomic_write_text
from gendet.models.base import Detector
from gendet.models.hooks import Explains

METRIC_NAMES = ("rouge_l", "tfidf_cosine", "exact_match")
_TOKEN = re.compile(r"\w+|[^\w\s]")


class NoExplanationHead(RuntimeError):
    """The detector cannot generate explanations (no generate_explanation, or it returned None)."""


def _normalise(text: str) -> list[str]:
    # exact match ignores case and spacing: the word tokenizer decodes "fake image ." as "fake image."
    return _TOKEN.findall(text.lower())


def _rouge_l(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    from rouge_score import rouge_scorer  # imported here: only explanation evaluation needs it

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([scorer.score(ref, pred)["rougeL"].fmeasure if pred.strip() else 0.0
                     for pred, ref in zip(predictions, references, strict=True)], dtype=np.float64)


def _tfidf_cosine(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    try:
        tfidf = TfidfVectorizer().fit(list(predictions) + list(references))
    except ValueError:  # no word at all in any text ("empty vocabulary"): nothing is similar
        return np.zeros(len(predictions), dtype=np.float64)
    p, r = tfidf.transform(predictions), tfidf.transform(references)
    # rows are L2-normalised, so the row-wise dot product is the cosine; an all-zero row gives 0
    cos = np.asarray(p.multiply(r).sum(axis=1), dtype=np.float64).ravel()
    empty = np.array([not pred.strip() for pred in predictions])
    return np.where(empty, 0.0, np.clip(cos, 0.0, 1.0))


def per_sample_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """Each metric per (prediction, reference) pair: {"rouge_l", "tfidf_cosine", "exact_match"}."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no explanations to score")
    predictions, references = [p or "" for p in predictions], [r or "" for r in references]
    exact = [bool(p.strip()) and _normalise(p) == _normalise(r) for p, r in zip(predictions, references, strict=True)]
    return {
        "rouge_l": _rouge_l(predictions, references),
        "tfidf_cosine": _tfidf_cosine(predictions, references),
        "exact_match": np.array(exact, dtype=np.float64),
    }


def explanation_metrics(predictions: list[str], references: list[str]) -> dict:
    """Mean ROUGE-L F-measure, TF-IDF cosine and exact match (case/spacing-insensitive) over the pairs."""
    scores = per_sample_scores(predictions, references)
    return {"n": len(predictions), **{k: float(scores[k].mean()) for k in METRIC_NAMES}}


@torch.inference_mode()
def generate_explanations(
    detector: Detector,
    samples: Sequence[Sample],
    pp: Preprocess,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    degradation: ImageOp | None = None,
    seed: int = 0,
) -> list[tuple[Sample, str]]:
    """(sample, generated explanation) for every sample that decodes, with evaluation's preprocessing.

    Undecodable files are skipped (evaluation reports them). Raises NoExplanationHead when the
    detector has no text head, so callers can tell "cannot explain" from "nothing decoded".
    """
    if not isinstance(detector, Explains):
        raise NoExplanationHead(f"{type(detector).__name__} has no generate_explanation")
    generate = detector.generate_explanation
    samples = list(samples)
    ds = ImageDataset(samples, ImageTransform(pp, train=False, degradation=degradation), seed=seed)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate_items)
    detector.eval()
    device = torch.device(device)
    out: list[tuple[Sample, str]] = []
    for batch in loader:
        if batch["image"].numel() == 0:
            continue
        texts = generate({"image": batch["image"].to(device)})
        if texts is None:
            raise NoExplanationHead(f"{type(detector).__name__} has no text head")
        if len(texts) != len(batch["index"]):
            raise ValueError(f"generate_explanation returned {len(texts)} texts for {len(batch['index'])} images")
        out.extend((samples[int(i)], str(t)) for i, t in zip(batch["index"], texts, strict=True))
    return out


def explanation_report(
    detector: Detector, samples: Sequence[Sample], pp: Preprocess, csv_path: Path, degradation: str | None = None,
    batch_size: int = 16, device: str = "cpu", seed: int = 0,
) -> dict[str, Any] | None:
    """Explanation metrics on the samples that carry a reference text, plus a CSV of every generated text.

    None (nothing written) when the model has no text head or no sample has a reference. The texts
    describe the same images as the detection metrics (`degradation` applied when given)."""
    with_ref = [s for s in samples if s.explanation]
    if not with_ref or not isinstance(detector, Explains):
        return None
    op = get_degradation(degradation) if degradation else None
    try:
        pairs = generate_explanations(detector, with_ref, pp, batch_size=batch_size, device=device,
                                      degradation=op, seed=seed)
    except NoExplanationHead:
        return None
    if not pairs:
        return None
    generated, references = [t for _, t in pairs], [s.explanation or "" for s, _ in pairs]
    try:
        scores = per_sample_scores(generated, references)
    except ImportError as e:  # rouge-score is only needed here, so a missing install must not sink the eval
        print(f"warning: explanation metrics skipped: {e} (pip install rouge-score)", file=sys.stderr)
        return None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label", "generator", "reference", "generated", *METRIC_NAMES])
    for i, (s, text) in enumerate(pairs):
        writer.writerow([os.path.abspath(s.path), s.label, s.generator, s.explanation, text,
                         *(round(float(scores[k][i]), 6) for k in METRIC_NAMES)])
    atomic_write_text(csv_path, buf.getvalue())
    block: dict[str, Any] = {"n": len(pairs), **{k: float(scores[k].mean()) for k in METRIC_NAMES}}
    generators = sorted({s.generator for s, _ in pairs})
    if len(generators) > 1:
        block["subsets"] = {
            g: explanation_metrics([t for s, t in pairs if s.generator == g],
                                   [s.explanation or "" for s, _ in pairs if s.generator == g])
            for g in generators
        }
    block.update(
        n_with_reference=len(with_ref),
        degradation=degradation or "none",
        decoding="greedy",
        metrics_note="rouge_l: ROUGE-L F-measure (rouge-score, Porter stemming); tfidf_cosine: cosine of TF-IDF "
        "vectors fitted on generated + reference texts; exact_match: same words, ignoring case and spacing",
        explanations_file=csv_path.name,
    )
    return block
