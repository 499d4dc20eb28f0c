"""Shared plumbing for name -> "module:Class" registries (detectors, generators)."""

from __future__ import annotations

import hashlib
import importlib
import os
from typing import TypeVar

T = TypeVar("T")


def resolve_entry(table: dict[str, str], name: str, base: type[T], kind: str) -> type[T]:
    """Import the class registered as `name`; unknown names and wrong types raise, import errors propagate."""
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; registered: {', '.join(sorted(table))}")
    module_name, cls_name = table[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{table[name]} is not a {base.__name__} subclass")
    return cls


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
