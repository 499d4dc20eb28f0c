"""The most confident right and wrong predictions of an evaluation, as captioned thumbnails."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from gendet.data.decode import DecodeError
from gendet.report.plots import make_thumbnail
from gendet.report.run_data import PredictionTable


@dataclass
class ConfidentExamples:
    right: list[tuple[Image.Image, str]] = field(default_factory=list)
    wrong: list[tuple[Image.Image, str]] = field(default_factory=list)
    n_right: int = 0
    n_wrong: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def resolve_image_path(path: str, roots: list[Path]) -> Path:
    """Absolute paths as they are; relative ones against the first root where the file exists."""
    p = Path(path)
    if p.is_absolute():
        return p
    for r in roots:
        if (r / p).exists():
            return r / p
    return roots[0] / p if roots else p


def _caption(label: float, score: float, threshold: float, generator: str, path: str) -> str:
    truth = "generated" if label == 1 else "real"
    called = "generated" if score >= threshold else "real"
    head = f"{truth}, score {score:.3f}" if truth == called else f"{truth} called {called}, score {score:.3f}"
    where = f"{generator} \u00b7 " if generator else ""
    return f"{head}\n{where}{Path(path).name}"


def confident_examples(
    preds: PredictionTable,
    threshold: float,
    top_k: int = 8,
    roots: list[str | os.PathLike] | None = None,
    thumb_px: int = 112,
) -> ConfidentExamples:
    """Top-k correct and top-k wrong predictions by |score - threshold|, decoded into thumbnails.

    Unreadable images are skipped (recorded in `skipped`) and the next most
    confident one is taken, so each list has up to `top_k` readable images.
    """
    out = ConfidentExamples()
    if top_k <= 0 or len(preds) == 0:
        return out
    root_paths = [Path(r) for r in (roots or [])]
    valid = np.isfinite(preds.scores) & np.isin(preds.labels, (0, 1))
    called = preds.scores >= threshold
    correct = valid & (called == (preds.labels == 1))
    wrong = valid & ~correct
    margin = np.abs(preds.scores - threshold)
    out.n_right, out.n_wrong = int(correct.sum()), int(wrong.sum())
    for mask, dest in ((correct, out.right), (wrong, out.wrong)):
        idx = np.flatnonzero(mask)
        # stable sort: ties keep the file order, so the selection is deterministic
        for i in idx[np.argsort(-margin[idx], kind="stable")]:
            if len(dest) >= top_k:
                break
            path = preds.paths[i]
            try:
                thumb = make_thumbnail(resolve_image_path(path, root_paths), thumb_px)
            except DecodeError as e:
                out.skipped.append((path, e.reason))
                continue
            cap = _caption(preds.labels[i], preds.scores[i], threshold, preds.generators[i], path)
            dest.append((thumb, cap))
    return out
