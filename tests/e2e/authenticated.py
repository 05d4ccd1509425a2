"""What the authenticated-widget tests share: customer JWTs signed with the test keys, and
short calls of the admin, platform and widget routes through the local host.

Token validation uses the real clock (PyJWT), so tokens are relative to `time.time()`; the
service's FakeClock only drives conversation deadlines.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.keys import public_pem

WIDGET = "w-auth"


ISSUER = "https://login.example.com/tenant"


AUDIENCE = "chat-widget"


ALICE = "alice@example.com"


BOB = "bob@example.com"


AGENT = "agent-7"


PROBLEM = "application/problem+json"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def claims(subject: str = ALICE, **changes: Any) -> dict[str, Any]:
    """Valid claims for `subject`; a change of None removes the claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now - 60,
        "exp": now + 600,
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def token(
    key: rsa.RSAPrivateKey,
    subject: str = ALICE,
    *,
    kid: str | None = "k1",
    **changes: Any,
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(subject, **changes), key, algorithm="RS256", headers=headers)


def bearer(jwt_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt_token}"}


def put_widget(
    api: httpx.Client,
    keys: list[tuple[str, rsa.RSAPrivateKey]] | None,
    *,
    widget_id: str = WIDGET,
    audience: str | None = AUDIENCE,
) -> None:
    body: dict[str, Any] = {
        "widgetId": widget_id,
        "reconnectEnabled": True,
        "timeLimitMinutes": 10,
        "portalUrl": "https://portal.example.com/chat?lang=en",
        "redirectUrl": "https://portal.example.com/new-chat",
    }
    if keys is not None:
        body["authentication"] = {
            "issuer": ISSUER,
            "audience": audience,
            "publicKeys": [{"kid": kid, "pem": public_pem(key)} for kid, key in keys],
        }
    answer = api.put(f"/manage/widgets/{widget_id}", json=body)
    assert answer.status_code in (200, 201), answer.text


def register(
    api: httpx.Client, conversation_id: str, customer_id: str, *, widget_id: str = WIDGET
) -> None:
    answer = api.put(
        f"/conversations/{conversation_id}",
        json={"widgetId": widget_id, "agentId": AGENT, "customerId": customer_id},
    )
    assert answer.status_code == 201, answer.text


def event(api: httpx.Client, conversation_id: str, event_type: str) -> dict[str, Any]:
    answer = api.post(f"/conversations/{conversation_id}/events", json={"type": event_type})
    assert answer.status_code == 200, answer.text
    return answer.json()


def conversation(api: httpx.Client, conversation_id: str) -> dict[str, Any]:
    answer = api.get(f"/conversations/{conversation_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def reconnect_id(api: httpx.Client, conversation_id: str) -> str:
    url = conversation(api, conversation_id)["reconnectUrl"]
    return parse_qs(urlsplit(url).query)["oc.reconnectid"][0]


def held(api: httpx.Client, agent_id: str = AGENT) -> int:
    answer = api.get(f"/agents/{agent_id}/capacity")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["held"])


def disconnected(api: httpx.Client, conversation_id: str, customer: str) -> None:
    """Register a conversation with AGENT and let its customer drop off now."""
    register(api, conversation_id, customer)
    event(api, conversation_id, "customer_disconnected")


def assert_unauthorized(answer: httpx.Response, secret: str | None = None) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.headers["content-type"].split(";")[0] == PROBLEM
    body = answer.json()
    assert body["status"] == 401
    assert {"type", "title", "detail"} <= body.keys()
    if secret is not None:
        assert secret not in answer.text
