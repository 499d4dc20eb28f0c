"""Decoding in worker processes with a hard time budget; a worker that dies costs only its own file.

Each worker has its own pipe and runs one task at a time, so when it dies (the OOM killer, a crash in a
codec, a kill -9 at any moment) or runs past the budget (it is killed), exactly its task fails, with a
reason, a fresh worker takes its place and every other task goes on. Used by `gendet detect` (one task
per file, results in input order) and by `gendet serve` (one task per upload, stopped when its client
goes away).

Why not a library pool: concurrent.futures' ProcessPoolExecutor breaks as a whole when one worker
dies, torch's DataLoader ends the iteration, and pebble's pool (tried first) shares one result pipe
between workers under a lock: a worker killed from outside while holding it left the pool in an error
state ("Unexpected error within the Pool") and the scan ended. One pipe per worker is what makes the
failure local.

Workers start from a forkserver that has imported this module and the preprocessing, so they start
fast and never inherit the parent's threads (the server's event loop, the model's thread pool).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from gendet.data.decode import TIMEOUT, WORKER_DIED, DecodeError
from gendet.io import trim_heap

# The soft alarm inside the worker (decode.time_budget) fires first and gives the file its usual
# error; the hard stop is for code that does not return to Python (a codec stuck in C).
HARD_TIMEOUT_GRACE_S = 5.0
# A decoder gives its free heap back to the OS only above this (after a large image): below it the pages are
# reused by the next file instead of being faulted in again
TRIM_ABOVE_BYTES = 64 << 20


# Python before 3.13 never preloads __main__ into the forkserver (CPython gh-126631), so every decoder it forked
# ran the parent's main script again before its first task: 130-240 ms per decoder for a script that imports
# torch and gendet, and a script without `if __name__ == "__main__":` ran its own scan in each decoder, which
# failed and was replaced forever. Decoders run only module-level functions, never the script's: the parent
# names its script to the forkserver as it starts, the forkserver takes that path as its own __main__'s, and
# multiprocessing then leaves the script out of each child (spawn._fixup_main_from_path).
_PARENT_MAIN = "GENDET_FORKSERVER_PARENT_MAIN"


def _adopt_parent_main() -> None:
    """In the forkserver, as it preloads this module: its __main__ (python -c) takes the parent's script path."""
    owner, _, path = os.environ.pop(_PARENT_MAIN, "").partition(":")
    main = sys.modules.get("__main__")
    if path and owner == str(os.getppid()) and main is not None and getattr(main, "__file__", None) is None:
        main.__file__ = path


_PRELOAD = ["gendet.data.decode_pool", "gendet.data.preprocess"]


def _start_forkserver(preload: Sequence[str]) -> None:
    """Start the forkserver (once per process) with the decoders' modules preloaded and this script named;
    `preload` adds the modules of the first pool's tasks (a later pool's new ones load in each decoder)."""
    _PRELOAD.extend(m for m in preload if m not in _PRELOAD)
    multiprocessing.set_forkserver_preload(list(_PRELOAD))
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(getattr(main, "__spec__", None), "name", None):  # python -m: left to multiprocessing
        multiprocessing.forkserver.ensure_running()
        return
    os.environ[_PARENT_MAIN] = f"{os.getpid()}:{os.path.normpath(os.path.abspath(path))}"
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        os.environ.pop(_PARENT_MAIN, None)


_adopt_parent_main()


