"""--threads auto: the model's CPU threads are chosen from forward times measured in place."""

from __future__ import annotations

import pytest
import torch

from gendet.detect import pipeline
from gendet.detect.pipeline import ThreadPolicy


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def run_probes(policy: ThreadPolicy, ms_per_img: dict[int, float]) -> list[int]:
    """Feed the policy batches whose forward time depends on the threads set; return the threads seen."""
    seen = []
    for _ in range(ThreadPolicy.PROBES + 3):
        n = torch.get_num_threads()
        seen.append(n)
        policy.observe(10, ms_per_img[n] * 10 / 1000)
    return seen


@pytest.mark.parametrize("fast, slow", [(3, 4), (4, 3)])
def test_auto_keeps_the_setting_with_the_faster_forward(four_cores, fast, slow) -> None:
    policy = ThreadPolicy("auto", workers=1, device=torch.device("cpu"))
    seen = run_probes(policy, {fast: 1.0, slow: 2.0})
    assert set(seen[:ThreadPolicy.PROBES + 1]) == {3, 4}  # both settings were tried
    assert seen[-2:] == [fast, fast]
    policy.restore()
    assert torch.get_num_threads() == 4


def test_fixed_threads_and_no_probing_without_workers_or_on_gpu(four_cores) -> None:
    policy = ThreadPolicy(2, workers=1, device=torch.device("cpu"))
    assert run_probes(policy, {2: 1.0})[-1] == 2
    policy.restore()
    for workers, device in ((0, "cpu"), (1, "cuda")):
        policy = ThreadPolicy("auto", workers=workers, device=torch.device(device))
        assert set(run_probes(policy, {4: 1.0})) == {4}
