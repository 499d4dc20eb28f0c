"""Validation scores for the trainer: the held-out split, shared out over the ranks when distributed.

One process: `gendet.evaluation.inference.predict`, as always. N ranks: rank r scores samples
r, r+N, r+2N, ... with rank 0's BatchNorm statistics, and every rank receives all scores back
in the split's order, so every rank computes the same metrics and takes the same early-stopping
and best-epoch decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gendet.data.dataset import ImageDataset
from gendet.data.preprocess import Preprocess
from gendet.data.sample import Sample
from gendet.data.shards import ShardImageDataset, is_shard_backed
from gendet.evaluation.inference import Predictions, predict
from gendet.models.base import Detector
from gendet.training.distributed import DistInfo, broadcast_buffers, gather_objects, rank_shard


@torch.inference_mode()
def predict_samples(
    detector: Detector, samples: Sequence[Sample], pp: Preprocess, batch_size: int, workers: int,
    device: torch.device, seed: int,
) -> Predictions:
    """`predict`, reading tar shards instead of files for shard-backed samples."""
    samples = list(samples)
    dataset_cls = ShardImageDataset if is_shard_backed(samples) else ImageDataset
    return predict(detector, samples, pp, batch_size=batch_size, workers=workers, device=device, seed=seed,
                   dataset_cls=dataset_cls)


def score_validation(
    detector: Detector, samples: Sequence[Sample], pp: Preprocess, batch_size: int, workers: int,
    device: torch.device, seed: int, dist_info: DistInfo,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """(labels, scores, errors) of the samples that decoded, in `samples` order, on every rank."""
    if not dist_info.enabled:
        preds = predict_samples(detector, samples, pp, batch_size, workers, device, seed)
        return preds.labels, preds.scores, preds.errors
    broadcast_buffers(detector)
    local = rank_shard(samples, dist_info)
    preds = predict_samples(detector, local, pp, batch_size, workers, device, seed)
    position = {id(s): i for i, s in enumerate(local)}  # predict keeps the sample objects it was given
    mine = [(dist_info.rank + position[id(s)] * dist_info.world_size, int(label), float(score))
            for s, label, score in zip(preds.samples, preds.labels, preds.scores, strict=True)]
    parts = gather_objects((mine, list(preds.errors)))
    rows = sorted(r for part, _ in parts for r in part)
    labels = np.array([r[1] for r in rows], dtype=np.int64)
    scores = np.array([r[2] for r in rows], dtype=np.float64)
    return labels, scores, [tuple(e) for _, errs in parts for e in errs]
