"""Detectors whose frozen part's output is cached: a frozen feature extractor + a head trained on its features.

The contract the genuine benchmark (gendet.bench.genuine_cells.HeadCell) and `gendet train
--solver head` rely on:
- `backbone_features(x)`: the frozen part, images (B, 3, H, W) -> (B, F); what the cache stores;
- `fit_head(features (N, F), labels (N,), seed)`: trains every trainable part on cached features;
- `head_logits(features (n, crops, F) or (n, F))`: logits, mean over crops;
- `head_state()` / `load_head_state(state)`: the trained parts, to keep one cell's head while the
  same detector object fits the next cell's;
- `feature_key()`: what the cached features depend on (frozen weights, taps, geometry).
`FROZEN` names the submodules that never train; everything else in the state dict is head state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from gendet.models.base import Detector


class CachedHeadDetector(Detector):
    FROZEN: ClassVar[tuple[str, ...]] = ("backbone",)

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit_head(self, raw: np.ndarray, labels: np.ndarray, seed: int = 0) -> None:
        raise NotImplementedError

    def head_logits_tensor(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits (B,) of cached features (B, F)."""
        raise NotImplementedError

    def frozen_identity(self) -> dict[str, Any]:
        """What, besides the class name, decides the frozen part's output (weights' digests, taps, sizes)."""
        raise NotImplementedError

    def feature_key(self) -> str:
        ident = json.dumps({"class": type(self).__name__, **self.frozen_identity()}, sort_keys=True, default=str)
        return f"{self.name}-" + hashlib.sha256(ident.encode()).hexdigest()[:20]

    def train(self, mode: bool = True) -> CachedHeadDetector:
        super().train(mode)
        for name in self.FROZEN:
            getattr(self, name).eval()  # frozen parts keep their inference behaviour (BatchNorm statistics)
        return self

    def head_logits(self, raw: np.ndarray) -> np.ndarray:
        arr = np.asarray(raw, dtype=np.float32)
        flat = torch.from_numpy(arr.reshape(-1, arr.shape[-1]))
        was = self.training
        self.eval()
        with torch.no_grad():
            logit = torch.cat([self.head_logits_tensor(flat[i:i + 512]) for i in range(0, len(flat), 512)])
        self.train(was)
        logit = logit.double().numpy().reshape(arr.shape[:-1])
        return logit.mean(axis=1) if logit.ndim == 2 else logit

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        feats = self.backbone_features(batch["image"])
        logit = self.head_logits_tensor(feats).reshape(-1)
        return {"logit": logit, "prob": torch.sigmoid(logit)}

    def _is_frozen(self, key: str) -> bool:
        return is_frozen(key, self.FROZEN)

    def head_state(self) -> dict[str, torch.Tensor]:
        return head_state(self, self.FROZEN)

    def load_head_state(self, state: dict[str, torch.Tensor]) -> None:
        load_head_state(self, state, self.FROZEN)

    def head_parameters(self) -> list[torch.nn.Parameter]:
        return [p for k, p in self.named_parameters() if not self._is_frozen(k)]


def is_frozen(key: str, frozen: tuple[str, ...]) -> bool:
    return any(key == f or key.startswith(f + ".") for f in frozen)


def head_state(module: torch.nn.Module, frozen: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Copies of every state entry outside the frozen submodules."""
    return {k: v.detach().clone() for k, v in module.state_dict().items() if not is_frozen(k, frozen)}


def load_head_state(module: torch.nn.Module, state: dict[str, torch.Tensor], frozen: tuple[str, ...]) -> None:
    expected = {k for k in module.state_dict() if not is_frozen(k, frozen)}
    if set(state) != expected:
        raise ValueError(f"head state mismatch: missing {sorted(expected - set(state))[:5]}, "
                         f"unexpected {sorted(set(state) - expected)[:5]}")
    module.load_state_dict(state, strict=False)


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 (20 hex) of tensors by name, shape, dtype and bytes: names the exact frozen weights in a cache key."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:20]


def balanced_batches(labels: np.ndarray, batch: int, steps: int, seed: int) -> Iterator[np.ndarray]:
    """`steps` label-balanced index batches (half real, half generated), drawn with replacement, seeded."""
    rng = np.random.default_rng(seed)
    real, fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if not len(real) or not len(fake):
        raise ValueError("training a head needs both classes")
    half = batch // 2
    for _ in range(steps):
        yield np.concatenate([rng.choice(real, half), rng.choice(fake, batch - half)])


def adamw_loop(params: list[torch.nn.Parameter], steps: int, lr: float, weight_decay: float,
               step_loss: Callable[[int], torch.Tensor], warmup: float = 0.05, grad_clip: float = 1.0) -> list[float]:
    """AdamW (0.9, 0.95) with linear warm-up and cosine decay; returns the loss every 10 steps. A non-finite loss
    raises instead of being skipped."""
    import math

    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    warm = max(1, round(warmup * steps))

    def factor(s: int) -> float:
        return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    curve = []
    for step in range(steps):
        loss = step_loss(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite head loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        sched.step()
        if step % 10 == 0:
            curve.append(float(loss.detach()))
    return curve
