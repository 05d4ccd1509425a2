"""What the admin settings API tests share: calling the decorated handlers of
`shared/api/manage.py` directly with a real `func.HttpRequest`, and the settings they send.
"""

from __future__ import annotations

import json
from typing import Any

from shared.api.manage import delete_widget, get_widget, list_widgets, patch_widget, put_widget
from tests.conftest import Answer, decode, http_request

WIDGET = "demo"


PORTAL = "https://contoso.example/help"


VALID: dict[str, Any] = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL}


DEFAULTS: dict[str, Any] = {
    "reconnectEnabled": False,
    "timeLimitMinutes": 10,
    "portalUrl": None,
    "redirectUrl": None,
    "authentication": None,
}


PROBLEM = "application/problem+json"


MERGE_PATCH = "application/merge-patch+json"


MAX_BODY = 65_536


def _auth(*keys: tuple[str, str], issuer: str = "https://login.contoso.example/") -> dict[str, Any]:
    return {
        "issuer": issuer,
        "audience": "chat-widget",
        "publicKeys": [{"kid": kid, "pem": pem} for kid, pem in keys],
    }


def call(
    handler: Any,
    method: str,
    widget_id: str | None = WIDGET,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    content_type: str | None = "application/json",
) -> Answer:
    path = "manage/widgets" if widget_id is None else f"manage/widgets/{widget_id}"
    request = http_request(
        method,
        path,
        body,
        headers=headers,
        route_params={} if widget_id is None else {"widgetId": widget_id},
        params=params,
        content_type=content_type,
    )
    return decode(handler(request))


def put(body: Any, widget_id: str = WIDGET, **options: Any) -> Answer:
    return call(put_widget, "PUT", widget_id, body, **options)


def patch(body: Any, widget_id: str = WIDGET, **options: Any) -> Answer:
    options.setdefault("content_type", MERGE_PATCH)
    return call(patch_widget, "PATCH", widget_id, body, **options)


def get(widget_id: str = WIDGET) -> Answer:
    return call(get_widget, "GET", widget_id)


def delete(widget_id: str = WIDGET, **options: Any) -> Answer:
    return call(delete_widget, "DELETE", widget_id, **options)


def listing(**params: str) -> Answer:
    return call(list_widgets, "GET", None, params=params)


def settings(answer: Answer) -> dict[str, Any]:
    """The body without `updatedAt`, to compare with what was sent."""
    return {key: value for key, value in answer.body.items() if key != "updatedAt"}


def assert_problem(answer: Answer, status: int, field: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert answer.media_type == PROBLEM
    body = answer.body
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), member
        assert body[member], member
    if field is not None:
        fields = [error["field"] for error in body["errors"]]
        assert fields == [field], body
        assert all(error["message"] for error in body["errors"])


def _padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON of exactly `size` bytes, padded with whitespace inside the object."""
    text = json.dumps(body)
    padded = text[:-1] + " " * (size - len(text)) + "}"
    raw = padded.encode()
    assert len(raw) == size
    return raw
