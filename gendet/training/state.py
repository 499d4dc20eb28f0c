"""Reproducibility plumbing for training: seeding, deterministic flags, RNG snapshots, atomic saves.

Everything saved here must load with `torch.load(weights_only=True)`, so RNG
states are stored as tensors and plain Python scalars, never numpy objects.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gendet.data.sample import Sample
from gendet.io import atomic_write


def mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from several integers (e.g. (seed, epoch))."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)  # also seeds all CUDA devices


@contextlib.contextmanager
def deterministic_mode() -> Iterator[None]:
    """Deterministic kernels for the duration of a run, restoring the caller's settings afterwards.

    warn_only: an op with no deterministic kernel warns instead of failing, so
    a detector is never unusable because of one op; the warning names the op.
    """
    # cuBLAS needs this set before its first use to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]


def get_rng_state() -> dict[str, Any]:
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached": float(np_cached),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save via gendet.io.atomic_write (fsynced): a kill never leaves a half file."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp), fsync=True)


def read_train_state(path: Path, error: type[Exception] = ValueError, required: Sequence[str] = ()) -> dict[str, Any]:
    """A training state saved by atomic_torch_save; `error` (with the reason and what to do) when it is
    unreadable, not a dict, or lacks a `required` key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types; all mean "not a usable state"
        raise error(f"cannot resume from {path}: the file is damaged or not a gendet training state "
                    f"({type(e).__name__}: {str(e)[:200]}). Delete it to start the run over") from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise error(f"cannot resume from {path}: not a gendet training state (missing {', '.join(missing)}). "
                    "Delete it to start the run over")
    return state


def samples_fingerprint(samples: Sequence[Sample]) -> str:
    """Hash of (path, label) in order: a resumed run must see exactly the same data."""
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.path}\t{s.label}\n".encode())
    return h.hexdigest()
