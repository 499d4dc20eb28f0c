"""The reconstruction cache: content-keyed, an in-memory LRU bounded in bytes, optionally backed by disk.

Reconstruction is the expensive part of HRR and DIRE (a flow model runs per image, per scale, per
step), while its result depends only on the image content and the retrospection settings. So a
reconstruction is stored under `sha256(image bytes) + settings + scale` and computed once per
process (memory) or once per machine (disk), however many epochs, variants or seeds look at it.

Entries are float16 (half the memory; the residuals HRR reads are ~0.05 in a [-1, 1] image, far
above float16's 5e-4 spacing). A fresh reconstruction is rounded to float16 too, so a hit and a miss
return bit-identical tensors.

The process-wide cache (`shared_cache()`) reads two environment variables once:
`GENDET_RECON_CACHE_MB` (memory bound, default 1024) and `GENDET_RECON_CACHE_DIR` (disk
directory; unset = memory only). `configure_shared_cache` changes them in code (the ablation does).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gendet.io import atomic_write

DEFAULT_MEMORY_MB = 1024


@dataclass
class CacheStats:
    hits: int = 0
    disk_hits: int = 0
    misses: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "disk_hits": self.disk_hits, "misses": self.misses}


class ReconstructionCache:
    """key (hex string) -> float16 CPU tensor; LRU in memory, write-through to `disk_dir` when set."""

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_MB << 20, disk_dir: str | os.PathLike | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _path(self, key: str) -> Path:
        assert self.disk_dir is not None
        return self.disk_dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> torch.Tensor | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return hit
        if self.disk_dir is not None:
            path = self._path(key)
            if path.is_file():
                try:
                    arr = np.load(path, allow_pickle=False)
                except (OSError, ValueError):  # a torn or foreign file is a miss, and gets rewritten
                    arr = None
                if arr is not None and arr.dtype == np.float16:
                    tensor = torch.from_numpy(arr)
                    self._remember(key, tensor)
                    self.stats.disk_hits += 1
                    return tensor
        self.stats.misses += 1
        return None

    def put(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """Store `value` as float16 on the CPU and return the stored tensor."""
        tensor = value.detach().to("cpu", torch.float16).contiguous()
        self._remember(key, tensor)
        if self.disk_dir is not None:
            def write(tmp: Path) -> None:
                with open(tmp, "wb") as fh:  # np.save on a handle: no ".npy" appended to the temp name
                    np.save(fh, tensor.numpy(), allow_pickle=False)

            atomic_write(self._path(key), write)  # a concurrent reader sees the old file or the whole new one
        return tensor

    def _remember(self, key: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.numel() * old.element_size()
        self._entries[key] = tensor
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.numel() * evicted.element_size()

    def clear(self) -> None:
        """Forget the memory entries and counters (disk files stay)."""
        self._entries.clear()
        self._bytes = 0
        self.stats = CacheStats()


_SHARED: ReconstructionCache | None = None


def shared_cache() -> ReconstructionCache:
    """The process-wide cache every HRR/DIRE detector uses unless given its own."""
    global _SHARED
    if _SHARED is None:
        mb = int(os.environ.get("GENDET_RECON_CACHE_MB", DEFAULT_MEMORY_MB))
        _SHARED = ReconstructionCache(mb << 20, os.environ.get("GENDET_RECON_CACHE_DIR") or None)
    return _SHARED


def configure_shared_cache(max_mb: int | None = None, disk_dir: str | os.PathLike | None = None) -> ReconstructionCache:
    """Set the shared cache's memory bound and/or disk directory (entries in memory are kept)."""
    cache = shared_cache()
    if max_mb is not None:
        cache.max_bytes = int(max_mb) << 20
    if disk_dir is not None:
        cache.disk_dir = Path(disk_dir)
    return cache
