"""Authenticated widgets end to end: customer JWTs, the prompt, and customer-bound links.

Everything goes over real HTTP to the local host serving function_app, except the
logging checks, which call the handlers directly. Token validation uses the real
clock (PyJWT), so tokens are relative to `time.time()`; the service's FakeClock only
drives conversation deadlines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from azure.data.tables import TableServiceClient
from cryptography.hazmat.primitives.asymmetric import rsa

from local.azurite import Azurite
from shared.services.app import App
from tests.conftest import FakeClock, decode, http_request
from tests.keys import public_pem

WIDGET = "w-auth"
ISSUER = "https://login.example.com/tenant"
AUDIENCE = "chat-widget"
ALICE = "alice@example.com"
BOB = "bob@example.com"
AGENT = "agent-7"
PROBLEM = "application/problem+json"


# --- keys and tokens -----------------------------------------------------------------------


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


# --- platform and admin helpers ------------------------------------------------------------


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


@pytest.fixture
def widget(api: httpx.Client, key1: rsa.RSAPrivateKey) -> str:
    put_widget(api, [("k1", key1)])
    return WIDGET


# --- the prompt: token checks --------------------------------------------------------------


def test_a_valid_token_gets_the_prompt(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "reconnectId": reconnect_id(api, "c-1"),
        "conversationId": "c-1",
        "expiresAt": "2026-11-25T12:10:00Z",
        "disconnectedAt": "2026-11-25T12:00:00Z",
    }


def test_no_token_is_401_with_a_bearer_challenge(api: httpx.Client, widget: str) -> None:
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnectable"))


def test_basic_authorization_is_401(api: httpx.Client, widget: str) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnectable", headers=basic))


def _hs256_with_public_pem(pem: str, header: dict[str, Any]) -> str:
    # PyJWT refuses a PEM as an HMAC secret, so the key-confusion token is made by hand.
    signing_input = f"{segment(header)}.{segment(claims())}"
    mac = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _oversized(key: rsa.RSAPrivateKey) -> str:
    made = token(key, pad="p" * 7000)
    assert len(made) > 8192
    return made


def _bad_tokens(key1: rsa.RSAPrivateKey, stranger_key: rsa.RSAPrivateKey) -> dict[str, str]:
    now = int(time.time())
    return {
        "expired": token(key1, iat=now - 7200, exp=now - 3600),
        "nbf in the future": token(key1, nbf=now + 600),
        "iat in the future": token(key1, iat=now + 600, exp=now + 1200),
        "wrong issuer": token(key1, iss="https://evil.example.com"),
        "wrong audience": token(key1, aud="another-app"),
        "missing audience": token(key1, aud=None),
        "unknown kid": token(key1, kid="k9"),
        "wrong key": token(stranger_key, kid="k1"),
        "wrong key, no kid": token(stranger_key, kid=None),
        "alg none": f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims())}.",
        "alg none with kid": f"{segment({'alg': 'none', 'kid': 'k1'})}.{segment(claims())}.",
        "hs256 with public pem": _hs256_with_public_pem(
            public_pem(key1), {"alg": "HS256", "typ": "JWT", "kid": "k1"}
        ),
        "hs256 with public pem, no kid": _hs256_with_public_pem(
            public_pem(key1), {"alg": "HS256", "typ": "JWT"}
        ),
        "missing sub": token(key1, sub=None),
        "missing iss": token(key1, iss=None),
        "missing iat": token(key1, iat=None),
        "missing exp": token(key1, exp=None),
        "malformed abc": "abc",
        "malformed a.b.c": "a.b.c",
        "malformed non-base64": "!!!.???.***",
        "malformed non-json": "bm90IGpzb24.bm90IGpzb24.c2ln",
        "oversized": _oversized(key1),
        "oversized garbage": "a" * 20_000,
    }


CASES = [
    "expired",
    "nbf in the future",
    "iat in the future",
    "wrong issuer",
    "wrong audience",
    "missing audience",
    "unknown kid",
    "wrong key",
    "wrong key, no kid",
    "alg none",
    "alg none with kid",
    "hs256 with public pem",
    "hs256 with public pem, no kid",
    "missing sub",
    "missing iss",
    "missing iat",
    "missing exp",
    "malformed abc",
    "malformed a.b.c",
    "malformed non-base64",
    "malformed non-json",
    "oversized",
    "oversized garbage",
]


@pytest.mark.parametrize("case", CASES)
def test_every_bad_token_is_401_never_500(
    case: str,
    api: httpx.Client,
    widget: str,
    key1: rsa.RSAPrivateKey,
    stranger_key: rsa.RSAPrivateKey,
) -> None:
    disconnected(api, "c-1", ALICE)
    bad = _bad_tokens(key1, stranger_key)[case]
    assert_unauthorized(
        api.get(f"/widgets/{widget}/reconnectable", headers=bearer(bad)), secret=bad
    )
    # The link routes refuse it the same way, and nothing changes.
    link = reconnect_id(api, "c-1")
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnect/{link}", headers=bearer(bad)))
    assert_unauthorized(api.post(f"/widgets/{widget}/reconnect/{link}", headers=bearer(bad)))
    assert_unauthorized(
        api.post(f"/widgets/{widget}/reconnect/{link}/decline", headers=bearer(bad))
    )
    after = conversation(api, "c-1")
    assert (after["state"], after["customerConnected"]) == ("active", False)


def test_every_bad_token_case_is_run(
    key1: rsa.RSAPrivateKey, stranger_key: rsa.RSAPrivateKey
) -> None:
    assert sorted(CASES) == sorted(_bad_tokens(key1, stranger_key))


def test_audience_is_not_checked_when_the_widget_has_none(
    api: httpx.Client, key1: rsa.RSAPrivateKey
) -> None:
    put_widget(api, [("k1", key1)], audience=None)
    disconnected(api, "c-1", ALICE)
    for jwt_token in (token(key1, aud="whatever-app"), token(key1, aud=None)):
        answer = api.get(f"/widgets/{WIDGET}/reconnectable", headers=bearer(jwt_token))
        assert answer.status_code == 200, answer.text
        assert answer.json()["conversationId"] == "c-1"


# --- the prompt: which conversation --------------------------------------------------------


def test_the_newer_of_two_disconnected_conversations_is_offered(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-old", ALICE)
    clock.advance(minutes=2)
    disconnected(api, "c-new", ALICE)
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversationId"] == "c-new"
    assert answer.json()["reconnectId"] == reconnect_id(api, "c-new")


def test_newer_means_latest_disconnect_not_latest_registration(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    register(api, "c-first", ALICE)
    clock.advance(minutes=1)
    register(api, "c-second", ALICE)
    clock.advance(minutes=1)
    event(api, "c-second", "customer_disconnected")
    clock.advance(minutes=1)
    event(api, "c-first", "customer_disconnected")
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversationId"] == "c-first"
    assert answer.json()["disconnectedAt"] == "2026-11-25T12:03:00Z"


def test_a_still_connected_newer_conversation_wins_page_refresh(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-dropped", ALICE)
    clock.advance(minutes=1)
    register(api, "c-live", ALICE)  # active, customer still connected
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "reconnectId": reconnect_id(api, "c-live"),
        "conversationId": "c-live",
        "expiresAt": None,
        "disconnectedAt": None,
    }


def test_a_customer_with_nothing_gets_204(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204
    assert answer.content == b""


@pytest.mark.parametrize("ending", ["agent_ended", "customer_ended"])
def test_ended_conversations_are_not_offered(
    ending: str, api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    event(api, "c-1", ending)
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204


def test_an_ended_newer_conversation_leaves_the_older_offered(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-old", ALICE)
    clock.advance(minutes=1)
    disconnected(api, "c-new", ALICE)
    event(api, "c-new", "agent_ended")
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversationId"] == "c-old"


def test_a_conversation_past_its_deadline_is_not_offered(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    clock.advance(minutes=10)  # exactly at the deadline: no longer reconnectable
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204


def test_another_customers_conversations_are_not_offered(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-bob", BOB)
    alice = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1, ALICE)))
    assert alice.status_code == 204
    bob = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1, BOB)))
    assert bob.status_code == 200
    assert bob.json()["conversationId"] == "c-bob"


def test_conversations_of_another_widget_are_not_offered(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    put_widget(api, [("k1", key1)], widget_id="w-other")
    register(api, "c-elsewhere", ALICE, widget_id="w-other")
    event(api, "c-elsewhere", "customer_disconnected")
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204


# --- links are bound to their customer -----------------------------------------------------


def test_a_link_with_another_customers_token_is_exactly_like_an_unknown_link(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    link = reconnect_id(api, "c-1")
    unknown = "c-1.0.AAAAAA" + "A" * 32
    bob = bearer(token(key1, BOB))

    as_bob = api.get(f"/widgets/{widget}/reconnect/{link}", headers=bob)
    as_unknown = api.get(f"/widgets/{widget}/reconnect/{unknown}", headers=bob)
    assert as_bob.status_code == as_unknown.status_code == 200
    assert as_bob.json() == as_unknown.json()
    assert as_bob.json()["isReconnectAvailable"] is False
    assert as_bob.json()["conversationId"] is None

    continue_bob = api.post(f"/widgets/{widget}/reconnect/{link}", headers=bob)
    continue_unknown = api.post(f"/widgets/{widget}/reconnect/{unknown}", headers=bob)
    assert continue_bob.status_code == continue_unknown.status_code == 410
    assert continue_bob.json() == continue_unknown.json()
    assert continue_bob.headers["content-type"].split(";")[0] == PROBLEM

    decline_bob = api.post(f"/widgets/{widget}/reconnect/{link}/decline", headers=bob)
    assert decline_bob.status_code == 204
    after = conversation(api, "c-1")
    assert (after["state"], after["customerConnected"], after["endReason"]) == (
        "active",
        False,
        None,
    )
    assert held(api) == 1

    as_alice = api.get(f"/widgets/{widget}/reconnect/{link}", headers=bearer(token(key1)))
    assert as_alice.status_code == 200
    assert as_alice.json()["isReconnectAvailable"] is True
    assert as_alice.json()["conversationId"] == "c-1"


def test_continue_with_the_token(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    link = reconnect_id(api, "c-1")
    clock.advance(minutes=3)
    answer = api.post(f"/widgets/{widget}/reconnect/{link}", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "conversationId": "c-1",
        "state": "active",
        "agentId": AGENT,
        "sameAgent": True,
        "reconnectedAt": "2026-11-25T12:03:00Z",
    }
    after = conversation(api, "c-1")
    assert after["customerConnected"] is True
    assert after["disconnectedAt"] is None
    assert after["reconnectDeadline"] is None


def test_decline_with_the_token_releases_the_agent(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    disconnected(api, "c-2", BOB)
    assert held(api) == 2
    link = reconnect_id(api, "c-1")
    answer = api.post(f"/widgets/{widget}/reconnect/{link}/decline", headers=bearer(token(key1)))
    assert answer.status_code == 204
    assert held(api) == 1
    after = conversation(api, "c-1")
    assert (after["state"], after["endReason"]) == ("wrap_up", "customer_declined")
    prompt = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert prompt.status_code == 204


# --- key rotation --------------------------------------------------------------------------


def test_rotation_accepts_tokens_of_both_listed_keys(
    api: httpx.Client,
    key1: rsa.RSAPrivateKey,
    key2: rsa.RSAPrivateKey,
    stranger_key: rsa.RSAPrivateKey,
) -> None:
    put_widget(api, [("k1", key1), ("k2", key2)])
    disconnected(api, "c-1", ALICE)
    url = f"/widgets/{WIDGET}/reconnectable"
    accepted = {
        "k1": token(key1, kid="k1"),
        "k2": token(key2, kid="k2"),
        "no kid, key 1": token(key1, kid=None),
        "no kid, key 2": token(key2, kid=None),
    }
    for name, jwt_token in accepted.items():
        answer = api.get(url, headers=bearer(jwt_token))
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["conversationId"] == "c-1"
    # The kid selects that key only; an unlisted key is refused with or without kid.
    for refused in (
        token(key2, kid="k1"),
        token(key1, kid="k2"),
        token(stranger_key, kid=None),
        token(stranger_key, kid="k2"),
    ):
        assert_unauthorized(api.get(url, headers=bearer(refused)))


# --- routes and widgets --------------------------------------------------------------------


def test_reconnectable_is_404_on_a_widget_that_is_not_authenticated(
    api: httpx.Client, key1: rsa.RSAPrivateKey
) -> None:
    put_widget(api, None, widget_id="w-anon")
    for headers in ({}, bearer(token(key1))):
        answer = api.get("/widgets/w-anon/reconnectable", headers=headers)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].split(";")[0] == PROBLEM


def test_reconnectable_is_404_on_an_unknown_widget(
    api: httpx.Client, key1: rsa.RSAPrivateKey
) -> None:
    for headers in ({}, bearer(token(key1))):
        answer = api.get("/widgets/w-nobody/reconnectable", headers=headers)
        assert answer.status_code == 404, answer.text


def test_every_widget_route_needs_the_token_on_an_authenticated_widget(
    api: httpx.Client, widget: str
) -> None:
    disconnected(api, "c-1", ALICE)
    link = reconnect_id(api, "c-1")
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnect/{link}"))
    assert_unauthorized(api.post(f"/widgets/{widget}/reconnect/{link}"))
    assert_unauthorized(api.post(f"/widgets/{widget}/reconnect/{link}/decline"))
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnectable"))
    after = conversation(api, "c-1")
    assert (after["state"], after["customerConnected"]) == ("active", False)
    assert held(api) == 1


def test_an_anonymous_widget_still_works_without_a_token(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api, None, widget_id="w-anon")
    answer = api.put("/conversations/c-anon", json={"widgetId": "w-anon", "agentId": AGENT})
    assert answer.status_code == 201, answer.text
    event(api, "c-anon", "customer_disconnected")
    link = reconnect_id(api, "c-anon")
    context = api.get(f"/widgets/w-anon/reconnect/{link}")
    assert context.status_code == 200
    assert context.json()["isReconnectAvailable"] is True


def test_registering_on_an_authenticated_widget_needs_a_customer(
    api: httpx.Client, widget: str
) -> None:
    answer = api.put("/conversations/c-1", json={"widgetId": widget, "agentId": AGENT})
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == ["customerId"]


# --- privacy -------------------------------------------------------------------------------


def test_customer_ids_are_never_stored_raw(
    api: httpx.Client,
    azurite: Azurite,
    service: App,
    clock: FakeClock,
    widget: str,
    key1: rsa.RSAPrivateKey,
) -> None:
    disconnected(api, "c-1", ALICE)
    clock.advance(minutes=1)
    register(api, "c-2", ALICE)
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    digest = hashlib.sha256(ALICE.encode()).digest()
    # Neither raw nor merely hashed without a key (that would be a dictionary lookup away).
    forbidden = (ALICE, ALICE.upper(), digest.hex(), b64(digest)[:40])
    seen: list[str] = []
    for name in service.store.table_names:
        for entity in tables.get_table_client(name).list_entities():
            texts = [str(entity["PartitionKey"]), str(entity["RowKey"])]
            texts += [str(value) for value in entity.values()]
            seen.extend(texts)
            for text in texts:
                for secret in forbidden:
                    assert secret not in text, (name, entity)
    # The scan saw the conversations and the customer index, so it could have failed.
    assert "c-1" in seen
    assert "c-2" in seen
    customers = [name for name in service.store.table_names if name.endswith("customers")]
    assert len(customers) == 1
    assert len(list(tables.get_table_client(customers[0]).list_entities())) == 2
    # And the hashed index still finds her conversations.
    prompt = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert prompt.json()["conversationId"] == "c-2"


def test_the_token_never_appears_in_logs(
    api: httpx.Client,
    widget: str,
    key1: rsa.RSAPrivateKey,
    stranger_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared.api.widget import reconnect_context, reconnectable

    disconnected(api, "c-1", ALICE)
    link = reconnect_id(api, "c-1")
    good = token(key1)
    bad = token(stranger_key, iss="https://evil.example.com")
    caplog.set_level(logging.DEBUG)

    def call(handler: Any, path: str, jwt_token: str, **route: str) -> int:
        request = http_request(
            "GET",
            path,
            headers={"Authorization": f"Bearer {jwt_token}"},
            route_params={"widgetId": widget, **route},
        )
        return decode(handler(request)).status

    assert call(reconnectable, f"widgets/{widget}/reconnectable", good) == 200
    assert call(reconnectable, f"widgets/{widget}/reconnectable", bad) == 401
    assert call(reconnectable, f"widgets/{widget}/reconnectable", "a" * 9000) == 401
    route = f"widgets/{widget}/reconnect/{link}"
    assert call(reconnect_context, route, good, reconnectId=link) == 200
    assert call(reconnect_context, route, bad, reconnectId=link) == 401
    # Over HTTP too: the local host and its server log in this process.
    assert api.get(f"/widgets/{widget}/reconnectable", headers=bearer(good)).status_code == 200
    assert api.get(f"/widgets/{widget}/reconnectable", headers=bearer(bad)).status_code == 401

    assert caplog.records, "DEBUG logging captured nothing, so the check proves nothing"
    for secret in (good, bad):
        assert secret not in caplog.text
        # Not even one of its signed parts.
        for part in secret.split("."):
            assert part not in caplog.text
    assert ALICE not in caplog.text


# --- OpenAPI -------------------------------------------------------------------------------


def test_openapi_documents_the_prompt_route(api: httpx.Client) -> None:
    answer = api.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    paths = document["paths"]
    route = next(path for path in paths if path.endswith("/widgets/{widgetId}/reconnectable"))
    operation = paths[route]["get"]
    responses = operation["responses"]
    assert {"200", "204", "401", "404"} <= responses.keys()
    assert "content" in responses["200"]
    assert "content" not in responses["204"]
    assert PROBLEM in responses["401"]["content"]
    assert "WWW-Authenticate" in responses["401"].get("headers", {})
    schemes = document["components"]["securitySchemes"]
    bearer_schemes = [name for name, scheme in schemes.items() if scheme.get("scheme") == "bearer"]
    assert bearer_schemes
    assert any(bearer_schemes[0] in requirement for requirement in operation.get("security", []))
    for method, path in (
        ("get", "/widgets/{widgetId}/reconnect/{reconnectId}"),
        ("post", "/widgets/{widgetId}/reconnect/{reconnectId}"),
        ("post", "/widgets/{widgetId}/reconnect/{reconnectId}/decline"),
    ):
        documented = next(p for p in paths if p.endswith(path))
        assert "401" in paths[documented][method]["responses"]
