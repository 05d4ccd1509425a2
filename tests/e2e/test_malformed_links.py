"""Any string in the ``{reconnectId}`` segment is a link that is simply unavailable (§2.2.1).

Requests go over real HTTP to the local host with the path exactly as the reference widget
sends it (``encodeURIComponent``, so ``/`` arrives as ``%2F``); http.client sends the path
untouched, where httpx would normalise it. Every answer must be byte-identical to an
unknown id's, on all three link routes.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from shared.services.app import App

WIDGET = "malformed-w"
# What an unknown but well-formed link looks like; the reference answers come from it.
UNKNOWN = "c-404.0." + "A" * 38
NASTY_IDS = {
    "script": "<script>alert(1)</script>",
    "slashes": "a/b/c",
    "escape-path": "../../manage/widgets",
    "dot-dot": "..",
    "dot": ".",
    "percent-00-text": "%00",
    "nul": "c-1.0.\x00" + "A" * 37,
    "percent-2f-text": "a%2Fb",
    "lone-percent": "%",
    "unicode": "\u00e9\u4e2d\U0001f600\u202e",
    "ten-thousand": "x" * 10_000,
    "space": " ",
    "tab": "\t",
    "query-and-fragment": "x?oc.reconnectid=y#z",
    "backslash": "..\\..\\x",
    "plus-and-semicolon": "a+b;c=d",
}


def link_segment(reconnect_id: str) -> str:
    """The path segment the reference widget sends (widget/reconnect.js ``linkSegment``)."""
    # encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) as they are.
    encoded = quote(reconnect_id, safe="-_.!~*'()")
    if encoded in (".", ".."):
        # A dot segment cannot travel in a path: encoded twice, it arrives as "%2E".
        encoded = encoded.replace(".", "%252E")
    return encoded


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


Send = Callable[[str, str], Answer]


@pytest.fixture
def send(host_url: str, service: App) -> Send:
    """Send one request with its path exactly as given; the answer without its Date header."""
    address = urlsplit(host_url)

    def request(method: str, path: str) -> Answer:
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            connection.putheader("Content-Length", "0")
            connection.endheaders()
            response = connection.getresponse()
            headers = tuple(
                (name.lower(), value)
                for name, value in response.getheaders()
                if name.lower() != "date"
            )
            return Answer(response.status, headers, response.read())
        finally:
            connection.close()

    return request


def link_answers(send: Send, segment: str) -> dict[str, Answer]:
    """The context, continue and decline answers for one link path segment."""
    link = f"/api/widgets/{WIDGET}/reconnect/{segment}"
    return {
        "context": send("GET", link),
        "continue": send("POST", link),
        "decline": send("POST", link + "/decline"),
    }


@pytest.mark.parametrize(
    "redirect", [None, "https://contoso.example/new"], ids=["plain", "redirect"]
)
@pytest.mark.parametrize("name", list(NASTY_IDS))
def test_any_reconnect_id_is_simply_unavailable_on_every_link_route(
    api: httpx.Client, send: Send, name: str, redirect: str | None
) -> None:
    settings: dict[str, Any] = {
        "reconnectEnabled": True,
        "timeLimitMinutes": 10,
        "portalUrl": "https://contoso.example/chat",
        "redirectUrl": redirect or "",
    }
    assert api.put(f"/manage/widgets/{WIDGET}", json=settings).status_code == 201
    # A live conversation on the widget, which no malformed link may touch.
    body = {"widgetId": WIDGET, "agentId": "agent-1"}
    assert api.put("/conversations/c-1", json=body).status_code == 201
    event = {"type": "customer_disconnected"}
    assert api.post("/conversations/c-1/events", json=event).status_code == 200
    before = api.get("/conversations/c-1").json()

    expected = link_answers(send, UNKNOWN)
    assert [answer.status for answer in expected.values()] == [200, 410, 204]
    assert json.loads(expected["context"].body)["isReconnectAvailable"] is False

    answers = link_answers(send, link_segment(NASTY_IDS[name]))

    assert answers == expected
    assert api.get("/conversations/c-1").json() == before
