"""``python -m local.host``: serve a FunctionApp on 127.0.0.1 like Core Tools, until stopped.

Core Tools cannot be installed here, so this stands in for it in development, demos and
end-to-end tests. The work is done by single-job modules: ``routes`` (templates and
matching), ``loader`` (the app and its functions), ``router`` and ``convert`` (HTTP),
``timers`` (NCRONTAB schedules), ``app`` (assembling the ASGI app) and ``server``
(uvicorn). Keys are not enforced, as with Core Tools locally. Dev-only routes, such as
the demo's token issuer, are passed in with ``--routes``; this module mounts none itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from local.app import build_app
from local.errors import HostError
from local.loader import (
    DEFAULT_APP,
    FunctionTable,
    load_extra_routes,
    load_function_app,
    setting_defaults,
)
from local.server import AnnouncingServer, bind, uvicorn_config

REPO_ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = REPO_ROOT / "widget"
DEFAULT_PORT = 7071
ROUTES_ENV = "LOCAL_HOST_ROUTES"


def main(argv: Sequence[str] | None = None, defaults: Mapping[str, str] | None = None) -> int:
    """``python -m local.host``: serve the function app on 127.0.0.1 until SIGINT/SIGTERM.

    ``defaults`` are app settings used when the environment lacks them (default: those
    named in SETTING_DEFAULT_SOURCES). Returns the process exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m local.host", description="Serve a FunctionApp locally, like Core Tools."
    )
    parser.add_argument(
        "--app",
        default=os.environ.get("LOCAL_HOST_APP", DEFAULT_APP),
        help="the FunctionApp as module:attr or path.py:attr (env LOCAL_HOST_APP; "
        f"default {DEFAULT_APP})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("FUNCTIONS_PORT", DEFAULT_PORT)),
        help=f"port on 127.0.0.1 (env FUNCTIONS_PORT; default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--routes",
        default=os.environ.get(ROUTES_ENV) or None,
        help="dev-only Starlette routes to mount too, as module:factory (env "
        f"{ROUTES_ENV}; `make dev` passes the demo's token issuer, local.demo:demo_routes)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The Azure SDK logs every storage request at INFO; that would drown the app's own logs.
    logging.getLogger("azure").setLevel(logging.WARNING)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        function_app = load_function_app(args.app)
        environ = {**(setting_defaults() if defaults is None else defaults), **os.environ}
        static_dir = STATIC_DIR if STATIC_DIR.is_dir() else None
        extra_routes = load_extra_routes(args.routes) if args.routes else []
        app = build_app(
            function_app, environ=environ, static_dir=static_dir, extra_routes=extra_routes
        )
        sock = bind(args.port)
    except HostError as error:
        print(f"local host: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"local host: cannot listen on 127.0.0.1:{args.port} ({error.strerror}); "
            "set FUNCTIONS_PORT to a free port",
            file=sys.stderr,
        )
        return 2
    table: FunctionTable = app.state.functions
    server = AnnouncingServer(uvicorn_config(app), f"http://127.0.0.1:{args.port}", table)
    with sock:
        server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
