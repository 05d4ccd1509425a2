"""What the lifecycle HTTP tests share: the widget, agent and links they use, and short
calls of the platform and widget routes through the local host.

The clock is the test's FakeClock; the timer is run by calling the service directly.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

WIDGET = "w"


AGENT = "agent-1"


LIMIT_MINUTES = 7


PORTAL = "https://contoso.example/chat?lang=en"


REDIRECT = "https://contoso.example/new-chat"


SLUG = "{ReconnectUrl{ReconnectID}}"


PROBLEM = "application/problem+json"


ISSUER = "https://login.contoso.example/"


UNKNOWN_LINK = "nobody-here.0." + "A" * 38


UNAVAILABLE_KEYS = {"isReconnectAvailable", "reconnectId", "conversationId", "expiresAt"}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def put_widget(api: httpx.Client, widget_id: str = WIDGET, **settings: Any) -> dict[str, Any]:
    body = {
        "reconnectEnabled": True,
        "timeLimitMinutes": LIMIT_MINUTES,
        "portalUrl": PORTAL,
        **settings,
    }
    response = api.put(f"/manage/widgets/{widget_id}", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def register(
    api: httpx.Client,
    conversation_id: str,
    *,
    widget: str = WIDGET,
    agent: str | None = AGENT,
    customer: str | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    body: dict[str, Any] = {"widgetId": widget}
    if agent is not None:
        body["agentId"] = agent
    if customer is not None:
        body["customerId"] = customer
    response = api.put(f"/conversations/{conversation_id}", json=body)
    assert response.status_code == expect, response.text
    return response.json()


def send(
    api: httpx.Client, conversation_id: str, event_type: str, *, expect: int = 200, **extra: Any
) -> dict[str, Any]:
    response = api.post(
        f"/conversations/{conversation_id}/events", json={"type": event_type, **extra}
    )
    assert response.status_code == expect, response.text
    if expect >= 400:
        assert response.headers["content-type"].startswith(PROBLEM)
    return response.json()


def get(api: httpx.Client, conversation_id: str) -> dict[str, Any]:
    response = api.get(f"/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def held(api: httpx.Client, agent: str = AGENT) -> int:
    response = api.get(f"/agents/{agent}/capacity")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["held"] == len(body["conversations"])
    return int(body["held"])


def link_of(conversation: dict[str, Any]) -> str:
    """The reconnect ID inside a conversation's reconnectUrl."""
    url = conversation["reconnectUrl"]
    assert url is not None
    return parse_qs(urlsplit(url).query)["oc.reconnectid"][0]


def context(api: httpx.Client, reconnect_id: str, widget: str = WIDGET, **kw: Any) -> Any:
    response = api.get(f"/widgets/{widget}/reconnect/{reconnect_id}", **kw)
    assert response.status_code == 200, response.text
    return response.json()


def resume(api: httpx.Client, reconnect_id: str, widget: str = WIDGET, **kw: Any) -> httpx.Response:
    return api.post(f"/widgets/{widget}/reconnect/{reconnect_id}", **kw)


def decline(
    api: httpx.Client, reconnect_id: str, widget: str = WIDGET, **kw: Any
) -> httpx.Response:
    return api.post(f"/widgets/{widget}/reconnect/{reconnect_id}/decline", **kw)


def unavailable(redirect: str | None) -> dict[str, Any]:
    return {
        "isReconnectAvailable": False,
        "reconnectId": None,
        "conversationId": None,
        "expiresAt": None,
        "redirectUrl": redirect,
    }


def assert_gone(response: httpx.Response, redirect: str | None) -> dict[str, Any]:
    """A 410 'reconnect unavailable' problem carrying `redirectUrl`."""
    assert response.status_code == 410, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 410
    assert body["type"]
    assert body["title"]
    assert body["detail"]
    assert "redirectUrl" in body
    assert body["redirectUrl"] == redirect
    return body


def disconnected(api: httpx.Client, conversation_id: str, **register_kw: Any) -> dict[str, Any]:
    """A registered active conversation whose customer just disconnected."""
    register(api, conversation_id, **register_kw)
    return send(api, conversation_id, "customer_disconnected")


class CustomerKeys:
    """An RSA key pair standing in for the customer identity provider."""

    def __init__(self) -> None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.authentication = {
            "issuer": ISSUER,
            "audience": None,
            "publicKeys": [{"kid": "k1", "pem": public_pem.decode()}],
        }

    def bearer(self, customer_id: str) -> dict[str, str]:
        # Token lifetimes are checked against real time by PyJWT, not the service clock.
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": customer_id, "iat": now, "exp": now + 600}
        token = jwt.encode(claims, self.private_pem, algorithm="RS256", headers={"kid": "k1"})
        return {"Authorization": f"Bearer {token}"}
