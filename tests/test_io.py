"""gendet.io: atomic writes keep the umask's mode and clean up after killed writers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gendet.io import atomic_write, atomic_write_text, remove_stale_temps, temp_path


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
