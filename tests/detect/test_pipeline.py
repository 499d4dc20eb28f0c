"""The batch path: uint8 pixels from the decoders, normalised in the model's process into reused buffers; the
summary's account of the model's time."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from detect.helpers import make_good_images, noise_image
from gendet.data.preprocess import ImageTransform, normalize
from gendet.detect import Input, ScanModel, iter_record_batches
from gendet.detect.pipeline import BatchBuffers, ScanSummary, score_batch, score_entries


def _pixels(model: ScanModel, n: int) -> list[torch.Tensor]:
    tf = ImageTransform(model.preprocess, train=False)
    return [tf.pixels(noise_image(40, seed), np.random.default_rng(0)) for seed in range(n)]


def test_uint8_pixels_score_as_their_normalised_input(scan_model: ScanModel) -> None:
    pixels = torch.stack(_pixels(scan_model, 6))
    as_float = score_batch(scan_model, normalize(pixels, scan_model.preprocess), torch.device("cpu"))
    buffers = BatchBuffers()
    for _ in range(2):  # the second batch reuses the first one's memory
        assert np.array_equal(score_batch(scan_model, pixels, torch.device("cpu"), buffers), as_float)
    assert np.array_equal(score_batch(scan_model, pixels, torch.device("cpu")), as_float)
    assert len(set(as_float.round(6))) > 1  # the images score differently: a wrong input would show


def test_buffers_are_reused_grown_and_kept_per_dtype() -> None:
    buffers = BatchBuffers()
    a = buffers.get((4, 3, 8, 8), torch.float32)
    b = buffers.get((2, 3, 8, 8), torch.float32)  # a smaller last batch: the same memory
    assert b.data_ptr() == a.data_ptr() and b.shape == (2, 3, 8, 8)
    c = buffers.get((8, 3, 8, 8), torch.float32)  # larger: grown
    assert c.numel() == 8 * 3 * 8 * 8 and buffers.get((8, 3, 8, 8), torch.float32).data_ptr() == c.data_ptr()
    u = buffers.get((4, 3, 8, 8), torch.uint8)
    assert u.dtype == torch.uint8 and buffers.get((8, 3, 8, 8), torch.float32).data_ptr() == c.data_ptr()


def test_entries_stack_into_buffers_with_the_same_records(scan_model: ScanModel) -> None:
    pixels = _pixels(scan_model, 5)
    entries = [(f"img{i}", p, None, None) for i, p in enumerate(pixels)]
    entries.insert(2, ("broken", None, "truncated", None))
    plain = score_entries(scan_model, entries, torch.device("cpu"))
    buffers = BatchBuffers()
    reused = score_entries(scan_model, entries, torch.device("cpu"), buffers)
    again = score_entries(scan_model, entries[:3], torch.device("cpu"), buffers)
    assert [r.score for r in reused] == [r.score for r in plain] and plain[2].error == "truncated"
    # a smaller batch into the grown buffers (not compared with the batch of 5: conv kernels differ by batch size)
    assert [r.score for r in again] == [r.score for r in score_entries(scan_model, entries[:3], torch.device("cpu"))]


def test_batches_ramp_up_from_the_first_size_to_the_batch_size() -> None:
    from gendet.detect.pipeline import _batches

    entries = list(range(75))
    assert [len(b) for b in _batches(entries, 32, first=4)] == [4, 8, 16, 32, 15]
    assert [len(b) for b in _batches(entries, 32)] == [32, 32, 11]
    assert [len(b) for b in _batches(entries, 3, first=4)] == [3] * 25
    assert [x for b in _batches(entries, 32, first=4) for x in b] == entries


class _SlowDetector:
    """The tiny detector, SECONDS slower per batch: the summary must count that time as the model's."""

    SECONDS = 0.05

    def __init__(self, inner: torch.nn.Module) -> None:
        self.inner = inner

    def eval(self) -> _SlowDetector:
        self.inner.eval()
        return self

    def __call__(self, batch: dict) -> dict:
        time.sleep(self.SECONDS)
        return self.inner(batch)


def test_the_summary_counts_the_models_share_of_the_scan(scan_model: ScanModel, tmp_path) -> None:
    paths = make_good_images(tmp_path, 6)
    slow = dataclasses.replace(scan_model, detector=_SlowDetector(scan_model.detector))
    summary = ScanSummary()
    # batches of 2 decoded here (workers=0): decoding is the rest of the wall time
    records = [r for b in iter_record_batches([Input(str(p)) for p in paths], slow, batch_size=2, summary=summary)
               for r in b]
    assert len(records) == 6 and summary.errors == 0
    assert 3 * _SlowDetector.SECONDS <= summary.model_seconds < summary.seconds
    assert 0 < summary.model_busy < 1
    assert ScanSummary().model_busy == 0.0  # nothing ran: no share, no division by zero
