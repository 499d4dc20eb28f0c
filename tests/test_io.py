"""gendet.io: atomic writes keep the umask's mode and clean up after killed writers; heap trimming."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gendet import io as gio
from gendet.io import atomic_write, atomic_write_text, free_heap_bytes, remove_stale_temps, temp_path, trim_heap


def test_atomic_write_gives_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert p.read_text() == "{}" and (p.stat().st_mode & 0o777) == 0o644


def test_a_failed_write_leaves_neither_temp_nor_half_file(tmp_path: Path) -> None:
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")

    def boom(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_temp_files_of_dead_writers_are_removed_on_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".{target.name}.{int(dead.stdout)}.tmp"  # that process has exited
    stale.write_bytes(b"left by kill -9")
    mine = temp_path(target).with_name(f".{target.name}.{os.getppid()}.tmp")  # a live process's: kept
    mine.write_bytes(b"in progress")
    other = tmp_path / ".other.json.1.tmp"
    other.write_bytes(b"another target's")
    atomic_write_text(target, "new")
    assert not stale.exists() and mine.exists() and other.exists() and target.read_text() == "new"
    assert remove_stale_temps(target) == 0


class _FakeLibc:
    def __init__(self, free: int) -> None:
        self.free, self.trims = free, 0

    def mallinfo2(self) -> gio._MallInfo2:
        return gio._MallInfo2(fordblks=self.free)

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


def test_trim_heap_trims_only_above_the_free_bytes_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc(free=10 << 20)
    monkeypatch.setattr(gio, "_libc", lambda: libc)
    trim_heap(64 << 20)  # 10 MB free: kept for the next file
    assert libc.trims == 0
    trim_heap()
    assert libc.trims == 1
    libc.free = 80 << 20  # after a large image
    trim_heap(64 << 20)
    assert libc.trims == 2 and free_heap_bytes() == 80 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc")
def test_free_heap_bytes_reads_glibc() -> None:
    blocks = [bytearray(64 << 10) for _ in range(64)]
    del blocks
    free = free_heap_bytes()
    assert free is not None and free > 0
    trim_heap(1 << 40)  # never above a terabyte: a no-op
    trim_heap()
