"""End to end: the local host runs the timer on a real 5-second schedule and a 1-minute
time limit ends in wrap_up within the deadline plus one schedule period (issue 4).

The only test that waits in real time (about 65 s): the deadline is a minute away and the
schedule is the host's own. Everything else about the timer is tested with a moved clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

import shared.wiring
from local.app import build_app
from local.azurite import Azurite
from local.server import serve_in_thread
from shared.services.app import App
from shared.services.clock import utc_now
from shared.wiring import set_service
from tests.conftest import fresh_function_app, make_service

SCHEDULE = "*/5 * * * * *"
PERIOD = timedelta(seconds=5)
# A run starts on the schedule and stamps updatedAt with its own clock (whole seconds);
# the margin covers the scheduler waking late and the run's own reads on a busy machine.
MARGIN = timedelta(seconds=3)
TIME_LIMIT = timedelta(minutes=1)
POLL_BUDGET = TIME_LIMIT + PERIOD + timedelta(seconds=10)
POLL_INTERVAL = 0.5


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def real_time_service(azurite: Azurite) -> Iterator[App]:
    """A service with the real clock on fresh tables, installed for the handlers."""
    previous = shared.wiring._service
    built = make_service(azurite.connection_string, utc_now)
    set_service(built)
    try:
        yield built
    finally:
        set_service(previous)


@pytest.fixture
def scheduled_host(real_time_service: App) -> Iterator[httpx.Client]:
    """A local host over a fresh FunctionApp with the product's blueprints, timer every 5 s."""
    app = fresh_function_app()
    environ = {**os.environ, "RECONNECT_ENFORCE_SCHEDULE": SCHEDULE}
    starlette_app = build_app(app, environ)
    assert [timer.schedule for timer in starlette_app.state.functions.timers] == [SCHEDULE]
    with (
        serve_in_thread(starlette_app) as url,
        httpx.Client(base_url=url + "/api", timeout=30) as client,
    ):
        yield client


def test_a_one_minute_time_limit_ends_in_wrap_up_within_one_schedule_period(
    scheduled_host: httpx.Client,
) -> None:
    api = scheduled_host
    settings = {
        "reconnectEnabled": True,
        "timeLimitMinutes": 1,
        "portalUrl": "https://contoso.example/support",
    }
    assert api.put("/manage/widgets/w-e2e-timer", json=settings).status_code == 201
    registered = api.put(
        "/conversations/c-e2e-timer", json={"widgetId": "w-e2e-timer", "agentId": "agent-e2e"}
    )
    assert registered.status_code == 201, registered.text
    dropped = api.post("/conversations/c-e2e-timer/events", json={"type": "customer_disconnected"})
    assert dropped.status_code == 200, dropped.text
    deadline = parse_utc(dropped.json()["reconnectDeadline"])
    disconnected_at = parse_utc(dropped.json()["disconnectedAt"])
    assert deadline - disconnected_at == TIME_LIMIT
    assert api.get("/agents/agent-e2e/capacity").json()["held"] == 1

    # Bounded polling: the deadline, one schedule period, and a margin for a slow machine.
    give_up = time.monotonic() + POLL_BUDGET.total_seconds()
    current = api.get("/conversations/c-e2e-timer").json()
    while current["state"] != "wrap_up" and time.monotonic() < give_up:
        time.sleep(POLL_INTERVAL)
        current = api.get("/conversations/c-e2e-timer").json()

    assert current["state"] == "wrap_up", current
    assert current["endReason"] == "reconnect_timeout"
    assert current["reconnectDeadline"] is None
    ended_at = parse_utc(current["updatedAt"])
    assert deadline <= ended_at <= deadline + PERIOD + MARGIN
    assert api.get("/agents/agent-e2e/capacity").json()["held"] == 0
