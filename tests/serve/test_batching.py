"""The batching queue (grouping, max_batch, failure isolation, back-pressure) and concurrency against a real
uvicorn server: concurrent requests are batched, get the same scores as one at a time, and hostile uploads
mixed in still get their 4xx."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch

from gendet.serve.app import create_app
from gendet.serve.batching import BatchQueue, QueueFull
from serve.helpers import image_bytes, running_server


def _sum_scores(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.stack(tensors).flatten(1).sum(dim=1).numpy()


def test_queue_groups_concurrent_items_and_caps_batch() -> None:
    sizes: list[int] = []

    def run(batch: list[torch.Tensor]) -> np.ndarray:
        sizes.append(len(batch))
        return _sum_scores(batch)

    async def main() -> list[float]:
        q = BatchQueue(run, ThreadPoolExecutor(1), max_batch=4, wait_ms=200)
        q.start()
        try:
            return await asyncio.gather(*(q.submit(torch.full((2,), float(i))) for i in range(10)))
        finally:
            await q.stop()

    scores = asyncio.run(main())
    assert scores == [2.0 * i for i in range(10)]  # each caller gets its own item's score
    assert sum(sizes) == 10 and max(sizes) == 4 and sizes[0] == 4  # grouped, never above max_batch


def test_lone_item_waits_at_most_the_window() -> None:
    async def main() -> float:
        q = BatchQueue(_sum_scores, ThreadPoolExecutor(1), max_batch=32, wait_ms=30)
        q.start()
        try:
            t0 = asyncio.get_running_loop().time()
            await q.submit(torch.ones(1))
            return asyncio.get_running_loop().time() - t0
        finally:
            await q.stop()

    assert asyncio.run(main()) < 1.0


def test_failed_batch_fails_its_requests_only() -> None:
    calls = {"n": 0}

    def flaky(batch: list[torch.Tensor]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return _sum_scores(batch)

    async def main() -> tuple[BaseException | float, float, dict]:
        q = BatchQueue(flaky, ThreadPoolExecutor(1), max_batch=1, wait_ms=0)
        q.start()
        try:
            first = await asyncio.gather(q.submit(torch.ones(1)), return_exceptions=True)
            second = await q.submit(torch.ones(3))  # the worker is still alive
            return first[0], second, q.stats.to_dict()
        finally:
            await q.stop()

    first, second, stats = asyncio.run(main())
    assert isinstance(first, RuntimeError) and second == 3.0
    assert stats["failed_batches"] == 1 and stats["batches"] == 1


def test_full_queue_refuses_with_queuefull() -> None:
    release = threading.Event()

    def slow(batch: list[torch.Tensor]) -> np.ndarray:
        release.wait(10)
        return _sum_scores(batch)

    async def main() -> list:
        q = BatchQueue(slow, ThreadPoolExecutor(1), max_batch=1, wait_ms=0, max_queue=2)
        q.start()
        try:
            first = asyncio.ensure_future(q.submit(torch.ones(1)))  # taken by the worker, blocks in `slow`
            await asyncio.sleep(0.1)
            waiting = [asyncio.ensure_future(q.submit(torch.ones(1))) for _ in range(2)]
            await asyncio.sleep(0.05)
            with pytest.raises(QueueFull, match="retry later"):
                await q.submit(torch.ones(1))
            release.set()
            return await asyncio.gather(first, *waiting)
        finally:
            release.set()
            await q.stop()

    assert asyncio.run(main()) == [1.0, 1.0, 1.0]


def test_concurrent_requests_on_a_real_server(serve_model) -> None:
    datas = [image_bytes(40 + i % 7, 100 + i) for i in range(24)]
    app = create_app(model=serve_model, batch_wait_ms=50, max_batch=16)
    with running_server(app) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            alone = [c.post("/v1/detect", files={"file": ("a.png", d, "image/png")}).json()["results"][0]["score"]
                     for d in datas[:4]]

        async def hammer() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as c:
                good = [c.post("/v1/detect", files={"file": (f"{i}.png", d, "image/png")}) for i, d in enumerate(datas)]
                bad = [c.post("/v1/detect", files={"file": ("bad.png", b"not an image", "image/png")})
                       for _ in range(6)]
                return await asyncio.gather(*good, *bad)

        responses = asyncio.run(hammer())
        health = httpx.get(f"{url}/health").json()
    good, bad = responses[:24], responses[24:]
    assert all(r.status_code == 200 for r in good), [r.text for r in good if r.status_code != 200]
    assert all(r.status_code == 415 for r in bad)
    scores = [r.json()["results"][0]["score"] for r in good]
    assert scores[:4] == pytest.approx(alone, abs=1e-5)  # batching does not change a score
    assert health["batching"]["max_batch_seen"] > 1  # concurrent requests were really grouped
    assert health["batching"]["images"] == 4 + 24  # bad uploads never reach the model
