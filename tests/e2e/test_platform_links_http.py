"""The platform's registration and link routes end to end through the local host
(`shared/api/platform.py`): register (contract §3 "Platform"), reconnectUrl, the quick reply
and revoke (contract §2.3).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import START, FakeClock
from tests.e2e.lifecycle import (
    AGENT,
    PORTAL,
    PROBLEM,
    REDIRECT,
    SLUG,
    WIDGET,
    CustomerKeys,
    assert_gone,
    context,
    disconnected,
    get,
    held,
    iso,
    link_of,
    put_widget,
    register,
    resume,
    unavailable,
)

# --- register ------------------------------------------------------------------------------


def test_register_is_201_then_an_identical_repeat_is_200_with_the_same_body(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    created = register(api, "c1", customer="cust-1")
    assert created["conversationId"] == "c1"
    assert created["widgetId"] == WIDGET
    assert created["state"] == "active"
    assert created["customerConnected"] is True
    assert created["createdAt"] == iso(START)
    assert created["reconnectUrl"].startswith(PORTAL + "&oc.reconnectid=")
    clock.advance(minutes=1)

    repeated = register(api, "c1", customer="cust-1", expect=200)

    assert repeated == created
    assert get(api, "c1") == created
    assert held(api) == 1


@pytest.mark.parametrize(
    "change",
    [{"widget": "w2"}, {"agent": "agent-2"}, {"customer": "cust-2"}],
    ids=["other-widget", "other-agent", "other-customer"],
)
def test_register_again_with_another_widget_agent_or_customer_is_409(
    api: httpx.Client, change: dict[str, str]
) -> None:
    put_widget(api)
    put_widget(api, "w2")
    created = register(api, "c1", customer="cust-1")

    kwargs: dict[str, Any] = {"customer": "cust-1", **change}
    response = api.put(
        "/conversations/c1",
        json={
            "widgetId": kwargs.get("widget", WIDGET),
            "agentId": kwargs.get("agent", AGENT),
            "customerId": kwargs["customer"],
        },
    )

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["state"] == "active"  # every 409 names the current state
    assert get(api, "c1") == created
    assert held(api, "agent-2") == 0


def test_register_on_an_unknown_widget_is_404(api: httpx.Client) -> None:
    response = api.put("/conversations/c1", json={"widgetId": "ghost", "agentId": AGENT})

    assert response.status_code == 404, response.text
    assert api.get("/conversations/c1").status_code == 404


def test_register_on_an_authenticated_widget_needs_a_customer_id(
    api: httpx.Client, customer_keys: CustomerKeys
) -> None:
    put_widget(api, authentication=customer_keys.authentication)

    response = api.put("/conversations/c1", json={"widgetId": WIDGET, "agentId": AGENT})
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["customerId"]
    assert api.get("/conversations/c1").status_code == 404

    assert register(api, "c1", customer="cust-1")["state"] == "active"


@pytest.mark.parametrize("bad_id", ["-starts-with-dash", "x" * 129, "has%20space"])
def test_a_bad_conversation_id_is_400(api: httpx.Client, bad_id: str) -> None:
    put_widget(api)
    for response in (
        api.put(f"/conversations/{bad_id}", json={"widgetId": WIDGET}),
        api.get(f"/conversations/{bad_id}"),
        api.post(f"/conversations/{bad_id}/events", json={"type": "agent_ended"}),
    ):
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith(PROBLEM)


# --- links: reconnectUrl, quick reply, revoke ------------------------------------------------


def test_reconnect_url_is_null_while_the_widget_has_reconnection_disabled(
    api: httpx.Client,
) -> None:
    put_widget(api, reconnectEnabled=False)
    assert register(api, "c1")["reconnectUrl"] is None

    put_widget(api)
    url = get(api, "c1")["reconnectUrl"]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://contoso.example/chat"
    query = parse_qs(parts.query)
    assert query["lang"] == ["en"]
    assert len(query["oc.reconnectid"]) == 1

    put_widget(api, reconnectEnabled=False)
    assert get(api, "c1")["reconnectUrl"] is None


def test_quick_reply_renders_the_slug_to_the_link(api: httpx.Client) -> None:
    put_widget(api)
    url = register(api, "c1")["reconnectUrl"]

    rendered = api.post(
        "/conversations/c1/quick-reply", json={"text": f"Come back here: {SLUG} (or {SLUG})"}
    )
    plain = api.post("/conversations/c1/quick-reply", json={"text": "No link {here}."})

    assert rendered.status_code == 200, rendered.text
    assert rendered.json() == {"text": f"Come back here: {url} (or {url})"}
    assert plain.status_code == 200, plain.text
    assert plain.json() == {"text": "No link {here}."}


def test_quick_reply_while_reconnection_is_off(api: httpx.Client) -> None:
    put_widget(api, reconnectEnabled=False)
    register(api, "c1")

    plain = api.post("/conversations/c1/quick-reply", json={"text": "Thanks for waiting."})
    with_slug = api.post("/conversations/c1/quick-reply", json={"text": f"Link: {SLUG}"})

    assert plain.status_code == 200, plain.text
    assert plain.json() == {"text": "Thanks for waiting."}
    assert with_slug.status_code == 409, with_slug.text
    assert with_slug.json()["state"] == "active"


def test_revoke_issues_a_new_link_and_the_old_one_stops_at_once(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    conversation = disconnected(api, "c1")
    old = link_of(conversation)
    assert context(api, old)["isReconnectAvailable"] is True

    response = api.post("/conversations/c1/reconnect-link/revoke")

    assert response.status_code == 200, response.text
    new_url = response.json()["reconnectUrl"]
    assert new_url != conversation["reconnectUrl"]
    assert get(api, "c1")["reconnectUrl"] == new_url
    new = parse_qs(urlsplit(new_url).query)["oc.reconnectid"][0]
    assert context(api, old) == unavailable(REDIRECT)
    assert_gone(resume(api, old), REDIRECT)
    assert context(api, new)["isReconnectAvailable"] is True
    answer = resume(api, new)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sameAgent"] is True
    # The quick reply now renders the new link.
    reply = api.post("/conversations/c1/quick-reply", json={"text": SLUG})
    assert reply.json() == {"text": new_url}
