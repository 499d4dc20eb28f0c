"""Decoding in worker processes with a hard time budget (pebble's ProcessPool).

A file whose decode runs past the budget has its worker process stopped; a worker that dies
(the OOM killer, a crash in a codec) is replaced too; in both cases only that file fails, with
a reason, and the pool goes on. Used by `gendet detect` (one task per file, results in input
order) and by `gendet serve` (one task per upload, cancelled when its client goes away).

Workers start from a forkserver that has imported this module, so they start fast and never
inherit the parent's threads (the server's event loop and the model's thread pool).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pebble
import torch

from gendet.data.decode import TIMEOUT, WORKER_DIED, DecodeError
from gendet.io import trim_heap

# The soft alarm inside the worker (decode.time_budget) fires first and gives the file its usual
# error; the hard stop is for code that does not return to Python (a codec stuck in C).
HARD_TIMEOUT_GRACE_S = 5.0


def _init_worker() -> None:
    torch.set_num_threads(1)  # one decoder per process; the parent's model owns the other cores
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the pool


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class DecodePool:
    """`submit(fn, *args)` runs fn in a worker under the time budget; `outcome(future)` -> (value, error).

    fn must be a module-level function that returns a value or raises DecodeError.
    """

    def __init__(self, workers: int, timeout_s: float, start_method: str = "forkserver",
                 grace_s: float = HARD_TIMEOUT_GRACE_S) -> None:
        if workers < 1:
            raise ValueError(f"DecodePool needs workers >= 1, got {workers}")
        if start_method == "forkserver":
            multiprocessing.set_forkserver_preload(["gendet.data.decode_pool", "gendet.data.preprocess"])
        self.timeout_s, self.grace_s, self.workers = timeout_s, grace_s, workers
        self._context = multiprocessing.get_context(start_method)
        self._pool = self._new_pool()
        self.replaced = 0  # workers stopped or lost (timeouts + deaths)
        self.submitted = 0

    def _new_pool(self) -> pebble.ProcessPool:
        return pebble.ProcessPool(max_workers=self.workers, initializer=_init_worker, context=self._context)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        self.submitted += 1
        return self._pool.schedule(_guarded, args=(fn, *args), timeout=self.timeout_s + self.grace_s)

    def renew(self) -> None:
        """Start fresh worker processes for the next tasks; the old ones finish what they hold and exit. A
        long-lived server calls this when idle: a decoder that has handled large images keeps some of that
        memory (heap fragments, pages copied from the forkserver) until it exits."""
        old, self._pool = self._pool, self._new_pool()
        old.close()
        threading.Thread(target=old.join, name="gendet-decoder-retire", daemon=True).start()

    def outcome(self, future: Future) -> tuple[Any, DecodeError | None]:
        """The task's value, or the DecodeError that says why there is none (never raises for a bad file)."""
        try:
            value, error = future.result()
        except FutureTimeout:
            self.replaced += 1
            return None, DecodeError(f"decoding took longer than {self.timeout_s:g} s; the decoder process was "
                                     "stopped and replaced (limit timeout_s)", kind=TIMEOUT)
        except pebble.ProcessExpired as e:
            self.replaced += 1
            return None, DecodeError(f"the decoder process died while decoding this file ({_signal_name(e.exitcode)}"
                                     "; out of memory?); it was replaced and the scan went on", kind=WORKER_DIED)
        except CancelledError:
            return None, DecodeError("cancelled", kind=TIMEOUT)
        return value, error

    def close(self, wait: bool = True) -> None:
        if wait:
            self._pool.close()
        else:
            self._pool.stop()
        self._pool.join()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(wait=exc_type is None)


def _guarded(fn: Callable[..., Any], *args: Any) -> tuple[Any, DecodeError | None]:
    """Runs in the worker: a DecodeError travels back as a value (its reason and kind kept)."""
    try:
        return fn(*args), None
    except DecodeError as e:
        return None, DecodeError(e.reason, kind=e.kind)
    finally:
        trim_heap()  # a worker lives for many files: do not keep the largest one's pages
