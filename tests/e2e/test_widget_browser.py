"""The reference widget and the demo in headless Chromium, against the local host over HTTP.

The host runs in this process with its own FunctionApp (the blueprints of function_app.py)
so that each test's `service` fixture, with its movable clock, is the service the handlers
use: "after the time limit" is a clock move, not a wait. The browser's own clock is real,
so the widget's countdown is cosmetic and never asserted. Each test saves a screenshot
under tests/e2e/artifacts/ and checks that the page logged no console errors.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect, sync_playwright

from local.app import build_app
from local.azurite import Azurite
from local.demo import DevIssuer, demo_routes
from local.event_feed import EventFeed
from local.server import serve_in_thread
from shared.domain.auth import customer_id_from_token
from shared.domain.settings import Authentication, PublicKey
from shared.services.app import App
from tests.conftest import FakeClock, fresh_function_app

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AGENT = "agent-7"
TIME_LIMIT = 5
# Generous: a cold Chromium on a busy CI machine; Playwright polls, so passing tests are fast.
expect.set_options(timeout=15_000)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def issuer() -> DevIssuer:
    return DevIssuer.generate()


@pytest.fixture(scope="module")
def base_url(azurite: Azurite, issuer: DevIssuer) -> Iterator[str]:
    """The local host with the widget folder at / and the dev routes, like `make dev`."""
    app = fresh_function_app()
    # The timer never fires on its own here: tests decide what the clock says.
    environ = {**os.environ, "RECONNECT_ENFORCE_SCHEDULE": "0 0 0 1 1 *"}
    # The demo's event stream has a test of its own (test_demo_events_browser.py).
    routes = demo_routes(issuer, events=EventFeed.off())
    server = build_app(app, environ, static_dir=REPO / "widget", extra_routes=routes)
    with serve_in_thread(server) as url:
        yield url


@pytest.fixture
def backend(base_url: str, service: App) -> Iterator[httpx.Client]:
    """The platform and admin APIs, bound to this test's service (fresh tables, fake clock)."""
    with httpx.Client(base_url=base_url + "/api", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright (never Playwright's own browser download)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ConsoleErrors:
    """Console errors and uncaught exceptions of a page (all its frames)."""

    seen: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console.error: {message.text} at {message.location.get('url')}")

    def on_page_error(self, error: Error) -> None:
        self.seen.append(f"uncaught: {error.message}")

    def assert_none(self, *expected: str) -> None:
        """No errors, except ones matching an ``expected`` regex (e.g. a deliberate 401)."""
        unexpected = [
            entry for entry in self.seen if not any(re.search(p, entry) for p in expected)
        ]
        assert unexpected == []


@pytest.fixture
def browser_page(chromium: Browser) -> Iterator[tuple[Page, ConsoleErrors]]:
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors = ConsoleErrors()
    page.on("console", errors.on_console)
    page.on("pageerror", errors.on_page_error)
    try:
        yield page, errors
    finally:
        context.close()


@pytest.fixture
def page(browser_page: tuple[Page, ConsoleErrors]) -> Page:
    return browser_page[0]


@pytest.fixture
def console(browser_page: tuple[Page, ConsoleErrors]) -> ConsoleErrors:
    return browser_page[1]


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # sticky panels sit where a reader expects them
    page.screenshot(path=path, full_page=True)
    return path


# ------------------------------------------------------------------------------ helpers


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def put_widget(
    backend: httpx.Client,
    base_url: str,
    *,
    redirect: bool = False,
    issuer: DevIssuer | None = None,
    portal_query: str = "",
) -> str:
    """A widget with reconnection on; its portal is the demo portal (told the widget id)."""
    widget_id = new_id("w")
    body: dict[str, Any] = {
        "reconnectEnabled": True,
        "timeLimitMinutes": TIME_LIMIT,
        "portalUrl": f"{base_url}/portal.html?widget={widget_id}{portal_query}",
        "redirectUrl": f"{base_url}/expired.html" if redirect else "",
    }
    if issuer is not None:
        body["authentication"] = {
            "issuer": issuer.issuer,
            "publicKeys": [{"kid": issuer.kid, "pem": issuer.public_pem}],
        }
    answer = backend.put(f"/manage/widgets/{widget_id}", json=body)
    assert answer.status_code == 201, answer.text
    return widget_id


def disconnected_conversation(
    backend: httpx.Client, widget_id: str, customer: str | None = None
) -> dict[str, Any]:
    """An active conversation with AGENT whose customer has just dropped."""
    conversation_id = new_id("c")
    body = {"widgetId": widget_id, "agentId": AGENT}
    if customer is not None:
        body["customerId"] = customer
    registered = backend.put(f"/conversations/{conversation_id}", json=body)
    assert registered.status_code == 201, registered.text
    dropped = backend.post(
        f"/conversations/{conversation_id}/events", json={"type": "customer_disconnected"}
    )
    assert dropped.status_code == 200, dropped.text
    conversation: dict[str, Any] = dropped.json()
    assert conversation["customerConnected"] is False
    assert conversation["reconnectUrl"]
    return conversation


def conversation(backend: httpx.Client, conversation_id: str) -> dict[str, Any]:
    answer = backend.get(f"/conversations/{conversation_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def held(backend: httpx.Client) -> int:
    answer = backend.get(f"/agents/{AGENT}/capacity")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["held"])


# A deliberate failure still makes Chromium log the failed request as a console error.
FAILED_WITH_401 = r"Failed to load resource: the server responded with a status of 401"
FAILED_NETWORK = r"Failed to load resource: net::ERR_FAILED"


# ------------------------------------------------------------------------ reconnect link


def test_link_continues_the_conversation(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str
) -> None:
    widget_id = put_widget(backend, base_url)
    dropped = disconnected_conversation(backend, widget_id)
    link = dropped["reconnectUrl"]
    assert link.startswith(f"{base_url}/portal.html?widget={widget_id}&oc.reconnectid=")

    page.goto(link)

    pane = page.get_by_role("region", name="Reconnected to your conversation")
    expect(pane).to_be_visible()
    expect(pane).to_contain_text(AGENT)
    expect(pane).to_contain_text(dropped["conversationId"])
    expect(pane).to_be_focused()
    expect(page.get_by_role("alert")).to_have_text("")
    # The link is a credential: gone from the address bar (and history) once read.
    assert page.url == f"{base_url}/portal.html?widget={widget_id}"
    screenshot(page, "link-continued")
    after = conversation(backend, dropped["conversationId"])
    assert after["state"] == "active"
    assert after["customerConnected"] is True
    assert after["reconnectDeadline"] is None
    console.assert_none()


def test_link_after_the_agent_closed_the_window_continues_without_the_same_agent(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str
) -> None:
    widget_id = put_widget(backend, base_url)
    dropped = disconnected_conversation(backend, widget_id)
    closed = backend.post(
        f"/conversations/{dropped['conversationId']}/events", json={"type": "agent_closed"}
    )
    assert closed.json()["state"] == "open"

    page.goto(dropped["reconnectUrl"])

    pane = page.get_by_role("region", name="Reconnected to your conversation")
    expect(pane).to_contain_text("Your previous agent is no longer available")
    expect(pane).not_to_contain_text(AGENT)
    screenshot(page, "link-continued-other-agent")
    after = conversation(backend, dropped["conversationId"])
    assert (after["state"], after["agentId"], after["customerConnected"]) == ("open", None, True)
    console.assert_none()


def test_link_after_the_time_limit_lands_on_the_redirect_url(
    page: Page,
    console: ConsoleErrors,
    backend: httpx.Client,
    base_url: str,
    clock: FakeClock,
) -> None:
    widget_id = put_widget(backend, base_url, redirect=True)
    dropped = disconnected_conversation(backend, widget_id)
    clock.advance(minutes=TIME_LIMIT, seconds=1)

    page.goto(dropped["reconnectUrl"])

    page.wait_for_url(f"{base_url}/expired.html")
    expect(page.get_by_role("heading", name="Your previous chat has ended")).to_be_visible()
    screenshot(page, "link-expired-redirect")
    assert conversation(backend, dropped["conversationId"])["customerConnected"] is False
    console.assert_none()


def test_link_after_the_time_limit_without_redirect_offers_a_new_conversation(
    page: Page,
    console: ConsoleErrors,
    backend: httpx.Client,
    base_url: str,
    clock: FakeClock,
) -> None:
    widget_id = put_widget(backend, base_url)
    dropped = disconnected_conversation(backend, widget_id)
    clock.advance(minutes=TIME_LIMIT, seconds=1)

    page.goto(dropped["reconnectUrl"])

    offer = page.get_by_role("region", name="Start a new conversation")
    expect(offer).to_be_visible()
    expect(offer).to_contain_text("can no longer be continued")
    expect(offer).to_be_focused()
    start = offer.get_by_role("button", name="Start a new conversation")
    screenshot(page, "link-expired-new-conversation")
    start.click()
    expect(page.get_by_text("Starting a new conversation…")).to_be_visible()
    # No redirect configured: the customer stays, on the page without the link.
    assert page.url == f"{base_url}/portal.html?widget={widget_id}"
    console.assert_none()


# Hand-edited or mangled links: whatever the page's oc.reconnectid holds, the customer gets
# the redirect or the new-conversation offer, never an error.
MALFORMED_LINKS = {
    "script": "<script>alert(1)</script>",
    "slashes": "../../manage/widgets/x",
    "dot-dot": "..",
    "percent-00": "%00",
    "unicode": "\u00e9\u4e2d\U0001f600",
    "ten-thousand": "x" * 10_000,
}


@pytest.mark.parametrize("name", list(MALFORMED_LINKS))
def test_a_malformed_link_offers_a_new_conversation(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str, name: str
) -> None:
    widget_id = put_widget(backend, base_url)
    portal = f"{base_url}/portal.html?widget={widget_id}"

    page.goto(f"{portal}&oc.reconnectid={quote(MALFORMED_LINKS[name], safe='')}")

    offer = page.get_by_role("region", name="Start a new conversation")
    expect(offer).to_be_visible()
    expect(offer).to_contain_text("can no longer be continued")
    expect(page.get_by_role("alert")).to_have_text("")
    assert page.url == portal
    console.assert_none()


def test_a_malformed_link_lands_on_the_redirect_url(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str
) -> None:
    widget_id = put_widget(backend, base_url, redirect=True)
    link = quote("<script>alert(1)</script>", safe="")

    page.goto(f"{base_url}/portal.html?widget={widget_id}&oc.reconnectid={link}")

    page.wait_for_url(f"{base_url}/expired.html")
    console.assert_none()


# -------------------------------------------------------------- authenticated prompt


def test_authenticated_prompt_then_continue_with_the_keyboard(
    page: Page,
    console: ConsoleErrors,
    backend: httpx.Client,
    base_url: str,
    issuer: DevIssuer,
) -> None:
    widget_id = put_widget(backend, base_url, issuer=issuer)
    dropped = disconnected_conversation(backend, widget_id, customer="alice")

    page.goto(f"{base_url}/portal.html?widget={widget_id}&customer=alice")

    prompt = page.get_by_role("region", name="Previous session detected")
    expect(prompt).to_be_visible()
    expect(prompt).to_be_focused()
    expect(prompt).to_contain_text("Time left to reconnect:")
    expect(prompt.get_by_role("button", name="Continue conversation")).to_be_visible()
    expect(prompt.get_by_role("button", name="Start new conversation")).to_be_visible()
    expect(page.locator("[aria-live='polite']")).to_contain_text("Previous session detected")
    screenshot(page, "auth-prompt")

    page.keyboard.press("Tab")
    expect(prompt.get_by_role("button", name="Continue conversation")).to_be_focused()
    page.keyboard.press("Enter")

    pane = page.get_by_role("region", name="Reconnected to your conversation")
    expect(pane).to_be_visible()
    expect(pane).to_contain_text(AGENT)
    expect(page.locator("[aria-live='polite']")).to_have_text("Reconnected to your conversation.")
    screenshot(page, "auth-prompt-continued")
    after = conversation(backend, dropped["conversationId"])
    assert after["customerConnected"] is True
    assert after["state"] == "active"
    console.assert_none()


def test_authenticated_prompt_then_start_new_ends_the_old_conversation(
    page: Page,
    console: ConsoleErrors,
    backend: httpx.Client,
    base_url: str,
    issuer: DevIssuer,
) -> None:
    widget_id = put_widget(backend, base_url, issuer=issuer)
    dropped = disconnected_conversation(backend, widget_id, customer="bob")
    assert held(backend) == 1

    page.goto(f"{base_url}/portal.html?widget={widget_id}&customer=bob")
    prompt = page.get_by_role("region", name="Previous session detected")
    prompt.get_by_role("button", name="Start new conversation").click()

    expect(page.get_by_text("Starting a new conversation…")).to_be_visible()
    screenshot(page, "auth-prompt-start-new")
    ended = conversation(backend, dropped["conversationId"])
    assert (ended["state"], ended["endReason"]) == ("wrap_up", "customer_declined")
    assert held(backend) == 0
    console.assert_none()


def test_prompt_is_only_for_the_signed_in_customer(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str, issuer: DevIssuer
) -> None:
    widget_id = put_widget(backend, base_url, issuer=issuer)
    disconnected_conversation(backend, widget_id, customer="alice")

    page.goto(f"{base_url}/portal.html?widget={widget_id}&customer=mallory")

    expect(page.get_by_role("region", name="Need help?")).to_be_visible()
    expect(page.get_by_role("button", name="Start a new conversation")).to_be_visible()
    expect(page.get_by_role("region", name="Previous session detected")).to_have_count(0)
    console.assert_none()


def test_a_rejected_token_shows_a_visible_error(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str, issuer: DevIssuer
) -> None:
    widget_id = put_widget(backend, base_url, issuer=issuer)
    disconnected_conversation(backend, widget_id, customer="alice")

    page.goto(f"{base_url}/portal.html?widget={widget_id}&customer=alice&token=tampered")

    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("couldn't confirm your sign-in")
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    expect(page.get_by_role("region", name="Previous session detected")).to_have_count(0)
    screenshot(page, "auth-401-error")
    console.assert_none(FAILED_WITH_401)


def test_a_network_error_shows_a_message_and_try_again_recovers(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str, issuer: DevIssuer
) -> None:
    widget_id = put_widget(backend, base_url, issuer=issuer)
    disconnected_conversation(backend, widget_id, customer="alice")
    page.route("**/api/widgets/*/reconnectable", lambda route: route.abort())

    page.goto(f"{base_url}/portal.html?widget={widget_id}&customer=alice")

    expect(page.get_by_role("alert")).to_contain_text("can't reach the chat service")
    screenshot(page, "network-error")
    page.unroute("**/api/widgets/*/reconnectable")
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("region", name="Previous session detected")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("")
    console.assert_none(FAILED_NETWORK)


# --------------------------------------------------------------------------------- demo


def test_demo_link_path_from_the_agent_console(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str
) -> None:
    page.goto(f"{base_url}/")
    expect(page.get_by_role("heading", name="Agent console")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    customer = page.frame_locator("#customer-frame")
    expect(customer.get_by_role("button", name="Start a new conversation")).to_be_visible()
    state = page.locator("[data-field='state']")
    connected = page.locator("[data-field='customerConnected']")

    page.get_by_role("button", name="Start conversation").click()
    expect(state).to_have_text("active")
    expect(customer.get_by_role("region", name="Conversation started")).to_contain_text("agent-1")
    page.get_by_role("button", name="Customer disconnects").click()
    expect(connected).to_have_text("no")
    expect(customer.get_by_text("The customer's tab is closed.")).to_be_visible()
    page.get_by_role("button", name="Send quick reply").click()
    expect(page.locator("#quick-reply-output")).to_contain_text("oc.reconnectid=")
    page.get_by_role("button", name="Open in customer's browser").click()

    expect(customer.get_by_role("region", name="Reconnected to your conversation")).to_be_visible()
    expect(connected).to_have_text("yes")
    expect(page.locator("[data-field='capacity']")).to_contain_text("1")
    screenshot(page, "demo-link-continued")
    page.get_by_role("button", name="End (agent)").click()
    expect(state).to_have_text("wrap_up")
    expect(page.locator("[data-field='endReason']")).to_have_text("agent_ended")
    expect(page.locator("[data-field='capacity']")).to_have_text("0")
    console.assert_none()


def test_demo_authenticated_prompt_from_the_agent_console(
    page: Page, console: ConsoleErrors, backend: httpx.Client, base_url: str
) -> None:
    page.goto(f"{base_url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.get_by_label("Authenticated widget").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").first).to_contain_text("authenticated")
    customer = page.frame_locator("#customer-frame")
    state = page.locator("[data-field='state']")

    page.get_by_role("button", name="Start conversation").click()
    expect(state).to_have_text("active")
    first = page.locator("[data-field='conversationId']").inner_text()
    page.get_by_role("button", name="Customer disconnects").click()
    expect(page.locator("[data-field='customerConnected']")).to_have_text("no")
    page.get_by_role("button", name="Open portal").click()

    prompt = customer.get_by_role("region", name="Previous session detected")
    expect(prompt).to_be_visible()
    expect(customer.get_by_text("Signed in as alice")).to_be_visible()
    screenshot(page, "demo-auth-prompt")
    prompt.get_by_role("button", name="Start new conversation").click()

    expect(customer.get_by_role("region", name="Conversation started")).to_be_visible()
    expect(page.locator("#log")).to_contain_text(f"declined {first}: wrap_up (customer_declined)")
    expect(page.locator("[data-field='conversationId']")).not_to_have_text(first)
    expect(state).to_have_text("active")
    ended = conversation(backend, first)
    assert (ended["state"], ended["endReason"]) == ("wrap_up", "customer_declined")
    screenshot(page, "demo-auth-start-new")
    console.assert_none()


def test_dev_token_issuer_signs_tokens_the_widget_settings_accept(
    base_url: str, issuer: DevIssuer
) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        described = client.get("/dev/issuer").json()
        assert (described["issuer"], described["kid"]) == (issuer.issuer, issuer.kid)
        assert described["pem"].startswith("-----BEGIN PUBLIC KEY-----")
        issued = client.post("/dev/token", json={"sub": "alice"})
        assert issued.status_code == 200
        for bad in (b"{}", b'{"sub": ""}', b"not json", b'["alice"]'):
            refused = client.post("/dev/token", content=bad)
            assert refused.status_code == 400, bad
    token = issued.json()["token"]
    authentication = Authentication(
        issuer=issuer.issuer,
        audience=None,
        public_keys=(PublicKey(kid=issuer.kid, pem=described["pem"]),),
    )
    assert customer_id_from_token(token, authentication) == "alice"
