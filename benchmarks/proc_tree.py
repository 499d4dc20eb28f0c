"""The process tree from /proc, for benchmarks that measure or kill a command's child processes."""

from __future__ import annotations

from pathlib import Path


def children_by_parent() -> dict[int, list[int]]:
    """{parent pid: [child pids]} of every process now running."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    return children


def descendants(pid: int) -> list[int]:
    """`pid` and all processes below it."""
    children, out, todo = children_by_parent(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out
