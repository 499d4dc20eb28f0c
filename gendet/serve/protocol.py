"""Connection guards under uvicorn's HTTP protocol: header and body read timeouts, a connection limit.

uvicorn has a keep-alive timeout but none for a client that opens a connection and sends its
headers or body slowly; a thousand such clients held every file descriptor and locked everyone
out. This subclass of uvicorn's httptools protocol adds:
- header timeout: from connection (or the end of the previous response) to the end of the headers;
- body timeout: from the end of the headers to the end of the body;
- a connection limit: when it is reached, the connection that has waited longest for its headers
  (or sits idle between requests) is closed to make room; if none is waiting, the new one is
  answered 503 and closed. Connections whose request is being processed are never dropped.
A timed-out connection gets "408 Request Timeout" when no response has started, and is closed.
Settings come from `configure()` (the CLI, or each uvicorn worker via the app factory).
"""

from __future__ import annotations

import asyncio
import logging
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gendet.serve.limits import ConnectionGuards

log = logging.getLogger("gendet.serve")


_guards = ConnectionGuards()


def configure(guards: ConnectionGuards) -> None:
    global _guards
    _guards = guards


def current() -> ConnectionGuards:
    return _guards


_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     b"content-length: 24\r\nconnection: close\r\n\r\nrequest read timed out.\n")
_FULL_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"retry-after: 1\r\ncontent-length: 28\r\nconnection: close\r\n\r\ntoo many open connections.\n\n")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the guards above (pass as uvicorn's `http=`)."""

    PATH = "gendet.serve.protocol:GuardedHttpToolsProtocol"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._guard_timer: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None  # set while waiting for headers (or idle between requests)

    # -- timers ------------------------------------------------------------------------------------
    def _arm(self, seconds: float, waiting_for_headers: bool) -> None:
        self._disarm()
        self._waiting_since = time.monotonic() if waiting_for_headers else None
        self._guard_timer = self.loop.call_later(seconds, self._on_timeout)

    def _disarm(self) -> None:
        if self._guard_timer is not None:
            self._guard_timer.cancel()
            self._guard_timer = None

    def _on_timeout(self) -> None:
        self._guard_timer = None
        if self.transport.is_closing():
            return
        log.info("closing a connection from %s: request not received in time", self.client)
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()

    # -- connection life -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guards = current()
        if len(self.connections) > guards.max_connections and not self._make_room():
            log.warning("connection limit (%d) reached: refusing %s", guards.max_connections, self.client)
            self.connections.discard(self)
            transport.write(_FULL_RESPONSE)
            transport.close()
            return
        self._arm(guards.header_timeout_s, waiting_for_headers=True)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for its headers; False if none is waiting."""
        waiting = [c for c in self.connections if c is not self and getattr(c, "_waiting_since", None) is not None]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._waiting_since)
        oldest._waiting_since = None
        oldest._disarm()
        oldest.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._waiting_since = None
        super().connection_lost(exc)

    # -- request phases ----------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(current().body_timeout_s, waiting_for_headers=False)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()  # processing has no read timeout: the app bounds its own work

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(current().header_timeout_s, waiting_for_headers=True)