class WorkerLost(Exception):
    """The worker running a task died or was stopped; `reason` says which."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason, self.kind = reason, kind


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _guarded(fn: Callable[..., Any], args: tuple) -> tuple[Any, DecodeError | None]:
    """Runs in the worker: a DecodeError travels back as a value (its reason and kind kept)."""
    try:
        return fn(*args), None
    except DecodeError as e:
        return None, DecodeError(e.reason, kind=e.kind)
    finally:
        trim_heap(TRIM_ABOVE_BYTES)  # a worker lives for many files: do not keep the largest one's pages


def _worker_main(conn: Connection) -> None:
    torch.set_num_threads(1)  # one decoder per process; the parent's model owns the other cores
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the pool
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as e:  # noqa: BLE001 - e.g. a function of the parent's main script, which decoders never run
            conn.send((None, DecodeError(f"decoder cannot load the task: {type(e).__name__}: {e}")))
            continue
        if task is None:
            return
        fn, args = task
        try:
            result: tuple[Any, DecodeError | None] = _guarded(fn, args)
        except Exception as e:  # noqa: BLE001 - a bug in a task fails that task, not the worker
            result = (None, DecodeError(f"decoder error: {type(e).__name__}: {e}"))
        conn.send(result)


def _died(w: _Worker, detail: str = "") -> WorkerLost:
    """The error for the task of a worker that died; reaps it first, so the message can name the signal."""
    w.proc.join(timeout=1)
    return WorkerLost(f"the decoder process died while decoding this file ({_signal_name(w.proc.exitcode)}{detail}; "
                      "out of memory?); it was replaced and the rest went on", WORKER_DIED)


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.proc = context.Process(target=_worker_main, args=(child,), daemon=True, name="gendet-decoder")
        self.proc.start()
        child.close()
        self.future: Future | None = None
        self.deadline = 0.0
        self.retiring = False  # exits once idle (renew)
        self.cancelled = False  # its task was cancelled: stop it now

    def stop(self, kill: bool) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class DecodePool:
    """`submit(fn, *args)` runs fn in a worker under the time budget; `outcome(future)` -> (value, error).

    fn must be a function of an importable module (not of the main script: decoders never run it) that
    returns a value or raises DecodeError. `preload`: modules the tasks need, imported once in the forkserver
    rather than by each new decoder (gendet.detect's scan task: ~190 ms per decoder otherwise).
    """

    def __init__(self, workers: int, timeout_s: float, start_method: str = "forkserver",
                 grace_s: float = HARD_TIMEOUT_GRACE_S, preload: Sequence[str] = ()) -> None:
        if workers < 1:
            raise ValueError(f"DecodePool needs workers >= 1, got {workers}")
        if start_method == "forkserver":
            _start_forkserver(preload)
        self.timeout_s, self.grace_s, self.workers = timeout_s, grace_s, workers
        self._context = multiprocessing.get_context(start_method)
        self._lock = threading.Lock()
        self._queue: deque[tuple[Future, Callable[..., Any], tuple]] = deque()
        self._pool: list[_Worker] = []
        self._closing = False
        self._wake_r, self._wake_w = socket.socketpair()
        self.replaced = 0  # workers stopped (time budget, cancellation) or lost (died) and replaced
        self.submitted = 0
        self._thread = threading.Thread(target=self._dispatch, name="gendet-decode-pool", daemon=True)
        self._thread.start()

    # -- public -------------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closing:
                raise RuntimeError("DecodePool is closed")
            self._queue.append((future, fn, args))
            self.submitted += 1
        self._wake()
        return future

    def cancel(self, future: Future) -> None:
        """Cancel a queued task, or stop the worker running it (it is replaced)."""
        if future.cancel():
            return
        with self._lock:
            for w in self._pool:
                if w.future is future:
                    w.cancelled = True  # the dispatcher stops it as if its time were up
        self._wake()

    def outcome(self, future: Future) -> tuple[Any, DecodeError | None]:
        """The task's value, or the DecodeError that says why there is none (never raises for a bad file)."""
        try:
            return future.result()
        except WorkerLost as e:
            return None, DecodeError(e.reason, kind=e.kind)
        except CancelledError:
            return None, DecodeError("cancelled", kind=TIMEOUT)

    def renew(self) -> None:
        """Fresh worker processes for the next tasks; the current ones finish what they hold and exit. A
        long-lived server calls this when idle: a decoder that has handled large images keeps some of that
        memory (heap fragments, pages copied from the forkserver) until it exits."""
        with self._lock:
            for w in self._pool:
                w.retiring = True
        self._wake()

    def close(self, wait: bool = True) -> None:
        """Stop the pool: after the queued tasks (wait) or at once (queued tasks are cancelled)."""
        with self._lock:
            self._closing = True
            if not wait:  # e.g. Ctrl-C: queued tasks are cancelled, running ones stopped
                while self._queue:
                    self._queue.popleft()[0].cancel()
                for w in self._pool:
                    w.cancelled = w.future is not None
        self._wake()
        self._thread.join()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(wait=exc_type is None)

    # -- the dispatcher thread ------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                self._assign()
                busy = [w for w in self._pool if w.future is not None]
                if self._closing and not self._queue and not busy:
                    break
            now = time.monotonic()
            timeout = 0.0 if any(w.cancelled for w in busy) else max(
                0.0, min((w.deadline for w in busy), default=now + 1.0) - now)
            ready = wait([self._wake_r, *(w.conn for w in busy), *(w.proc.sentinel for w in self._pool)],
                         timeout=timeout)
            if self._wake_r in ready:
                self._wake_r.recv(4096)
            with self._lock:
                self._collect(set(ready))
        with self._lock:
            for w in self._pool:
                w.stop(kill=False)
            self._pool.clear()

    def _assign(self) -> None:
        """Hand queued tasks to idle workers, starting workers up to the pool size; retire idle retirees."""
        for w in [w for w in self._pool if w.retiring and w.future is None]:
            self._pool.remove(w)
            w.stop(kill=False)
        while self._queue:
            idle = next((w for w in self._pool if w.future is None and not w.retiring), None)
            if idle is None:
                if sum(not w.retiring for w in self._pool) >= self.workers:
                    return
                idle = _Worker(self._context)
                self._pool.append(idle)
            future, fn, args = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            idle.future, idle.deadline = future, time.monotonic() + self.timeout_s + self.grace_s
            try:
                idle.conn.send((fn, args))
            except OSError:  # it died while idle: this file was never decoded, but a retry could loop
                self._lose(idle, WorkerLost("the decoder process died before it could decode this file; it was "
                                            "replaced", WORKER_DIED))

    def _collect(self, ready: set) -> None:
        now = time.monotonic()
        for w in list(self._pool):
            if w.future is not None and w.conn in ready:
                try:
                    result = w.conn.recv()
                except Exception as e:  # noqa: BLE001 - EOF, a half-written message: its result is lost
                    self._lose(w, _died(w, f", {type(e).__name__}"))
                    continue
                future, w.future = w.future, None
                if not future.done():
                    future.set_result(result)
            elif w.proc.sentinel in ready or not w.proc.is_alive():
                self._lose(w, _died(w))
            elif w.future is not None and (w.cancelled or now >= w.deadline):
                why = ("cancelled" if w.cancelled else
                       f"decoding took longer than {self.timeout_s:g} s; the decoder process was stopped and "
                       "replaced (limit timeout_s)")
                self._lose(w, WorkerLost(why, TIMEOUT))

    def _lose(self, w: _Worker, error: WorkerLost) -> None:
        """Kill and remove a worker and fail its task with `error` (a replacement starts when a task needs one)."""
        if w in self._pool:
            self._pool.remove(w)
        self.replaced += 1
        future, w.future = w.future, None
        if future is not None and not future.done():
            future.set_exception(error)
        w.stop(kill=True)
