"""Authenticated widgets end to end: links bound to their customer, key rotation, which routes
need the token, privacy of customer ids and tokens, and the prompt in the OpenAPI document.

Everything goes over real HTTP to the local host serving function_app, except the
logging checks, which call the handlers directly. Token validation uses the real
clock (PyJWT), so tokens are relative to `time.time()`; the service's FakeClock only
drives conversation deadlines.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import httpx
import pytest
from azure.data.tables import TableServiceClient
from cryptography.hazmat.primitives.asymmetric import rsa

from local.azurite import Azurite
from shared.services.app import App
from tests.conftest import FakeClock, decode, http_request
from tests.e2e.authenticated import (
    AGENT,
    ALICE,
    BOB,
    PROBLEM,
    WIDGET,
    assert_unauthorized,
    b64,
    bearer,
    conversation,
    disconnected,
    event,
    held,
    put_widget,
    reconnect_id,
    register,
    token,
)

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
