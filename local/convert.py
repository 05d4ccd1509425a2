"""Convert between Starlette's requests and responses and the ``azure.functions`` ones."""

from __future__ import annotations

from collections.abc import Mapping

import azure.functions as func
from starlette.requests import Request
from starlette.responses import Response


async def to_http_request(request: Request, route_params: Mapping[str, str]) -> func.HttpRequest:
    """The ``func.HttpRequest`` the Functions host would hand over for a Starlette request."""
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        # The Functions host folds repeated headers into one comma-separated value.
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        # ...and repeated query parameters likewise, with a bare comma.
        params[key] = f"{params[key]},{value}" if key in params else value
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params=params,
        route_params=dict(route_params),
        body=await request.body(),
    )


# Framing headers are Starlette's to set from the body it actually sends.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


def to_starlette_response(result: object) -> Response:
    """Convert a handler's return value (``func.HttpResponse`` or str) to a Starlette response."""
    if isinstance(result, str):
        return Response(result.encode("utf-8"), 200, media_type="text/plain; charset=utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not HttpResponse")
    response = Response(result.get_body(), int(result.status_code))
    headers = [
        (key.lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in result.headers.items()
        if key.lower() not in _FRAMING_HEADERS
    ]
    if not any(key == b"content-type" for key, _ in headers):
        # Same rule as azure.functions' HttpResponseConverter: charset only for text/*.
        mimetype = str(result.mimetype)
        content_type = (
            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        )
        headers.append((b"content-type", content_type.encode("latin-1")))
    response.raw_headers = [*response.raw_headers, *headers]
    return response
