"""Request batching: single images from concurrent requests are grouped into one forward pass.

One asyncio worker task takes the first waiting image, then keeps collecting for at most
`wait_ms` (or until `max_batch` are in hand), stacks them and runs the model in a dedicated
thread (torch releases the GIL, so the event loop keeps accepting requests meanwhile). Under
load the queue is never empty and batches fill without waiting; a lone request waits at most
`wait_ms`. With `max_batch=1` it degrades to one-at-a-time inference (the benchmark's control).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger("gendet.serve")


class QueueFull(Exception):
    """More images are waiting than the queue admits; the client should retry (503)."""


@dataclass
class BatchStats:
    """What the worker has done so far (reported by GET /health)."""

    batches: int = 0
    images: int = 0
    failed_batches: int = 0
    sizes: Counter = field(default_factory=Counter)

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0

    def to_dict(self) -> dict:
        return {"batches": self.batches, "images": self.images, "failed_batches": self.failed_batches,
                "mean_batch": round(self.mean_batch, 3), "max_batch_seen": max(self.sizes, default=0)}


@dataclass
class _Item:
    tensor: torch.Tensor
    future: asyncio.Future


class BatchQueue:
    """`await submit(x)` -> the model's score for one (C, H, W) tensor, computed in a batch with its neighbours.

    `run_batch(tensors) -> (B,) scores` runs in `executor` (give it one thread: the model is not shared); it
    gets the batch's tensors as a list and stacks them itself, so copying a batch never blocks the event loop.
    """

    def __init__(self, run_batch: Callable[[list[torch.Tensor]], np.ndarray], executor: Executor, max_batch: int = 32,
                 wait_ms: float = 5.0, max_queue: int = 1024) -> None:
        if max_batch < 1 or max_queue < 1 or wait_ms < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1, wait_ms >= 0; got {max_batch}, {max_queue}, "
                             f"{wait_ms}")
        self.run_batch, self.executor = run_batch, executor
        self.max_batch, self.wait_s, self.max_queue = max_batch, wait_ms / 1000.0, max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    def start(self) -> None:
        """Start the worker on the running event loop (call from the app's lifespan)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._worker(), name="gendet-batch-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("server shutting down"))

    async def submit(self, tensor: torch.Tensor) -> float:
        if self._queue is None:
            raise RuntimeError("BatchQueue.start() was not called")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"server busy: {self._queue.qsize()} images are waiting for the model; retry later")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(tensor, future))
        return await future

    async def _collect(self) -> list[_Item]:
        """The first waiting item plus whatever arrives within the wait window, up to max_batch."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        items = [await self._queue.get()]
        deadline = loop.time() + self.wait_s
        while len(items) < self.max_batch:
            if not self._queue.empty():
                items.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [it for it in items if not it.future.done()]  # a cancelled request (client gone) is dropped

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            if not items:
                continue
            try:
                scores = await loop.run_in_executor(self.executor, self.run_batch, [it.tensor for it in items])
                if len(scores) != len(items):
                    raise RuntimeError(f"run_batch returned {len(scores)} scores for {len(items)} images")
            except Exception as e:  # noqa: BLE001 - a failed batch fails its requests, never the worker
                log.exception("batch of %d images failed", len(items))
                self.stats.failed_batches += 1
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            self.stats.batches += 1
            self.stats.images += len(items)
            self.stats.sizes[len(items)] += 1
            for it, score in zip(items, scores, strict=True):
                if not it.future.done():
                    it.future.set_result(float(score))
