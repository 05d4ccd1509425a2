"""Storage unavailable: the app answers 503 with Retry-After (never 500), and recovers.

Each test runs its own Azurite (not the session one) so that it can stop and restart it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.azurite import Azurite
from shared.api.manage import delete_widget, get_widget, list_widgets, patch_widget, put_widget
from shared.api.ops import health
from shared.api.platform import get_conversation, register_conversation
from shared.services.app import App
from shared.wiring import set_service
from tests.conftest import Answer, FakeClock, decode, http_request, make_service

SETTINGS = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": "https://x.example/"}


@pytest.fixture
def own_azurite() -> Iterator[Azurite]:
    server = Azurite().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def app_service(own_azurite: Azurite, clock: FakeClock) -> Iterator[App]:
    built = make_service(own_azurite.connection_string, clock)
    set_service(built)
    try:
        yield built
    finally:
        set_service(None)


def call(handler: Any, method: str, path: str, body: Any = None, **route: str) -> Answer:
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    request = http_request(method, path, body, route_params=route, content_type=content_type)
    return decode(handler(request))


def put_demo() -> Answer:
    return call(put_widget, "PUT", "manage/widgets/demo", SETTINGS, widgetId="demo")


def get_demo() -> Answer:
    return call(get_widget, "GET", "manage/widgets/demo", widgetId="demo")


def assert_unavailable(answer: Answer) -> None:
    assert answer.status == 503, answer.body
    assert answer.media_type == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    assert answer.body["status"] == 503
    assert {"type", "title", "detail"} <= set(answer.body)


def test_storage_down_answers_503_with_retry_after(own_azurite: Azurite, app_service: App) -> None:
    assert call(health, "GET", "health").status == 200
    assert put_demo().status == 201

    own_azurite.stop()

    assert_unavailable(call(health, "GET", "health"))
    assert_unavailable(get_demo())
    assert_unavailable(put_demo())
    assert_unavailable(call(put_widget, "PUT", "manage/widgets/new", SETTINGS, widgetId="new"))
    assert_unavailable(
        call(patch_widget, "PATCH", "manage/widgets/demo", {"timeLimitMinutes": 5}, widgetId="demo")
    )
    assert_unavailable(call(delete_widget, "DELETE", "manage/widgets/demo", widgetId="demo"))
    assert_unavailable(call(list_widgets, "GET", "manage/widgets"))
    assert_unavailable(
        call(
            register_conversation,
            "PUT",
            "conversations/c1",
            {"widgetId": "demo"},
            conversationId="c1",
        )
    )
    assert_unavailable(call(get_conversation, "GET", "conversations/c1", conversationId="c1"))


def test_client_mistakes_are_still_answered_while_storage_is_down(
    own_azurite: Azurite, app_service: App
) -> None:
    """What can be judged without storage is judged first: 400/415/422, not 503."""
    own_azurite.stop()

    assert call(get_widget, "GET", "manage/widgets/-bad", widgetId="-bad").status == 400
    invalid = call(
        put_widget, "PUT", "manage/widgets/demo", {"timeLimitMinutes": 0}, widgetId="demo"
    )
    assert invalid.status == 422


def test_storage_down_over_http(host_url: str, own_azurite: Azurite, app_service: App) -> None:
    with httpx.Client(base_url=host_url + "/api", timeout=60) as client:
        assert client.get("health").status_code == 200
        own_azurite.stop()

        for response in (
            client.get("health"),
            client.get("manage/widgets/demo"),
            client.put("manage/widgets/demo", json=SETTINGS),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].split(";")[0] == "application/problem+json"
            assert int(response.headers["retry-after"]) > 0
            assert response.json()["status"] == 503


def test_storage_down_before_first_use(clock: FakeClock, own_azurite: Azurite) -> None:
    """A service whose tables were never created still answers 503, then works once up."""
    built = make_service(own_azurite.connection_string, clock)
    own_azurite.stop()
    set_service(built)
    try:
        built.store._tables_ready = False  # as a fresh process that never reached storage
        assert_unavailable(call(health, "GET", "health"))
        assert_unavailable(get_demo())

        own_azurite.start()

        assert call(health, "GET", "health").status == 200
        created = put_demo()
        assert created.status == 201, created.body
    finally:
        set_service(None)


def test_app_recovers_after_storage_restarts_without_its_tables(
    own_azurite: Azurite, app_service: App
) -> None:
    """An in-memory Azurite restarted loses its tables: the app makes them again by itself."""
    assert put_demo().status == 201
    own_azurite.stop()
    assert_unavailable(call(health, "GET", "health"))

    own_azurite.restart()

    assert call(health, "GET", "health").status == 200
    # The data went with the restart: the widget is unknown, not an error.
    missing = get_demo()
    assert missing.status == 404, missing.body
    created = put_demo()
    assert created.status == 201, created.body
    read = get_demo()
    assert read.status == 200
    assert read.body["portalUrl"] == SETTINGS["portalUrl"]
    assert call(list_widgets, "GET", "manage/widgets").body["value"][0]["widgetId"] == "demo"


@pytest.mark.parametrize("first", ["put", "list", "register"])
def test_first_request_after_restart_recreates_the_tables(
    first: str, own_azurite: Azurite, app_service: App
) -> None:
    """Whatever request comes first after the restart, it succeeds (no 500, no 503)."""
    own_azurite.restart()

    if first == "put":
        answer = put_demo()
        assert answer.status == 201, answer.body
    elif first == "list":
        answer = call(list_widgets, "GET", "manage/widgets")
        assert answer.status == 200, answer.body
        assert answer.body == {"value": [], "nextLink": None}
        assert put_demo().status == 201
    else:
        assert put_demo().status == 201
        answer = call(
            register_conversation,
            "PUT",
            "conversations/c1",
            {"widgetId": "demo", "agentId": "agent-1"},
            conversationId="c1",
        )
        assert answer.status == 201, answer.body
        assert answer.body["state"] == "active"
    assert get_demo().status == 200
