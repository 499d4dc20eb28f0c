"""Training tests run torch on one thread: faster on the shared 2-core machine, and the
resume-equality tests compare runs that must use the same thread count (subprocesses get
OMP_NUM_THREADS=1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
