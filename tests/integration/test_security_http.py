"""Security controls of docs/security.md that need storage: headers on real answers, nothing
secret at rest or in logs, redirects only where the admin said, no detail in a 500."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.data.tables import TableServiceClient
from azure.functions.timer import TimerRequest

from local.azurite import Azurite
from shared.domain.links import MAC_LENGTH
from shared.services.app import App
from tests.conftest import SIGNING_KEY, FakeClock, decode, http_request

WIDGET = "sec-w"
PORTAL = "https://contoso.example/chat"
REDIRECT = "https://contoso.example/new-chat"
CUSTOMER = "alice.customer@example.com"
SECURITY_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def put_widget(api: httpx.Client, **settings: Any) -> httpx.Response:
    body = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL, **settings}
    return api.put(f"/manage/widgets/{WIDGET}", json=body)


def disconnected(api: httpx.Client, conversation_id: str, customer: str | None = None) -> str:
    """Register an active conversation, disconnect the customer; return its reconnect ID."""
    body: dict[str, Any] = {"widgetId": WIDGET, "agentId": "agent-1"}
    if customer is not None:
        body["customerId"] = customer
    assert api.put(f"/conversations/{conversation_id}", json=body).status_code == 201
    answer = api.post(
        f"/conversations/{conversation_id}/events", json={"type": "customer_disconnected"}
    )
    assert answer.status_code == 200, answer.text
    return parse_qs(urlsplit(answer.json()["reconnectUrl"]).query)["oc.reconnectid"][0]


def test_every_kind_of_answer_is_not_cached_or_sniffed(api: httpx.Client) -> None:
    link = f"/widgets/{WIDGET}/reconnect/"
    answers = {"create widget": put_widget(api)}
    reconnect_id = disconnected(api, "c-1")
    answers |= {
        "health": api.get("/health"),
        "openapi": api.get("/openapi.json"),
        "settings": api.get(f"/manage/widgets/{WIDGET}"),
        "list": api.get("/manage/widgets"),
        "conversation": api.get("/conversations/c-1"),
        "context": api.get(link + reconnect_id),
        "continue": api.post(link + reconnect_id),
        "unavailable": api.get(link + "nope"),
        "gone": api.post(link + "nope"),
        "decline": api.post(link + "nope/decline"),
        "bad id": api.get("/conversations/bad%20id"),
        "unknown": api.get("/conversations/nobody"),
        "refused event": api.post(
            "/conversations/c-1/events", json={"type": "agent_assigned", "agentId": "a-2"}
        ),
        "415": api.put(f"/manage/widgets/{WIDGET}", content=b"{}"),
        "422": api.put(f"/manage/widgets/{WIDGET}", json={"timeLimitMinutes": 0}),
        "413": api.put(
            f"/manage/widgets/{WIDGET}",
            content=b" " * (64 * 1024 + 1),
            headers={"content-type": "application/json"},
        ),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    # The sample covers successes, no-content and problems alike.
    assert {200, 201, 204, 400, 404, 409, 410, 413, 415, 422} <= set(statuses.values()), statuses
    for name, answer in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header) == value, (name, answer.status_code)
    assert answers["settings"].headers["etag"]


def test_a_bug_answers_a_generic_500_that_leaks_nothing(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "internal-detail-7f3a"

    class Broken:
        def get_widget(self, widget_id: str) -> Any:
            raise RuntimeError(f"{secret}: widget table row {widget_id}")

    class App:
        settings = Broken()

    monkeypatch.setattr("shared.api.manage.get_service", lambda: App())
    answer = api.get(f"/manage/widgets/{WIDGET}")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert secret not in answer.text
    assert answer.json()["detail"] == "An unexpected error occurred."
    for header, value in SECURITY_HEADERS.items():
        assert answer.headers[header] == value
    # The operator still gets the cause in the log.
    assert secret in caplog.text


def test_the_redirect_is_only_ever_the_admins_url(api: httpx.Client) -> None:
    assert put_widget(api, redirectUrl=REDIRECT).status_code == 201
    evil = "https://evil.example/phish"
    tricks: dict[str, Any] = {
        "params": {"redirectUrl": evil, "redirect_url": evil, "returnUrl": evil},
        "headers": {"Referer": evil, "Origin": evil, "X-Forwarded-Host": "evil.example"},
    }
    link = f"/widgets/{WIDGET}/reconnect/c-404.0.{'A' * (6 + MAC_LENGTH)}"
    context = api.get(link, **tricks)
    assert context.status_code == 200
    assert context.json()["redirectUrl"] == REDIRECT
    gone = api.post(link, **tricks)
    assert gone.status_code == 410
    assert gone.json()["redirectUrl"] == REDIRECT
    assert "evil" not in context.text + gone.text


@pytest.mark.parametrize(
    "reconnect_id",
    [
        "x" * 4000,
        "c-1.0.%00" + "A" * 37,
        "c-1.99999999999." + "A" * 38,
        "c-1.-1." + "A" * 38,
        "c-1.0." + "\u00c4" * 38,
        "c-1.0.A'%22%3Cscript%3E" + "A" * 30,
    ],
)
def test_hostile_reconnect_ids_are_simply_unavailable(api: httpx.Client, reconnect_id: str) -> None:
    assert put_widget(api, redirectUrl=REDIRECT).status_code == 201
    disconnected(api, "c-1")
    link = f"/widgets/{WIDGET}/reconnect/{reconnect_id}"
    context = api.get(link)
    assert context.status_code == 200, context.text
    assert context.json()["isReconnectAvailable"] is False
    assert api.post(link).status_code == 410
    assert api.post(link + "/decline").status_code == 204
    assert api.get("/conversations/c-1").json()["state"] == "active"


def test_no_reconnect_id_customer_id_or_key_is_logged_or_stored(
    api: httpx.Client,
    azurite: Azurite,
    service: App,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared.api.platform import conversation_event, quick_reply, revoke_reconnect_link
    from shared.api.timers import enforce_time_limits
    from shared.api.widget import reconnect_context, reconnect_continue, reconnect_decline

    assert put_widget(api, redirectUrl=REDIRECT).status_code == 201
    caplog.set_level(logging.DEBUG)
    first = disconnected(api, "c-1", CUSTOMER)
    second = disconnected(api, "c-2", CUSTOMER)

    # The handlers themselves (the app's logging, without the local host's access log).
    def widget_call(handler: Any, reconnect_id: str, suffix: str = "") -> int:
        request = http_request(
            "GET" if handler is reconnect_context else "POST",
            f"widgets/{WIDGET}/reconnect/{reconnect_id}{suffix}",
            route_params={"widgetId": WIDGET, "reconnectId": reconnect_id},
        )
        return decode(handler(request)).status

    def platform_call(handler: Any, conversation_id: str, body: Any = None) -> Any:
        request = http_request(
            "POST",
            f"conversations/{conversation_id}",
            body,
            route_params={"conversationId": conversation_id},
        )
        return decode(handler(request))

    assert widget_call(reconnect_context, first) == 200
    assert widget_call(reconnect_continue, first) == 200
    assert widget_call(reconnect_decline, second, "/decline") == 204
    assert widget_call(reconnect_continue, second) == 410
    tampered = first[:-1] + ("A" if first[-1] != "A" else "B")
    assert widget_call(reconnect_context, tampered) == 200
    assert platform_call(conversation_event, "c-1", {"type": "customer_disconnected"}).status == 200
    rendered = platform_call(quick_reply, "c-1", {"text": "Back: {ReconnectUrl{ReconnectID}}"})
    assert rendered.status == 200
    assert first in rendered.body["text"]
    revoked = platform_call(revoke_reconnect_link, "c-1")
    assert revoked.status == 200
    third = parse_qs(urlsplit(revoked.body["reconnectUrl"]).query)["oc.reconnectid"][0]
    assert widget_call(reconnect_continue, first) == 410
    clock.advance(minutes=11)
    enforce_time_limits(TimerRequest(past_due=False))  # the timer's one structured line

    assert caplog.records, "DEBUG logging captured nothing, so the check proves nothing"
    secrets_ = {
        CUSTOMER,
        SIGNING_KEY.decode(),
        first,
        second,
        third,
        tampered,
        *(link[-MAC_LENGTH:] for link in (first, second, third)),
    }
    logged = caplog.text
    for secret in secrets_:
        assert secret not in logged, secret

    # At rest: no reconnect ID, MAC, raw customer id or signing key in any key or property.
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    scanned = 0
    for name in service.store.table_names:
        for entity in tables.get_table_client(name).list_entities():
            scanned += 1
            stored = " ".join(
                [str(entity["PartitionKey"]), str(entity["RowKey"])]
                + [str(value) for value in entity.values()]
            )
            for secret in secrets_:
                assert secret not in stored, (name, secret)
    # Widget, two conversations, their due, customer and capacity rows: the scan saw them.
    assert scanned >= 5
