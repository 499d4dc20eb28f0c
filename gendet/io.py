"""Atomic file writes, checked reading of weights and JSON side files (and giving freed memory back): the
lowest layer of gendet; it imports nothing from the package.

Every checkpoint, training state, cache entry and report file is written through `atomic_write`:
to a temp file beside the target, named after the target and the writing process
(`.NAME.PID.tmp`), given the mode the umask allows (not mkstemp's 0600), then renamed over the
target, so a reader never sees half a file. A writer killed mid-write leaves its temp file; the
next write of the same target removes temp files whose process is gone.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc, not another libc that lacks it
    except (OSError, AttributeError):
        return None
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _MallInfo2
    return libc


def free_heap_bytes() -> int | None:
    """Bytes glibc's heap holds free for reuse (mallinfo2's fordblks); None off glibc or before 2.33."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    return int(libc.mallinfo2().fordblks)


def trim_heap(min_free_bytes: int = 0) -> None:
    """Hand freed heap pages back to the OS. glibc keeps them for reuse, so after a burst of large images a
    long-lived process (the server, a decoder) would otherwise stay at its peak size. With min_free_bytes,
    only when at least that much is free: trimming after every small image made the next one fault all its
    pages in again (a decoder spent 4.8 core-ms per image in the kernel instead of 1.0). No-op off glibc."""
    libc = _libc()
    if libc is None:
        return
    if min_free_bytes > 0:
        free = free_heap_bytes()
        if free is not None and free < min_free_bytes:
            return
    libc.malloc_trim(0)


def default_file_mode() -> int:
    """0666 minus the process umask: the mode a plain open() would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temps(path: Path) -> int:
    """Delete `.NAME.PID.tmp` files of `path` left by processes that no longer run; returns how many."""
    removed = 0
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], fsync: bool = False) -> Path:
    """Call `write(tmp)` to fill a temp file, then rename it over `path` (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


# -- checkpoints (detectors' and generators') ---------------------------------------------------

class CheckpointError(Exception):
    pass


def git_commit() -> str | None:
    """The source tree's commit, when gendet runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = [f"checkpoint {source} does not match the model:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            parts.append(f"  shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
        raise CheckpointError("\n".join(parts))


def read_weights_checked(model: torch.nn.Module, weights: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file and check it against `model` (CheckpointError lists every mismatch)."""
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found")
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"cannot read {weights}: {e}") from e
    check_state_dict(model, state, str(weights))
    return state


def read_json_checked(path: Path, what: str) -> dict[str, Any]:
    """A checkpoint's JSON side file; CheckpointError says `what` was expected when it is missing or broken."""
    if not path.is_file():
        raise CheckpointError(f"{path} not found: is {what}?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
