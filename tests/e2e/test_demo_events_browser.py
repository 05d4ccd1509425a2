"""The demo's agent console shows integration events live, in headless Chromium.

The demo plays the chat platform: it takes CloudEvents off the events queue (a real Azurite
queue service) and the console shows each as it arrives. The events here are put on the
queue by the test in the app's format, so the page is tested on its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient
from playwright.sync_api import Page, expect, sync_playwright

from local.app import build_app
from local.azurite import Azurite, AzuriteQueue
from local.demo import DevIssuer, demo_routes
from local.event_feed import EventFeed
from local.queues import queue_client
from local.server import serve_in_thread
from shared.services.app import App
from tests.conftest import fresh_function_app
from tests.e2e.test_widget_browser import CHROMIUM, CHROMIUM_ARGS, ConsoleErrors, screenshot
from tests.local.sample_app import queue_text, sample_event

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def events_queue(azurite_queue: AzuriteQueue) -> Iterator[QueueClient]:
    """This module's events queue; the demo's feed creates it."""
    name = f"conversation-events-{uuid.uuid4().hex[:8]}"
    with queue_client(azurite_queue.connection_string, name) as client:
        yield client


@pytest.fixture(scope="module")
def demo_url(
    azurite: Azurite, azurite_queue: AzuriteQueue, events_queue: QueueClient
) -> Iterator[str]:
    """The local host with the demo page and its dev routes, its feed on ``events_queue``."""
    environ = {**os.environ, "RECONNECT_ENFORCE_SCHEDULE": "0 0 0 1 1 *"}
    feed = EventFeed(queue_client(azurite_queue.connection_string, events_queue.queue_name))
    routes = demo_routes(DevIssuer.generate(), events=feed)
    server = build_app(
        fresh_function_app(), environ, static_dir=REPO / "widget", extra_routes=routes
    )
    with serve_in_thread(server) as url:
        yield url


@pytest.fixture
def page_and_console() -> Iterator[tuple[Page, ConsoleErrors]]:
    """A page in Debian's chromium (as test_widget_browser drives it), with its console errors."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1100}).new_page()
            errors = ConsoleErrors()
            page.on("console", errors.on_console)
            page.on("pageerror", errors.on_page_error)
            yield page, errors
        finally:
            browser.close()


def test_the_console_shows_each_event_as_it_arrives_in_order(
    page_and_console: tuple[Page, ConsoleErrors],
    demo_url: str,
    events_queue: QueueClient,
    service: App,
) -> None:
    page, console = page_and_console
    page.goto(f"{demo_url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    status = page.locator("#events-status")
    expect(status).to_have_text("No events yet.")
    expect(page.locator("#events-queue")).to_have_text(events_queue.queue_name)
    rows = page.locator("#events tr")

    events_queue.send_message(
        queue_text(
            sample_event(
                "c-demo",
                2,
                "customer_disconnected",
                state="active",
                previous="active",
                via="platform",
                time="2026-11-30T12:00:00Z",
            )
        )
    )
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_have_attribute("data-type", "customer_disconnected")

    # The timer ends the conversation: the platform hears the agent's capacity is free.
    events_queue.send_message(
        queue_text(
            sample_event(
                "c-demo",
                3,
                "reconnect_timeout",
                state="wrap_up",
                previous="active",
                via="timer",
                released="agent-1",
                time="2026-11-30T12:01:00Z",
            )
        )
    )
    expect(rows).to_have_count(2)
    last = rows.nth(1)
    cells = last.locator("td")
    expect(cells.nth(0)).to_have_text("3")
    expect(cells.nth(2)).to_have_text("reconnect_timeoutvia timer")
    expect(cells.nth(3)).to_have_text("c-demo")
    expect(cells.nth(4)).to_have_text("active → wrap_up")
    expect(cells.nth(5)).to_have_text("agent-1")
    expect(page.locator("#log")).to_contain_text("c-demo released agent-1's capacity")
    expect(status).to_have_text("2 events received.")
    screenshot(page, "demo-events")
    assert events_queue.peek_messages() == []  # the demo consumed them, as the platform would
    console.assert_none()
