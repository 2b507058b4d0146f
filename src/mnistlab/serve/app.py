"""The application factory: one loaded model, the routes, the guard and the error handlers.

    >>> from fastapi.testclient import TestClient
    >>> from mnistlab.serve.app import create_app
    >>> from mnistlab.serve.settings import ServeSettings
    >>> client = TestClient(create_app(ServeSettings("runs/simple")))
    >>> client.get("/healthz").json()
    {'status': 'ok', 'model': 'simple'}
    >>> answer = client.post("/v1/predict", json={"pixels": [0] * 10})
    >>> answer.status_code, answer.json()
    (422, {'error': 'pixels: shape [10] is not one image (784 or 28×28) or a batch of them'})

Every client mistake answers ``{"error": "<field>: <what is wrong>"}``: 4xx on ``/v1`` (422 for a
bad value, 413 for too much, 415 for a refused type) and 400 on ``/v2``, as the Open Inference
Protocol asks. Uvicorn workers call :func:`app_from_env` (``factory=True``). While it runs, the app
watches the files its model came from; a worker without a model answers 503 (``readiness``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mnistlab.version import __version__
from mnistlab.serve import readiness, v1, v2
from mnistlab.serve.compute import DecodeGate, MicroBatcher
from mnistlab.serve.guard import BodyTooLarge, Guard
from mnistlab.serve.metrics import Metrics
from mnistlab.serve.model import ModelHolder
from mnistlab.serve.parsing import ApiError
from mnistlab.serve.settings import ServeSettings

STATIC = Path(__file__).parent / "static"


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    if request.url.path.startswith("/v2/") and 400 <= status < 500 and status not in (401, 404, 405, 413):
        status = 400  # the protocol's one error status
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def body_limit(settings: ServeSettings):
    """path → the largest body it accepts: ``/v2/.../infer`` takes 256-image batches as JSON text."""
    def limit(path: str) -> int:
        return max(settings.max_infer_body, settings.max_body) if path.startswith("/v2/") and path.endswith("/infer") else settings.max_body
    return limit


def install(app: FastAPI, holder: ModelHolder) -> None:
    """Serve ``holder`` from now on (at creation, or once a worker that could not load the run does)."""
    app.state.batcher = MicroBatcher(holder.probabilities)
    app.state.holder, app.state.not_ready = holder, None


def create_app(settings: ServeSettings, holder: ModelHolder | None = None, *, not_ready: str | None = None) -> FastAPI:
    """The ASGI app for ``settings``; ``holder`` (a loaded model) is loaded from the run when None,
    unless ``not_ready`` says why it could not be: the app then answers 503 and keeps trying (readiness)."""
    if holder is None and not_ready is None:
        holder = ModelHolder.load(settings.run_dir, settings.backend, settings.threads)
    what = (f"({holder.dataset}: {', '.join(holder.class_names)}) for the run {holder.name!r} ({holder.backend} backend)"
            if holder else f"for the run {Path(settings.run_dir).name!r} ({settings.backend} backend)")
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN; /openapi.json stays.
    app = FastAPI(title="mnistlab", version=__version__, docs_url=None, redoc_url=None,
                  description=f"Classifier service {what}.", lifespan=readiness.keeper(settings, lambda h: install(app, h)))
    app.state.holder, app.state.not_ready, app.state.settings, app.state.metrics = None, not_ready, settings, Metrics()
    app.state.decodes = DecodeGate(settings.max_decodes, settings.decode_wait_s)
    if holder is not None:
        install(app, holder)
    app.include_router(v2.router)  # matched in order: the Open Inference Protocol's infer route first
    app.include_router(v1.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge):
        return JSONResponse({"error": str(exc)}, status_code=413, headers={"connection": "close"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        return _error(request, 422, f"{where}: {err.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail))

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"])
    app.add_middleware(readiness.NotReady, state=app.state)
    app.add_middleware(Guard, token=settings.token, body_limit=body_limit(settings), metrics=app.state.metrics)
    return app


def app_from_env() -> FastAPI:
    """For uvicorn's workers: the settings come in ``MNISTLAB_SERVE_SETTINGS``; the model loads once per
    worker. A worker that cannot load it stays up, not ready, and retries (a crash would be restarted at once)."""
    settings = ServeSettings.from_env()
    try:
        return create_app(settings)
    except Exception as exc:  # noqa: BLE001  (whatever stops the load: the worker says it and retries)
        return create_app(settings, not_ready=readiness.load_failed(exc, readiness.RETRY_FIRST_S))
