"""`mnistlab serve`: the HTTP prediction service, the drawing page and the Open Inference Protocol.

    mnistlab serve runs/simple-20261125-101500                  # http://127.0.0.1:8000/
    MNISTLAB_API_TOKEN=s3cret mnistlab serve RUN --host 0.0.0.0 --backend onnx --workers 2

The library lives in :mod:`mnistlab.serve`; this module only parses. See docs/serve.md.
"""

from __future__ import annotations

import argparse
import os


def cmd_serve(args: argparse.Namespace) -> int:
    from mnistlab.serve.server import serve
    from mnistlab.serve.settings import TOKEN_ENV, ServeSettings

    settings = ServeSettings(args.run_dir, host=args.host, port=args.port, workers=args.workers, backend=args.backend,
                             token=os.environ.get(TOKEN_ENV) or None, insecure=args.insecure,
                             max_body=int(args.max_body_mb * 1024 * 1024), max_batch=args.max_batch, threads=args.threads,
                             timeout_s=args.timeout, max_decodes=args.max_decodes, decode_wait_s=args.decode_wait,
                             cors_origins=args.cors_origin or [],
                             header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                             idle_timeout_s=args.idle_timeout, shutdown_timeout_s=args.shutdown_timeout)
    serve(settings)  # until Ctrl-C; a UserError (bad run, refused address) becomes exit 2 in the CLI
    return 0


def add_commands(command) -> None:
    """Add ``serve`` through ``command(name, func, help, ...)``."""
    from mnistlab.serve.settings import (BACKENDS, DEFAULT_BODY_TIMEOUT_S, DEFAULT_DECODE_WAIT_S,
                                         DEFAULT_HEADER_TIMEOUT_S, DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_BATCH,
                                         DEFAULT_MAX_BODY, DEFAULT_MAX_DECODES, DEFAULT_SHUTDOWN_TIMEOUT_S)

    p = command("serve", cmd_serve, "serve a run over HTTP: drawing page, JSON API, Open Inference Protocol",
                json_flag=False, data_dir=False)
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s; another address needs MNISTLAB_API_TOKEN or --insecure)")
    p.add_argument("--port", type=int, default=8000, help="default %(default)s")
    p.add_argument("--workers", type=int, default=1, help="processes, each with its own copy of the model (default 1)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch: the run's own framework; onnx: ONNX Runtime on export/model.onnx (exported if missing)")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads per worker (default 1: a single image gains nothing from more; "
                        "raise it for large batches)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback address without MNISTLAB_API_TOKEN")
    p.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY / 1024 / 1024,
                   help="largest request body on /v1 in MiB (default %(default)g; /v2 infer allows 16)")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most images per request (default %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a computation may take before a 504 (default 10)")
    p.add_argument("--max-decodes", type=int, default=DEFAULT_MAX_DECODES,
                   help="pictures decoded at once per worker; each may hold ~130 MB (default %(default)s)")
    p.add_argument("--decode-wait", type=float, default=DEFAULT_DECODE_WAIT_S,
                   help="seconds a picture waits for a decode turn before a 503 with Retry-After (default %(default)g)")
    p.add_argument("--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT_S,
                   help="seconds for a request's line and headers to arrive, from their first byte; else 408 (default %(default)g)")
    p.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT_S,
                   help="seconds for a whole request body to arrive; else 408 (default %(default)g)")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S,
                   help="seconds a connection may send nothing, new or between requests, before it is closed (default %(default)g)")
    p.add_argument("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT_S,
                   help="on SIGTERM or Ctrl-C, seconds to answer the requests already received before exiting (default %(default)g)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow browser pages from ORIGIN to call the API (repeatable; default: CORS off)")
