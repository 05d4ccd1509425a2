"""Reconnect IDs stay out of every log line (contract §2.3): the host's access and error lines,
uvicorn's, the app's own loggers and their tracebacks, in this process and in the
``python -m local.host`` process's output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from local.azurite import Azurite
from local.processes import free_port, stop_process_group, wait_for_port
from shared.redaction import REDACTED
from shared.services.app import App

REPO_ROOT = Path(__file__).resolve().parents[2]
PORTAL = "https://contoso.example/chat"
# Loggers that do not pass their records on to the root logger (uvicorn's own).
SEPARATE_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error")


def put_widget(api: httpx.Client, widget_id: str) -> None:
    body = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL}
    assert api.put(f"/manage/widgets/{widget_id}", json=body).status_code == 201


def disconnected(api: httpx.Client, widget_id: str) -> str:
    """A new active conversation whose customer dropped; its reconnect ID."""
    conversation_id = "c-" + uuid.uuid4().hex[:8]
    body = {"widgetId": widget_id, "agentId": "agent-1"}
    assert api.put(f"/conversations/{conversation_id}", json=body).status_code == 201
    event = {"type": "customer_disconnected"}
    answer = api.post(f"/conversations/{conversation_id}/events", json=event)
    assert answer.status_code == 200, answer.text
    return parse_qs(urlsplit(answer.json()["reconnectUrl"]).query)["oc.reconnectid"][0]


def use_links(api: httpx.Client, widget_id: str, first: str, second: str) -> None:
    """Context, continue and decline with real IDs, and the answers that follow."""
    link = f"/widgets/{widget_id}/reconnect/"
    assert api.get(link + first).json()["isReconnectAvailable"] is True
    assert api.post(link + first).status_code == 200
    assert api.post(link + second + "/decline").status_code == 204
    assert api.post(link + second).status_code == 410
    # A broken link: its last character changed (to another one, whatever it was).
    broken = first[:-1] + ("y" if first.endswith("x") else "x")
    assert api.get(link + broken).json()["isReconnectAvailable"] is False


class Capture(logging.Handler):
    """Every record handed to it, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> Iterator[Capture]:
    """All log records of this process: the root logger's and uvicorn's (access log on)."""
    caplog.set_level(logging.DEBUG)
    handler = Capture()
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in SEPARATE_LOGGERS)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_no_log_record_of_the_host_or_the_app_carries_a_link(
    api: httpx.Client,
    service: App,
    capture: Capture,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_widget(api, "logs-w")
    first, second = disconnected(api, "logs-w"), disconnected(api, "logs-w")

    use_links(api, "logs-w", first, second)
    # A bug whose message holds the link: the app logs the traceback, the caller gets a 500.

    def broken() -> Any:
        raise RuntimeError(f"cannot resolve {first}")

    monkeypatch.setattr("shared.api.widget.get_service", broken)
    assert api.get(f"/widgets/logs-w/reconnect/{first}").status_code == 500

    logged = "\n".join([*capture.lines, caplog.text])
    assert first not in logged
    assert second not in logged
    assert f"/reconnect/{REDACTED}/decline" in logged  # the lines are there, redacted
    assert f"RuntimeError: cannot resolve {REDACTED}" in logged
    assert "uvicorn.access INFO 127.0.0.1" in logged  # uvicorn's access lines too


def test_no_line_of_the_host_process_carries_a_link(azurite: Azurite, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "RECONNECT_SIGNING_KEY": "logs-test-signing-key-" + "y" * 32,
        "RECONNECT_ENFORCE_SCHEDULE": "0 0 0 1 1 *",
    }
    log = tmp_path / "host.log"
    with log.open("wb") as out:
        host = subprocess.Popen(
            [sys.executable, "-m", "local.host", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, 60)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base + "/api", trust_env=False, timeout=30) as api:
            widget_id = "logs-" + uuid.uuid4().hex[:8]
            put_widget(api, widget_id)
            first, second = disconnected(api, widget_id), disconnected(api, widget_id)
            use_links(api, widget_id, first, second)
            # The portal page with the link, as a customer opens it (a static file here).
            portal = httpx.get(f"{base}/portal.html?oc.reconnectid={first}", trust_env=False)
            assert portal.status_code == 200
    finally:
        stop_process_group(host, 15)

    output = log.read_text(errors="replace")
    assert first not in output
    assert second not in output
    assert f"/reconnect/{REDACTED}/decline" in output, output
