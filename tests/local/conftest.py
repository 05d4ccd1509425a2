"""The sample app behind a real uvicorn server, shared by the router's and the timers' tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from local.app import build_app
from local.server import serve_in_thread
from tests.local.sample_app import EVERY_SECOND, Calls, make_app


@pytest.fixture(scope="module")
def calls() -> Calls:
    return Calls()


@pytest.fixture(scope="module")
def client(calls: Calls) -> Iterator[httpx.Client]:
    """The sample app behind a real uvicorn server on a free port, over real HTTP."""
    app = build_app(make_app(calls), environ={"SAMPLE_SCHEDULE": EVERY_SECOND})
    with (
        serve_in_thread(app) as base_url,
        httpx.Client(base_url=base_url, trust_env=False, timeout=10) as http,
    ):
        yield http
