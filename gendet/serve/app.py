"""The FastAPI app behind `gendet serve`: POST /v1/detect, GET /v1/model, GET /health, the page at /.

`create_app(...)` builds it; the model is loaded once in the lifespan (or passed in already
loaded), uploads are decoded in decoder processes, scored through the batching queue, and
explained per request in the model thread. Every client mistake becomes a 4xx with a reason
(`ClientError`), a full pipeline a 503 with Retry-After (`Admission`); a request whose client has
gone is cancelled (its decodes, queued images and explanations are dropped). Only a genuine server
bug reaches the catch-all handler, which logs it and answers 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import swagger_ui_bundle
import torch
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from gendet.detect.model import NON_FINITE_SCORE, ScanModel, load_scan_model, resolve_device
from gendet.io import trim_heap
from gendet.provenance import ProvenanceOptions
from gendet.serve.admission import Admission
from gendet.serve.batching import BatchQueue, QueueFull
from gendet.serve.card import model_card
from gendet.serve.inference import ServedModel, Upload
from gendet.serve.limits import ClientError, Limits
from gendet.serve.schemas import DETECT_REQUEST_BODY, ERROR_RESPONSES, DetectResponse, Health
from gendet.serve.uploads import read_uploads
from gendet.version import VERSION

log = logging.getLogger("gendet.serve")
API_KEY_ENV = "GENDET_API_KEY"
SETTINGS_ENV = "GENDET_SERVE_SETTINGS"  # JSON create_app kwargs, for uvicorn worker processes
# A busy answer closes its connection: a client that waits Retry-After and then reused it would race the
# keep-alive timeout (seen as read errors under load); it reconnects instead.
BUSY_HEADERS = {"Connection": "close"}


def static_dir() -> Path:
    return Path(str(resources.files("gendet"))) / "serve" / "static"


@dataclass
class ServerState:
    served: ServedModel
    queue: BatchQueue
    limits: Limits
    api_key: str | None
    card: dict[str, Any]
    explain_slots: asyncio.Semaphore
    started: float
    admission: Admission
    cancelled: int = 0  # requests whose client left before the answer
    trim_timer: asyncio.TimerHandle | None = None
    decodes_at_renewal: int = 0

    @property
    def model(self) -> ScanModel:
        return self.served.model


def _state(request: Request) -> ServerState:
    return request.app.state.gendet


async def _require_key(request: Request) -> None:  # async: a sync dependency costs a thread hop per request
    key = _state(request).api_key
    if not key:
        return
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    if given is None or not secrets.compare_digest(given.encode(), key.encode()):
        raise ClientError(401, "missing or wrong API key: send it as the X-API-Key header "
                               "(or Authorization: Bearer KEY)")


async def _score(st: ServerState, up: Upload, explain: bool, skip_note: str | None = None) -> dict[str, Any]:
    """One image's result dict; a bad image gives its error and 4xx status instead of raising.
    `skip_note`: why this image gets no explanation although one was asked for."""
    m = st.model
    out: dict[str, Any] = {"name": up.name, "score": None, "label": None, "threshold": m.threshold,
                           "model": m.name, "model_version": m.version, "error": None, "status": 200,
                           "verdict": None, "reason": None, "conflict": None, "provenance": None}
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    try:
        image, tensor, findings = await st.served.prepare(up, st.limits, keep_image=explain)
        up.data = b""  # decoded: the upload's bytes are no longer needed while it waits for the model
        score = await st.queue.submit(tensor)
    except ClientError as e:
        return {**out, "error": e.reason, "status": e.status}
    except QueueFull as e:
        return {**out, "error": str(e), "status": 503}
    st.admission.timed_image(time.perf_counter() - start)
    if not math.isfinite(score):
        return {**out, "error": NON_FINITE_SCORE, "status": 500}
    record = m.record(up.name, score, None, findings)  # the verdict rule of `gendet detect`
    out.update(score=score, label=record.label, verdict=record.verdict, reason=record.reason,
               conflict=record.conflict, provenance=findings)
    if skip_note:
        out["explanation_error"] = skip_note
    if explain and image is not None:
        async with st.explain_slots:  # explanations are ~20 forwards each: a few at a time, in the model thread
            t = time.perf_counter()
            try:
                out["explanation"] = await loop.run_in_executor(st.served.model_pool, st.served.explain, image,
                                                                score)
            except Exception as e:  # noqa: BLE001 - the verdict stands even if its explanation fails
                log.exception("explanation failed for %s", up.name)
                out["explanation_error"] = f"{type(e).__name__}: {e}"
            st.admission.timed_explain(time.perf_counter() - t)
    return out


def _trim_when_idle(st: ServerState) -> None:
    """One second after the last request in flight ends, give freed memory back to the OS (trim_heap) and
    start fresh decoder processes if any decoding happened since the last time."""
    if st.trim_timer is not None:
        st.trim_timer.cancel()
    loop = asyncio.get_running_loop()

    def trim() -> None:
        st.trim_timer = None
        if st.admission.requests == 0:
            loop.run_in_executor(None, trim_heap)
            pool = st.served.decode_pool
            if pool.submitted > st.decodes_at_renewal:  # fresh decoders after a burst (see DecodePool.renew)
                st.decodes_at_renewal = pool.submitted
                pool.renew()

    st.trim_timer = loop.call_later(1.0, trim)


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _detect(st: ServerState, request: Request, explain: bool) -> JSONResponse | None:
    """The results, or None when the client left first (its work is cancelled)."""
    uploads = await read_uploads(request, st.limits)
    # each explanation holds its decoded image until its turn: at most max_explain_queue per request
    n_explain = min(len(uploads), st.limits.max_explain_queue) if explain else 0
    note = (f"not explained: ?explain=true explains the first {n_explain} images of a request "
            "(--max-explain-queue)")
    with st.admission.work(len(uploads), n_explain):
        work = asyncio.ensure_future(asyncio.gather(*(
            _score(st, up, i < n_explain, None if i < n_explain or not explain else note)
            for i, up in enumerate(uploads))))
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not work.done():
            work.cancel()
            st.cancelled += 1
            log.info("client left: cancelled a request of %d image(s)", len(uploads))
            return None
        results = work.result()
    body: dict[str, Any] = {"results": results}
    status = 200
    if all(r["error"] is not None for r in results):
        status, body["detail"] = results[0]["status"], results[0]["error"]
    headers = {**BUSY_HEADERS, "Retry-After": str(max(1, math.ceil(st.admission.image_s)))} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    checkpoint: str | os.PathLike | None = None,
    *,
    model: ScanModel | None = None,
    device: str = "cpu",
    threshold: str | float | None = None,
    limits: Limits | dict | None = None,
    api_key: str | None = None,
    batch_wait_ms: float = 5.0,
    max_batch: int = 32,
    decode_workers: int | None = None,
    max_explain: int = 1,
    provenance: str = "on",
    watermark: bool = False,
    c2pa_trust: str | None = None,
    engine: str = "torch",
) -> FastAPI:
    """The gendet HTTP app. `model` (already loaded) wins over `checkpoint` (None = the shipped default).

    `api_key`: required on /v1/* when set (X-API-Key or Bearer). `max_batch=1` disables batching.
    `decode_workers`: decoder processes (default: CPU cores, at least 2).
    `provenance`: "on" (findings and the verdict rule of `gendet detect` in every result) or "off";
    `watermark`: also decode invisible watermarks; `c2pa_trust`: PEM trust anchors for C2PA signers.
    `engine`: "torch", or "onnx" (`checkpoint` an exported .onnx file or a checkpoint exported at start-up;
    explanations then answer with an explanation_error).
    """
    if provenance not in ("on", "off"):
        raise ValueError(f"provenance must be 'on' or 'off', got {provenance!r}")
    options = ProvenanceOptions(watermark, c2pa_trust) if provenance == "on" else None
    limits = Limits(**limits) if isinstance(limits, dict) else limits or Limits()
    decode_workers = decode_workers or max(2, os.cpu_count() or 1)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dev = resolve_device(device)
        if model is not None:
            scan_model = model
        elif engine == "onnx":
            from gendet.detect.onnx_model import load_onnx_model

            scan_model = load_onnx_model(checkpoint, dev, threshold)
        else:
            scan_model = load_scan_model(checkpoint, dev, threshold)
        served = ServedModel(scan_model, dev, decode_workers=decode_workers,
                             decode_timeout_s=limits.decode.timeout_s, provenance=options)
        await asyncio.get_running_loop().run_in_executor(served.model_pool, served.warm_up)
        queue = BatchQueue(served.run_batch, served.model_pool, max_batch=max_batch, wait_ms=batch_wait_ms,
                           max_queue=limits.max_queue)
        queue.start()
        app.state.gendet = ServerState(served, queue, limits, api_key or None, model_card(scan_model),
                                       asyncio.Semaphore(max(1, max_explain)), time.monotonic(), Admission(limits))
        log.info("gendet serve: model %s on %s, threshold %.4g", scan_model.name, dev, scan_model.threshold)
        try:
            yield
        finally:
            await queue.stop()
            served.close()

    # docs_url=None: FastAPI's default /docs page pulls Swagger UI from a CDN; ours serves the
    # swagger-ui-bundle package's copy, so the docs work offline too.
    app = FastAPI(title="gendet", version=VERSION, lifespan=lifespan, docs_url=None,
                  description="Is this image generated? Scores are P(generated); label 'fake' iff score >= threshold.")
    add_handlers(app)
    auth = [Depends(_require_key)]

    @app.get("/health", response_model=Health, tags=["service"])
    async def health(request: Request) -> dict[str, Any]:
        """Liveness, plus the batching counters (mean batch size under load)."""
        st = _state(request)
        return {"status": "ok", "model": st.model.name, "device": str(st.served.device), "queue": st.queue.depth,
                "uptime_s": round(time.monotonic() - st.started, 1), "batching": st.queue.stats.to_dict(),
                "pipeline": {**st.admission.to_dict(), "cancelled": st.cancelled,
                             "decoders_replaced": st.served.decode_pool.replaced}}

    @app.get("/v1/model", dependencies=auth, tags=["detect"], responses={401: ERROR_RESPONSES[401]})
    async def model_info(request: Request) -> dict[str, Any]:
        """The served model's card: name, version (weights digest), training data, metrics, threshold, limits."""
        st = _state(request)
        return {**st.card, "server_limits": st.limits.to_dict(), "max_batch": st.queue.max_batch}

    @app.post("/v1/detect", dependencies=auth, tags=["detect"], response_model=DetectResponse,
              responses=ERROR_RESPONSES, openapi_extra=DETECT_REQUEST_BODY)
    async def detect(request: Request, explain: bool = False) -> JSONResponse:
        """Score one or more images. The HTTP status is 200 when at least one image was scored; each result
        carries its own error and status. When none was, the status is the first image's (4xx) and `detail`
        its reason. `?explain=true` adds a heat map (base64 PNG) and the evidence text per image."""
        st = _state(request)
        try:
            with st.admission.request():
                response = await _detect(st, request, explain)
        finally:
            _trim_when_idle(st)
        # 499 (nginx's "client closed request"): nobody reads it, but the access log says what happened
        return response if response is not None else JSONResponse({"detail": "client closed the request"}, 499)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(static_dir() / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="gendet API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")
    return app


def add_handlers(app: FastAPI) -> None:
    """ClientError -> its 4xx; anything unexpected -> logged, 500 with no internals leaked."""

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.retry_after is not None:
            headers.update(BUSY_HEADERS, **{"Retry-After": str(exc.retry_after)})
        return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=headers or None)

    @app.exception_handler(Exception)
    async def server_bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error (logged on the server)"}, status_code=500)


def app_from_env() -> FastAPI:
    """uvicorn factory for `gendet serve --workers N`: kwargs from $GENDET_SERVE_SETTINGS, key from $GENDET_API_KEY."""
    from gendet.serve import protocol

    settings = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
    torch.set_num_threads(int(settings.pop("torch_threads", torch.get_num_threads())))
    protocol.configure(protocol.ConnectionGuards(**settings.pop("guards", {})))
    return create_app(**settings, api_key=os.environ.get(API_KEY_ENV) or None)
