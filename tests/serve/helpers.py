"""Shared by the serve tests: encoded test images, and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator

import uvicorn
from detect.helpers import noise_image
from fastapi import FastAPI
from PIL import Image


def image_bytes(size: int = 40, seed: int = 0, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    noise_image(size, seed).save(buf, format=fmt)
    return buf.getvalue()


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@contextlib.contextmanager
def running_server(app: FastAPI, timeout: float = 60.0) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on 127.0.0.1 (port chosen by the OS); yields the base URL."""
    from gendet.serve.protocol import GuardedHttpToolsProtocol

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           http=GuardedHttpToolsProtocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
