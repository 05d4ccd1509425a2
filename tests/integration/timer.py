"""What the timer's integration tests share: a widget with a short time limit, conversations
set up through the HTTP contract or the app's use cases, and direct reads of the index
tables.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from azure.data.tables import TableClient

from local.azurite import Azurite
from shared.config import DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES
from shared.domain.conversation import Conversation, Event, EventType
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.enforcement import EnforcementReport
from tests.conftest import START, FakeClock

WIDGET = "w-timer"


AGENT = "agent-1"


PORTAL = "https://contoso.example/support"


REDIRECT = "https://contoso.example/new-chat"


LIMIT_MINUTES = 10


LIMIT = timedelta(minutes=LIMIT_MINUTES)


# Disconnects happen mid-minute so that "one second before" and "one second after" the
# deadline fall into the same minute bucket as the deadline itself.
DISCONNECT_AT = START + timedelta(seconds=30)


DEADLINE = DISCONNECT_AT + LIMIT


AUTO_CLOSE = timedelta(minutes=DEFAULT_WRAP_UP_AUTO_CLOSE_MINUTES)


def put_widget(api: httpx.Client, widget_id: str = WIDGET, minutes: int = LIMIT_MINUTES) -> None:
    answer = api.put(
        f"/manage/widgets/{widget_id}",
        json={
            "reconnectEnabled": True,
            "timeLimitMinutes": minutes,
            "portalUrl": PORTAL,
            "redirectUrl": REDIRECT,
        },
    )
    assert answer.status_code == 201, answer.text


def register(api: httpx.Client, conversation_id: str, agent_id: str | None = AGENT) -> None:
    body: dict[str, Any] = {"widgetId": WIDGET}
    if agent_id is not None:
        body["agentId"] = agent_id
    answer = api.put(f"/conversations/{conversation_id}", json=body)
    assert answer.status_code == 201, answer.text


def send(api: httpx.Client, conversation_id: str, event_type: str) -> dict[str, Any]:
    answer = api.post(f"/conversations/{conversation_id}/events", json={"type": event_type})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def conversation(api: httpx.Client, conversation_id: str) -> dict[str, Any]:
    answer = api.get(f"/conversations/{conversation_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def reconnect_id(api: httpx.Client, conversation_id: str) -> str:
    url = conversation(api, conversation_id)["reconnectUrl"]
    assert url is not None
    return parse_qs(urlsplit(url).query)["oc.reconnectid"][0]


def held(api: httpx.Client, agent_id: str = AGENT) -> list[str]:
    answer = api.get(f"/agents/{agent_id}/capacity")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["held"] == len(body["conversations"])
    return sorted(item["conversationId"] for item in body["conversations"])


def table_rows(azurite: Azurite, service: App, table: str) -> set[tuple[str, str]]:
    """(PartitionKey, RowKey) of every row of one of the service's tables, read directly."""
    (name,) = [name for name in service.store.table_names if name.endswith(table)]
    with TableClient.from_connection_string(azurite.connection_string, name) as client:
        return {(row["PartitionKey"], row["RowKey"]) for row in client.list_entities()}


def due_rows(azurite: Azurite, service: App) -> set[tuple[str, str]]:
    return table_rows(azurite, service, "due")


def capacity_rows(azurite: Azurite, service: App) -> set[tuple[str, str]]:
    return table_rows(azurite, service, "capacity")


def disconnected_conversation(
    api: httpx.Client, clock: FakeClock, conversation_id: str, agent_id: str = AGENT
) -> None:
    """An active conversation whose customer dropped at DISCONNECT_AT (deadline: DEADLINE)."""
    clock.now = START
    register(api, conversation_id, agent_id)
    clock.now = DISCONNECT_AT
    body = send(api, conversation_id, "customer_disconnected")
    assert body["state"] == "active"
    assert body["customerConnected"] is False
    assert body["reconnectDeadline"] == DEADLINE.strftime("%Y-%m-%dT%H:%M:%SZ")


def bulk_disconnected(service: App, clock: FakeClock, ids: list[str]) -> None:
    """Many disconnected conversations through the service's use cases (faster than HTTP)."""
    clock.now = START
    service.settings.put_widget(WidgetSettings(WIDGET, True, LIMIT_MINUTES, PORTAL))

    def one(conversation_id: str) -> None:
        service.conversations.register(conversation_id, WIDGET, AGENT, None)

    def drop(conversation_id: str) -> None:
        service.conversations.apply_event(
            conversation_id, Event(EventType.CUSTOMER_DISCONNECTED), None
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, ids))
        clock.now = DISCONNECT_AT
        list(pool.map(drop, ids))


def quiet(report: EnforcementReport) -> bool:
    """True when a run found nothing to do."""
    return (
        report.expired,
        report.closed,
        report.stale,
        report.pending,
        report.errors,
        report.capacity_released,
    ) == (0, 0, 0, 0, 0, 0)


def stored(service: App, conversation_id: str) -> Conversation:
    """The conversation as stored (the source of truth), read directly."""
    found = service.store.get_conversation(conversation_id)
    assert found is not None, conversation_id
    return found.value


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
