"""Shared fixtures: a real Azurite per session, a movable clock, per-test tables, helpers."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.data.tables import TableServiceClient
from cryptography.hazmat.primitives.asymmetric import rsa

from local.azurite import Azurite, AzuriteQueue

# The settings module reads these once; set them before anything imports the app.
os.environ.setdefault("RECONNECT_ENFORCE_SCHEDULE", "*/30 * * * * *")
os.environ.setdefault("RECONNECT_SIGNING_KEY", "test-signing-key-" + "x" * 32)
# The Omnichannel chat SDK routes answer only to this org id (tests/e2e/test_omnichannel_sdk.py).
os.environ.setdefault("OMNICHANNEL_ORG_ID", "6a0e4a62-0b4e-4c35-8f7e-3f1c2f0b9c11")

from shared.domain.links import LinkSigner
from shared.services.app import App
from shared.services.outbox import EventQueues
from shared.services.widget_cache import DEFAULT_MAX_AGE
from shared.storage.store import TableStore
from shared.wiring import STORAGE_CLIENT_OPTIONS, set_service
from tests.keys import new_rsa_key

SIGNING_KEY = b"test-signing-key-0123456789abcdef0123456789"
OMNICHANNEL_ORG_ID = os.environ["OMNICHANNEL_ORG_ID"]
START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A clock tests move by hand instead of sleeping; whole seconds, UTC."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite table service for the whole session (in memory, free port)."""
    server = Azurite().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite_queue() -> Iterator[AzuriteQueue]:
    """A real Azurite queue service for the whole session (in memory, free port)."""
    server = AzuriteQueue().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def key1() -> rsa.RSAPrivateKey:
    """The first RSA key a customer-token issuer signs with (made in the test run)."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def key2() -> rsa.RSAPrivateKey:
    """A second issuer key, as during a key rotation."""
    return new_rsa_key()


@pytest.fixture(scope="session")
def stranger_key() -> rsa.RSAPrivateKey:
    """A key no widget lists."""
    return new_rsa_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fresh_function_app() -> func.FunctionApp:
    """A new app wired like function_app.py, for hosts of a test's own.

    function_app.app may list its functions only once (the session host does), so other
    hosts and metadata tests build this twin; test_function_metadata keeps it honest.
    """
    from shared.api import events, manage, omnichannel, ops, platform, timers, widget

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    for blueprint in (
        ops.bp,
        manage.bp,
        platform.bp,
        widget.bp,
        omnichannel.bp,
        timers.bp,
        events.bp,
    ):
        app.register_functions(blueprint)
    return app


def make_service(
    connection_string: str,
    clock: Callable[[], datetime],
    *,
    auto_close_minutes: int = 15,
    events: EventQueues | None = None,
    widget_cache_max_age: timedelta = DEFAULT_MAX_AGE,
    **client_options: Any,
) -> App:
    """A service on fresh, uniquely prefixed tables of the given storage account (widget
    settings cached as in the app's default, unless told); with integration events when
    given their queues (tests/integration/events.py)."""
    options = {**STORAGE_CLIENT_OPTIONS, **client_options}
    client = TableServiceClient.from_connection_string(connection_string, **options)
    store = TableStore(client, table_prefix="t" + uuid.uuid4().hex[:12])
    store.ensure_tables()
    return App(
        store,
        LinkSigner(SIGNING_KEY),
        auto_close_after=timedelta(minutes=auto_close_minutes),
        clock=clock,
        events=events,
        widget_cache_max_age=widget_cache_max_age,
    )


@pytest.fixture
def service(azurite: Azurite, clock: FakeClock) -> Iterator[App]:
    """The app's service on its own tables, installed as the process-wide service."""
    built = make_service(azurite.connection_string, clock)
    set_service(built)
    try:
        yield built
    finally:
        set_service(None)


def http_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    content_type: str | None = "application/json",
) -> func.HttpRequest:
    """A real azure.functions.HttpRequest, as the Functions host would build it."""
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    all_headers = dict(headers or {})
    if raw and content_type:
        all_headers.setdefault("content-type", content_type)
    return func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{path.lstrip('/')}",
        headers=all_headers,
        params=params or {},
        route_params=route_params or {},
        body=raw,
    )


@dataclass
class Answer:
    """A handler's response, decoded for assertions."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0]


def decode(response: func.HttpResponse) -> Answer:
    raw = response.get_body()
    headers = {key.lower(): value for key, value in response.headers.items()}
    if response.mimetype:
        headers.setdefault("content-type", response.mimetype)
    return Answer(response.status_code, headers, json.loads(raw) if raw else None)


@pytest.fixture(scope="session")
def host_url(azurite: Azurite) -> Iterator[str]:
    """The local host serving function_app's functions over real HTTP, in this process.

    In-process so that each test's `service` fixture (with its movable clock) is the
    service the handlers use.
    """
    from function_app import app
    from local.app import build_app
    from local.server import serve_in_thread

    environ = {**os.environ, "RECONNECT_ENFORCE_SCHEDULE": "0 0 0 1 1 *"}
    with serve_in_thread(build_app(app, environ)) as url:
        yield url


@pytest.fixture
def api(host_url: str, service: App) -> Iterator[httpx.Client]:
    """An HTTP client of the local host, bound to this test's service and clock."""
    with httpx.Client(base_url=host_url + "/api", timeout=30) as client:
        yield client
