"""What to scan: command-line inputs -> a lazy stream of file paths.

Inputs are files, folders (walked with os.scandir, recursive by default), globs,
``@LIST`` (a text file of paths, one per line) and ``-`` (paths on stdin). The
stream is a generator: nothing ever holds the list of all paths, so a folder of
a million files costs the memory of one directory entry at a time (plus the
names of sub-folders still to visit).

Paths are ``str`` made absolute with ``os.path.abspath``. File names that are
not valid UTF-8 come out of the OS with ``surrogateescape`` (``os.fsdecode``),
so ``os.fsencode(path)`` gives back the exact bytes of the name.

Rules that decide "one record per input":
- a named file, a line of a path list, a glob match that is a file: one record
  each, whatever the extension (the user named it);
- a folder walk keeps only names with an image extension (``IMAGE_EXTENSIONS``)
  and counts the others as skipped; a *directory* named like an image
  (``x.jpg``) gets its own error record and is still walked;
- a glob matching nothing and a folder that cannot be listed get one error record;
- a path met twice (named twice, or in a list and a folder) is scanned once; later copies are
  counted in `InputStats.duplicates`;
- ``@NAME`` is a path list unless a file called ``@NAME`` exists (then it is that file);
  ``--paths-from`` is never ambiguous.
Records follow discovery order (``os.scandir`` order inside a folder, which is the
file system's, not alphabetical).
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

# Extensions a folder walk treats as images. HEIC/HEIF/AVIF are listed even where
# Pillow cannot read them, so such files get an error record instead of vanishing.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".dib",
        ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".jpx",
        ".ico", ".avif", ".heic", ".heif",
    }
)


class Input(NamedTuple):
    """One path to score; `error` is set when the input failed before decoding (e.g. empty glob)."""

    path: str
    error: str | None = None


@dataclass
class InputStats:
    """Counters filled while the stream is consumed."""

    skipped_not_image: int = 0
    examples_not_image: list[str] = field(default_factory=list)
    duplicates: int = 0


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def read_path_list(fh: BinaryIO) -> Iterator[str]:
    """Non-empty lines of a binary stream, decoded like the OS decodes file names."""
    for raw in fh:
        line = raw.rstrip(b"\r\n")
        if line:
            yield os.fsdecode(line)


def _list_file(spec: str) -> Iterator[Input]:
    with open(spec, "rb") as fh:
        for p in read_path_list(fh):
            yield Input(os.path.abspath(p))


def walk_folder(root: str, recursive: bool = True, stats: InputStats | None = None) -> Iterator[Input]:
    """Image files under `root` in scandir order; symlinked folders are followed once (loop-safe)."""
    visited: set[tuple[int, int]] = set()
    pending = [os.path.abspath(root)]
    while pending:
        folder = pending.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            yield Input(folder, f"cannot read folder: {e.strerror or e}")
            continue
        if (st.st_dev, st.st_ino) in visited:
            continue
        visited.add((st.st_dev, st.st_ino))
        subdirs: list[str] = []
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    is_dir = _entry_is_dir(entry)
                    if is_dir and recursive:
                        subdirs.append(entry.path)
                    if is_image_name(entry.name):
                        # a folder named x.jpg is reported (decode says "is a directory"), and still walked
                        yield Input(entry.path)
                    elif not is_dir and stats is not None:
                        stats.skipped_not_image += 1
                        if len(stats.examples_not_image) < 3:
                            stats.examples_not_image.append(entry.path)
        except OSError as e:
            yield Input(folder, f"cannot list folder: {e.strerror or e}")
        # reversed so sub-folders are visited in the order they were found
        pending.extend(reversed(subdirs))


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_list_spec(spec: str) -> bool:
    return spec.startswith("@") and len(spec) > 1 and not os.path.lexists(spec)


def iter_inputs(
    specs: Iterable[str],
    recursive: bool = True,
    stdin: BinaryIO | None = None,
    stats: InputStats | None = None,
) -> Iterator[Input]:
    """Expand command-line inputs lazily, in the order given, each path once (see the module docstring)."""
    # 16-byte digests, not the paths: a million paths cost ~80 MB here instead of ~200 MB
    seen: set[bytes] = set()
    for item in _expand(specs, recursive, stdin, stats):
        key = hashlib.blake2b(os.fsencode(item.path), digest_size=16).digest()
        if key in seen:
            if stats is not None:
                stats.duplicates += 1
            continue
        seen.add(key)
        yield item


def _expand(specs: Iterable[str], recursive: bool, stdin: BinaryIO | None,
            stats: InputStats | None) -> Iterator[Input]:
    for spec in specs:
        if spec == "-":
            yield from (Input(os.path.abspath(p)) for p in read_path_list(stdin or sys.stdin.buffer))
        elif _is_list_spec(spec):
            yield from _list_file(spec[1:])
        elif os.path.isdir(spec):
            yield from walk_folder(spec, recursive, stats)
        elif os.path.lexists(spec) or not glob.has_magic(spec):
            yield Input(os.path.abspath(spec))  # a missing file gets its "does not exist" record later
        else:
            found = False
            for match in glob.iglob(spec, recursive=True):
                found = True
                if os.path.isdir(match):
                    yield from walk_folder(match, recursive, stats)
                else:
                    yield Input(os.path.abspath(match))
            if not found:
                yield Input(spec, "no file matches this pattern")


def check_specs(specs: list[str]) -> None:
    """Raise ValueError for inputs that are usage errors (bad list files, '-' twice), before any work."""
    if not specs:
        raise ValueError("no inputs: give files, folders, globs, @LIST or - (paths on stdin)")
    if specs.count("-") > 1:
        raise ValueError("'-' (paths on stdin) can be given only once")
    for spec in specs:
        if _is_list_spec(spec) and not os.path.isfile(spec[1:]):
            raise ValueError(f"path list {spec[1:]!r} (from {spec!r}) is not a readable file")


def is_single_file(specs: list[str]) -> bool:
    """True when the inputs name exactly one file (the "verdict for my image" case)."""
    if len(specs) != 1:
        return False
    s = specs[0]
    if s == "-" or _is_list_spec(s) or os.path.isdir(s):
        return False
    return os.path.lexists(s) or not glob.has_magic(s)
