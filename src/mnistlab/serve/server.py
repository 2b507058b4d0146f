"""Start the service on uvicorn: check the bind address and the port first, then load the model, then listen.

    >>> from mnistlab.serve.server import serve
    >>> from mnistlab.serve.settings import ServeSettings
    >>> serve(ServeSettings("runs/none-here"))          # a mistake stops it before it listens
    Traceback (most recent call last):
    ...
    mnistlab.errors.UserError: runs/none-here: no such run directory; train one with 'mnistlab train'

With a trained run it listens until interrupted (Ctrl-C), as ``mnistlab serve runs/simple`` does::

    serve(ServeSettings("runs/simple", port=8000))
"""

from __future__ import annotations

import os
import sys

from mnistlab.errors import UserError
from mnistlab.serve.settings import SETTINGS_ENV, ServeSettings, check_bind, check_port


def require_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UserError(f"{exc.name} is not installed; run: pip install 'mnistlab[serve]'") from None


def serve(settings: ServeSettings) -> None:
    """Run until interrupted. One worker loads the model here (errors before listening); several
    workers each load it in their own process (uvicorn's ``--workers``)."""
    check_bind(settings)  # before anything slow: a refused address must not wait for a model
    check_port(settings)
    require_serve_extra()
    import uvicorn

    from mnistlab.serve.app import create_app
    from mnistlab.serve.connections import timed_protocol

    common = dict(host=settings.host, port=settings.port, log_level="warning", access_log=False,
                  server_header=False, ws="none", http=timed_protocol(settings.header_timeout_s, settings.body_timeout_s),
                  timeout_keep_alive=settings.idle_timeout_s, timeout_graceful_shutdown=settings.shutdown_timeout_s)
    where = f"http://{'[' + settings.host + ']' if ':' in settings.host else settings.host}:{settings.port}/"
    if settings.workers == 1:
        app = create_app(settings)
        print(f"serving {app.state.holder.name} ({settings.backend}) on {where}  (Ctrl-C stops)", file=sys.stderr)
        uvicorn.run(app, **common)
        return
    from mnistlab.serve.model import ModelHolder

    ModelHolder.load(settings.run_dir, settings.backend, settings.threads)  # fail here, once, rather than in every worker
    os.environ[SETTINGS_ENV] = settings.to_env()
    print(f"serving {settings.run_dir} ({settings.backend}, {settings.workers} workers) on {where}", file=sys.stderr)
    uvicorn.run("mnistlab.serve.app:app_from_env", factory=True, workers=settings.workers, **common)
