"""The ASGI app that routes each request to its HTTP function, else static files, else 404."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from local.convert import to_http_request, to_starlette_response
from local.invoke import invoke
from local.loader import FunctionTable, HttpFunction

ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})

logger = logging.getLogger(__name__)


def _problem(status: int, title: str, headers: Mapping[str, str] | None = None) -> Response:
    """An RFC 9457 problem response with only the standard members."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status})
    return Response(body, status, headers=headers, media_type="application/problem+json")


class FunctionsRouter:
    """ASGI app: routes requests to HTTP functions, else to static files, else 404."""

    def __init__(self, table: FunctionTable, static: StaticFiles | None = None) -> None:
        self.table = table
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request; never lets a handler's exception reach the server."""
        request = Request(scope, receive)
        path = scope["path"]
        # Route on the path as sent: the server's decoded one has lost which "/" were "%2F",
        # and the Functions host keeps an encoded "/" inside its route value.
        raw_path = scope.get("raw_path") or quote(path).encode("ascii")
        matches = self.table.find(raw_path)
        if not matches:
            if self.static is not None and not self.table.under_prefix(path):
                await self.static(scope, receive, send)
                return
            await _problem(404, "Not Found")(scope, receive, send)
            return
        for function, route_params in matches:
            if function.accepts(request.method):
                response = await self._call(function, request, route_params, raw_path)
                await response(scope, receive, send)
                return
        allowed = set().union(*(function.methods or ALL_METHODS for function, _ in matches))
        allow = ", ".join(sorted(allowed))
        await _problem(405, "Method Not Allowed", {"Allow": allow})(scope, receive, send)

    async def _call(
        self,
        function: HttpFunction,
        request: Request,
        route_params: Mapping[str, str],
        raw_path: bytes,
    ) -> Response:
        """Run the function; its exceptions become a 500 problem, as the host answers."""
        # Logged as sent (percent-encoded): one segment per route value, which the log
        # redaction (shared/redaction.py, installed by build_app) relies on.
        path = raw_path.decode("ascii", "replace")
        started = time.perf_counter()
        try:
            http_request = await to_http_request(request, route_params)
            result = await invoke(function.handler, **{function.arg_name: http_request})
            response = to_starlette_response(result)
        except Exception:
            logger.exception("function %r failed on %s %s", function.name, request.method, path)
            response = _problem(500, "Internal Server Error")
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "%s %s -> %d (%s, %.0f ms)",
            request.method,
            path,
            response.status_code,
            function.name,
            elapsed_ms,
        )
        return response
