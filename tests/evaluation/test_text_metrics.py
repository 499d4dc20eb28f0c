"""Explanation metrics on hand-made texts, and generation with evaluation's preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from rouge_score import rouge_scorer

from gendet.data.preprocess import Preprocess
from gendet.data.sample import Sample
from gendet.evaluation.text_metrics import (
    NoExplanationHead,
    explanation_metrics,
    generate_explanations,
    per_sample_scores,
)


def test_identical_texts_score_one() -> None:
    texts = ["This is a fake image. The fur texture is too smooth.", "This is a real image."]
    m = explanation_metrics(texts, list(texts))
    assert m["n"] == 2
    assert m["rouge_l"] == pytest.approx(1.0)
    assert m["tfidf_cosine"] == pytest.approx(1.0)
    assert m["exact_match"] == 1.0


def test_disjoint_texts_score_zero() -> None:
    m = explanation_metrics(["warped text on signs"], ["smooth fur under lighting"])
    assert m == {"n": 1, "rouge_l": 0.0, "tfidf_cosine": 0.0, "exact_match": 0.0}


def test_partial_overlap_matches_rouge_score() -> None:
    pred = ["this is a fake image with blurry hands", "the cats are sitting oddly"]
    ref = ["This is a fake image: the hands are malformed.", "The cat sits on a mat."]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(pred, ref, strict=True)])
    m = explanation_metrics(pred, ref)
    assert m["rouge_l"] == pytest.approx(expected)
    assert 0.0 < m["rouge_l"] < 1.0
    assert 0.0 < m["tfidf_cosine"] < 1.0
    assert m["exact_match"] == 0.0
    # stemming at work: "cats are sitting" / "cat sits" share cat + sit
    assert per_sample_scores(pred, ref)["rouge_l"][1] > 0.3


def test_exact_match_ignores_case_and_spacing() -> None:
    m = explanation_metrics(["this is a fake image ."], ["This is a  fake image."])
    assert m["exact_match"] == 1.0


def test_empty_predictions_score_zero() -> None:
    m = explanation_metrics(["", "this is a real image."], ["This is a fake image.", "This is a real image."])
    assert m["rouge_l"] == pytest.approx(0.5) and m["tfidf_cosine"] == pytest.approx(0.5)
    assert m["exact_match"] == 0.5
    # nothing but empty strings: no vocabulary for TF-IDF, still no crash
    assert explanation_metrics([""], [""]) == {"n": 1, "rouge_l": 0.0, "tfidf_cosine": 0.0, "exact_match": 0.0}


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="no explanations"):
        explanation_metrics([], [])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        explanation_metrics(["a b", "c d"], ["a b"])


class _EchoDetector(torch.nn.Module):
    """Explains each image by its mean brightness, so the order of the outputs can be checked."""

    def __init__(self, head: bool = True) -> None:
        super().__init__()
        self.head = head
        self.batches: list[int] = []

    def generate_explanation(self, batch: dict[str, Any]) -> list[str] | None:
        self.batches.append(batch["image"].shape[0])
        if not self.head:
            return None
        return [f"bright {float(x.mean()):.2f}" for x in batch["image"]]


def _samples(tmp_path: Path) -> list[Sample]:
    out = []
    for i, v in enumerate([0, 250, 120]):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (32, 32), (v, v, v)).save(p)
        out.append(Sample(path=p, label=i % 2, explanation=f"text {i}"))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    out.insert(1, Sample(path=bad, label=1, explanation="never read"))
    return out


def test_generate_explanations_keeps_order_and_skips_undecodable(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    pp = Preprocess(size=32, align="none")
    det = _EchoDetector()
    pairs = generate_explanations(det, samples, pp, batch_size=2, device="cpu")
    assert [s.path.name for s, _ in pairs] == ["0.png", "1.png", "2.png"]  # broken.png skipped
    bright = [float(t.split()[1]) for _, t in pairs]
    assert bright[0] < bright[2] < bright[1]  # 0 < 120 < 250 grey level, through the same normalisation
    assert det.batches == [1, 2]  # batch 1 lost its broken image


def test_generate_explanations_without_text_head_raises(tmp_path: Path) -> None:
    pp = Preprocess(size=32, align="none")
    with pytest.raises(NoExplanationHead):
        generate_explanations(_EchoDetector(head=False), _samples(tmp_path), pp, batch_size=4)
    with pytest.raises(NoExplanationHead):
        generate_explanations(torch.nn.Linear(1, 1), _samples(tmp_path), pp)  # type: ignore[arg-type]
