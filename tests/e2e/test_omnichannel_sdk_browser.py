"""The demo's SDK page (widget/sdk.html): Microsoft's Omnichannel chat SDK, bundled from
node_modules by the local host, reconnects against this service in headless Chromium.

The cross-origin case loads the page from http://localhost:<port> and points the SDK's
orgUrl at http://127.0.0.1:<port>/api, so every SDK call is a real CORS request from the
widget's portal origin, with the SDK's own headers and preflights.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from local.demo import DevIssuer
from shared.services.app import App
from tests.conftest import FakeClock
from tests.e2e.test_widget_browser import (  # the same host, browser and helpers
    AGENT,
    TIME_LIMIT,
    ConsoleErrors,
    backend,
    base_url,
    browser_page,
    chromium,
    console,
    conversation,
    disconnected_conversation,
    issuer,
    new_id,
    page,
    screenshot,
)

pytestmark = pytest.mark.browser

__all__ = ["backend", "base_url", "browser_page", "chromium", "console", "issuer", "page"]


def sdk_widget(
    backend: httpx.Client, portal_origin: str, *, redirect: str = "", auth: DevIssuer | None = None
) -> str:
    """A widget whose portal is the demo's SDK page on `portal_origin`."""
    widget_id = new_id("w")
    body: dict[str, Any] = {
        "reconnectEnabled": True,
        "timeLimitMinutes": TIME_LIMIT,
        "portalUrl": f"{portal_origin}/sdk.html?widget={widget_id}",
        "redirectUrl": redirect,
    }
    if auth is not None:
        body["authentication"] = {
            "issuer": auth.issuer,
            "publicKeys": [{"kid": auth.kid, "pem": auth.public_pem}],
        }
    answer = backend.put(f"/manage/widgets/{widget_id}", json=body)
    assert answer.status_code == 201, answer.text
    return widget_id


def link_of(conversation: dict[str, Any]) -> str:
    return str(parse_qs(urlsplit(conversation["reconnectUrl"]).query)["oc.reconnectid"][0])


def test_the_sdk_page_follows_a_reconnect_link_and_continues(
    base_url: str,
    backend: httpx.Client,
    service: App,
    page: Page,
    console: ConsoleErrors,
) -> None:
    widget_id = sdk_widget(backend, base_url)
    dropped = disconnected_conversation(backend, widget_id)

    page.goto(dropped["reconnectUrl"])

    expect(page.locator("#sdk-status")).to_have_text("Previous conversation found.")
    assert "oc.reconnectid" not in page.url
    assert link_of(dropped) in page.locator("#sdk-context").inner_text()
    expect(page.locator("#sdk-version")).to_have_text("1.11.8")
    page.get_by_role("button", name="Continue conversation").click()
    expect(page.locator("#sdk-status")).to_have_text(
        f"Reconnected to your conversation with {AGENT}."
    )
    screenshot(page, "sdk-reconnected")
    assert conversation(backend, dropped["conversationId"])["customerConnected"] is True
    console.assert_none()


def test_the_sdk_page_sends_an_expired_link_to_the_redirect_url(
    base_url: str,
    backend: httpx.Client,
    service: App,
    clock: FakeClock,
    page: Page,
    console: ConsoleErrors,
) -> None:
    widget_id = sdk_widget(backend, base_url, redirect=f"{base_url}/expired.html")
    dropped = disconnected_conversation(backend, widget_id)
    clock.advance(minutes=TIME_LIMIT, seconds=1)

    page.goto(dropped["reconnectUrl"])

    expect(page.locator("#sdk-status")).to_have_text("This chat link has expired.")
    expect(page.locator("#sdk-action a")).to_have_attribute("href", f"{base_url}/expired.html")
    screenshot(page, "sdk-expired")
    console.assert_none()


def test_the_sdk_page_on_the_portal_origin_gets_the_prompt_across_origins(
    base_url: str,
    backend: httpx.Client,
    service: App,
    issuer: DevIssuer,
    page: Page,
    console: ConsoleErrors,
) -> None:
    portal_origin = base_url.replace("127.0.0.1", "localhost")
    widget_id = sdk_widget(backend, portal_origin, auth=issuer)
    dropped = disconnected_conversation(backend, widget_id, "alice")

    page.goto(f"{portal_origin}/sdk.html?widget={widget_id}&customer=alice&orgUrl={base_url}/api")

    expect(page.locator("#sdk-status")).to_have_text("Previous conversation found.")
    assert dropped["conversationId"] in page.locator("#sdk-context").inner_text()
    screenshot(page, "sdk-prompt-cross-origin")
    console.assert_none()
