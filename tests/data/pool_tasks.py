"""Module-level tasks for DecodePool tests (worker processes import them by name)."""

from __future__ import annotations

import hashlib
import os
import signal


def echo(value: int) -> int:
    return value


def die(value: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return value


def busy_in_c(value: int) -> int:
    # stays inside one C call for minutes: only the hard stop (kill the worker) can end it
    hashlib.pbkdf2_hmac("sha256", b"x", b"y", 10**9)
    return value


def die_on_marker(path: str, *args: object) -> object:
    """prepare_pixels, except a file named *die* kills its worker (as the OOM killer would)."""
    from gendet.detect.pipeline import prepare_pixels

    if "die" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGKILL)
    return prepare_pixels(path, *args)


def pid(_: int) -> int:
    return os.getpid()


def nap(value: int) -> int:
    import time

    time.sleep(1.0)
    return value
