"""--threads auto: the model's CPU threads follow from the machine and the model's FLOPs, not from timings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from detect.helpers import make_checkpoint
from gendet.detect import load_scan_model, pipeline
from gendet.detect.pipeline import ThreadPolicy, count_flops


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(pipeline, "busy_cores", lambda: 0)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


CPU = torch.device("cpu")


def test_auto_gives_decoders_their_cores_only_when_the_model_is_light(four_cores) -> None:
    light = ThreadPolicy("auto", workers=1, device=CPU, flops_per_image=0.03e9)
    assert light.threads() == 3
    light.restore()
    heavy = ThreadPolicy("auto", workers=1, device=CPU, flops_per_image=6.9e9)
    assert heavy.threads() == 4
    heavy.restore()
    assert torch.get_num_threads() == 4


def test_fixed_threads_and_no_choice_without_workers_or_on_gpu(four_cores) -> None:
    policy = ThreadPolicy(2, workers=1, device=CPU)
    assert policy.threads() == 2
    policy.restore()
    for workers, device in ((0, "cpu"), (1, "cuda")):
        assert ThreadPolicy("auto", workers=workers, device=torch.device(device), flops_per_image=1e6).threads() == 4


def test_flops_are_counted_once_per_model(tmp_path) -> None:
    model = load_scan_model(make_checkpoint(tmp_path / "tiny"), "cpu")
    flops = count_flops(model)
    assert 0 < flops < ThreadPolicy.LIGHT_FLOPS
    calls = []
    forward = model.detector.forward
    model.detector.forward = lambda batch: calls.append(1) or forward(batch)  # type: ignore[method-assign]
    assert count_flops(model) == flops and not calls  # the second scan does not run the model again


def test_auto_leaves_cores_that_others_keep_busy(four_cores, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "busy_cores", lambda: 2)
    heavy = ThreadPolicy("auto", workers=1, device=CPU, flops_per_image=6.9e9)
    assert heavy.threads() == 2
    heavy.restore()
    assert ThreadPolicy("auto", workers=1, device=CPU, flops_per_image=0.03e9).threads() == 1


class _IndependentRuntime:
    """A runtime like OnnxDetector with batch parallelism: threads that never wait for each other."""

    def __init__(self, independent: bool) -> None:
        self.independent_threads, self.threads = independent, 4

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, n: int) -> None:
        self.threads = n


@pytest.mark.parametrize(("independent", "heavy", "light"), [(True, 4, 3), (False, 2, 1)])
def test_independent_threads_keep_the_cores_others_keep_busy(four_cores, monkeypatch, independent, heavy,
                                                             light) -> None:
    monkeypatch.setattr(pipeline, "busy_cores", lambda: 2)
    for flops, expected in ((6.9e9, heavy), (0.03e9, light)):
        runtime = _IndependentRuntime(independent)
        policy = ThreadPolicy("auto", workers=1, device=CPU, model=SimpleNamespace(detector=runtime),  # type: ignore[arg-type]
                              flops_per_image=flops)
        assert policy.threads() == expected
        policy.restore()
        assert runtime.threads == 4


def test_the_onnx_engine_says_whether_its_threads_are_independent(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from gendet.detect.onnx_model import load_onnx_model

    ckpt = make_checkpoint(tmp_path / "tiny")
    assert load_onnx_model(ckpt).detector.independent_threads  # type: ignore[union-attr]
    assert not load_onnx_model(ckpt, parallel="intra").detector.independent_threads  # type: ignore[union-attr]


def test_busy_cores_sees_a_busy_loop() -> None:
    import subprocess
    import sys

    idle = pipeline.busy_cores()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        assert pipeline.busy_cores(0.5) >= min(1, (pipeline.os.cpu_count() or 1) - idle)
    finally:
        hog.kill()
