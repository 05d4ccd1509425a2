"""The widget's routes as a thin HTTP contract through the local host (`shared/api/widget.py`):
the answers of context, continue and decline (contract §3 "Widget") — statuses, media types,
bodies and problems — one representative case per kind of answer, every unavailable link
answered alike, and links on an authenticated widget working only for their customer.

What a continue or a decline does to the stored conversation and the capacity, every kind of
unusable link and the deadline to the second are pinned once, through the App's use cases,
in tests/integration/test_reconnect_rules.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock
from tests.e2e.lifecycle import (
    AGENT,
    LIMIT_MINUTES,
    PROBLEM,
    REDIRECT,
    UNKNOWN_LINK,
    WIDGET,
    CustomerKeys,
    assert_gone,
    context,
    decline,
    disconnected,
    get,
    held,
    iso,
    link_of,
    put_widget,
    register,
    resume,
    send,
    unavailable,
)

# --- widget routes: context, continue -----------------------------------------------------------


def test_context_of_a_usable_link(api: httpx.Client, clock: FakeClock) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    conversation = disconnected(api, "c1")
    reconnect_id = link_of(conversation)
    clock.advance(minutes=2)

    assert context(api, reconnect_id) == {
        "isReconnectAvailable": True,
        "reconnectId": reconnect_id,
        "conversationId": "c1",
        "expiresAt": conversation["reconnectDeadline"],
        "redirectUrl": None,
    }


def test_continue_reconnects_to_the_same_agent(api: httpx.Client, clock: FakeClock) -> None:
    put_widget(api)
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=3)
    reconnected_at = clock.now

    first = resume(api, reconnect_id)

    assert first.status_code == 200, first.text
    assert first.headers["content-type"].split(";")[0] == "application/json"
    assert first.json() == {
        "conversationId": "c1",
        "state": "active",
        "agentId": AGENT,
        "sameAgent": True,
        "reconnectedAt": iso(reconnected_at),
    }


def test_page_refresh_while_still_connected_is_a_valid_continue(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    registered = register(api, "c1")
    reconnect_id = link_of(registered)
    clock.advance(minutes=1)

    assert context(api, reconnect_id) == {
        "isReconnectAvailable": True,
        "reconnectId": reconnect_id,
        "conversationId": "c1",
        "expiresAt": None,
        "redirectUrl": None,
    }
    answer = resume(api, reconnect_id)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "conversationId": "c1",
        "state": "active",
        "agentId": AGENT,
        "sameAgent": True,
        "reconnectedAt": iso(clock.now),
    }


def test_continue_after_agent_closed_reaches_the_queue_not_the_agent(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    reconnect_id = link_of(register(api, "c1"))
    send(api, "c1", "agent_closed")
    clock.advance(seconds=5)

    answer = resume(api, reconnect_id)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "conversationId": "c1",
        "state": "open",
        "agentId": None,
        "sameAgent": False,
        "reconnectedAt": iso(clock.now),
    }


# --- every unavailable case looks the same ----------------------------------------------------


def _malformed(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str]:
    disconnected(api, "c1")
    return "not-a-reconnect-link", "c1"


def _expired(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str]:
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)  # the timer has not run
    return reconnect_id, "c1"


def _revoked(api: httpx.Client, clock: FakeClock, service: Any) -> tuple[str, str]:
    reconnect_id = link_of(disconnected(api, "c1"))
    assert api.post("/conversations/c1/reconnect-link/revoke").status_code == 200
    return reconnect_id, "c1"


# One case per way a link fails (does not parse, past its deadline, revoked); every other
# cause is in tests/integration/test_reconnect_rules.py.
_UNAVAILABLE_CASES = {
    "malformed": _malformed,
    "expired-before-timer": _expired,
    "revoked": _revoked,
}


Case = Callable[[httpx.Client, FakeClock, Any], tuple[str, str]]


@pytest.mark.parametrize("case", _UNAVAILABLE_CASES.values(), ids=_UNAVAILABLE_CASES.keys())
def test_every_unavailable_link_gets_the_same_answer_and_decline_changes_nothing(
    api: httpx.Client, clock: FakeClock, service: Any, case: Case
) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    reconnect_id, conversation_id = case(api, clock, service)
    before = get(api, conversation_id)
    capacity_before = held(api)
    reference_get = context(api, UNKNOWN_LINK)
    reference_post = resume(api, UNKNOWN_LINK)

    got = context(api, reconnect_id)
    posted = resume(api, reconnect_id)
    declined = decline(api, reconnect_id)

    assert got == unavailable(REDIRECT)
    assert got == reference_get
    assert assert_gone(posted, REDIRECT) == assert_gone(reference_post, REDIRECT)
    assert declined.status_code == 204, declined.text
    assert declined.content == b""
    assert get(api, conversation_id) == before
    assert held(api) == capacity_before


def test_all_410_problems_share_type_and_title_with_and_without_redirect(
    api: httpx.Client,
) -> None:
    put_widget(api, redirectUrl=REDIRECT)
    put_widget(api, "plain")

    with_redirect = assert_gone(resume(api, UNKNOWN_LINK), REDIRECT)
    without = assert_gone(resume(api, UNKNOWN_LINK, "plain"), None)

    assert with_redirect["type"] == without["type"]
    assert with_redirect["title"] == without["title"]
    assert with_redirect["detail"] == without["detail"]


def test_without_a_configured_redirect_the_unavailable_answers_carry_null(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)  # no redirectUrl
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=LIMIT_MINUTES, seconds=1)

    assert context(api, reconnect_id) == unavailable(None)
    assert assert_gone(resume(api, reconnect_id), None)["redirectUrl"] is None
    assert context(api, UNKNOWN_LINK) == unavailable(None)

    # An admin clearing the field with "" also means none.
    put_widget(api, redirectUrl="")
    assert context(api, reconnect_id) == unavailable(None)
    assert_gone(resume(api, reconnect_id), None)


def test_an_unknown_widget_is_404_on_every_link_route(api: httpx.Client) -> None:
    put_widget(api)
    reconnect_id = link_of(disconnected(api, "c1"))
    before = get(api, "c1")

    for response in (
        api.get(f"/widgets/ghost/reconnect/{reconnect_id}"),
        resume(api, reconnect_id, "ghost"),
        decline(api, reconnect_id, "ghost"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
    assert get(api, "c1") == before
    assert api.get(f"/widgets/bad!id/reconnect/{reconnect_id}").status_code == 400


# --- decline -------------------------------------------------------------------------------------


def test_decline_answers_204_without_a_body_and_again_on_a_repeat(
    api: httpx.Client, clock: FakeClock
) -> None:
    put_widget(api)
    reconnect_id = link_of(disconnected(api, "c1"))
    clock.advance(minutes=1)

    first = decline(api, reconnect_id)

    assert first.status_code == 204, first.text
    assert first.content == b""
    assert get(api, "c1")["state"] == "wrap_up"

    clock.advance(minutes=1)
    second = decline(api, reconnect_id)
    assert second.status_code == 204, second.text


def test_decline_of_an_open_conversation_answers_204(api: httpx.Client) -> None:
    put_widget(api)
    reconnect_id = link_of(register(api, "c1", agent=None))

    assert decline(api, reconnect_id).status_code == 204
    assert get(api, "c1")["state"] == "closed"
    assert decline(api, reconnect_id).status_code == 204


# --- authenticated widgets: a link works only for its customer -----------------------------------


def test_on_an_authenticated_widget_a_link_works_only_for_its_customer(
    api: httpx.Client, customer_keys: CustomerKeys
) -> None:
    put_widget(api, redirectUrl=REDIRECT, authentication=customer_keys.authentication)
    reconnect_id = link_of(disconnected(api, "c1", customer="alice"))
    alice, mallory = customer_keys.bearer("alice"), customer_keys.bearer("mallory")
    before = get(api, "c1")

    assert api.get(f"/widgets/{WIDGET}/reconnect/{reconnect_id}").status_code == 401
    assert resume(api, reconnect_id).status_code == 401
    assert decline(api, reconnect_id).status_code == 401
    assert context(api, reconnect_id, headers=mallory) == unavailable(REDIRECT)
    assert context(api, reconnect_id, headers=mallory) == context(
        api, UNKNOWN_LINK, headers=mallory
    )
    assert_gone(resume(api, reconnect_id, headers=mallory), REDIRECT)
    assert decline(api, reconnect_id, headers=mallory).status_code == 204
    assert get(api, "c1") == before

    assert context(api, reconnect_id, headers=alice)["conversationId"] == "c1"
    answer = resume(api, reconnect_id, headers=alice)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sameAgent"] is True
