"""Assemble the local host's ASGI app: the functions' router, static files, timers, queues."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import azure.functions as func
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.staticfiles import StaticFiles

from local.loader import load_functions
from local.queues import QueueListeners, QueueSettings, read_queue_settings
from local.router import FunctionsRouter
from local.timers import TimerScheduler
from shared.redaction import install_log_redaction


def build_app(
    function_app: func.FunctionApp,
    environ: Mapping[str, str] | None = None,
    static_dir: Path | None = None,
    *,
    route_prefix: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    queue_settings: QueueSettings | None = None,
) -> Starlette:
    """An ASGI app serving the FunctionApp's HTTP functions and, while running, its timers
    and queue functions.

    ``environ`` resolves ``%SETTING%`` names in schedules (falling back to ``os.environ``);
    ``static_dir`` is served at ``/`` outside the route prefix; ``route_prefix`` defaults to
    the repository's host.json (``extensions.http.routePrefix``), else "api";
    ``extra_routes`` (dev-only routes such as the demo's token issuer) come before the functions;
    ``queue_settings`` default to host.json's ``extensions.queues``.
    Raises HostError when a route, schedule, queue or setting cannot be served.
    """
    # Paths with reconnect IDs reach the router's, uvicorn's and the app's log lines alike.
    install_log_redaction()
    table = load_functions(function_app, environ, route_prefix)
    static = StaticFiles(directory=static_dir, html=True) if static_dir is not None else None
    scheduler = TimerScheduler(table.timers)
    listeners = QueueListeners(table.queues, queue_settings or read_queue_settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        scheduler.start()
        listeners.start()
        try:
            yield
        finally:
            await listeners.stop()
            await scheduler.stop()

    router = FunctionsRouter(table, static)
    app = Starlette(routes=[*extra_routes, Route("/{path:path}", router)], lifespan=lifespan)
    app.state.functions = table
    return app
