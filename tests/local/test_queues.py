"""Queue-triggered functions: polled, Base64-decoded, called, deleted, retried, poisoned.

The sample app's queue functions run in a real local host (uvicorn in a thread) against
the session's real Azurite queue service; messages are put and read with the Azure SDK.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient

from local.app import build_app
from local.azurite import DEFAULT_QUEUE_PORT, AzuriteQueue
from local.errors import HostError
from local.loader import load_functions
from local.queues import (
    QueueSettings,
    next_poll_delay,
    parse_timespan,
    queue_client,
    read_queue_settings,
    receive_batch,
)
from local.routes import HOST_JSON
from local.server import serve_in_thread
from tests.local.sample_app import FAIL, SLOW, QueueCalls, make_queue_app

# Fast retries and few of them, so a failing message reaches the poison queue quickly.
SETTINGS = QueueSettings(
    max_polling_interval=0.2, visibility_timeout=0, batch_size=4, max_dequeue_count=3
)


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


def client_for(azurite_queue: AzuriteQueue, name: str) -> QueueClient:
    return QueueClient.from_connection_string(azurite_queue.connection_string, name)


def waiting(client: QueueClient) -> list[str]:
    """The contents of the messages on a queue (visible or not), without taking them."""
    count = client.get_queue_properties().approximate_message_count or 0
    if count == 0:
        return []
    return [str(message.content) for message in client.peek_messages(max_messages=32)]


class Host:
    """The sample queue app served by a local host, with the names of its two queues."""

    def __init__(self, calls: QueueCalls, queue: QueueClient, literal: QueueClient) -> None:
        self.calls = calls
        self.queue = queue
        self.literal = literal


@pytest.fixture(scope="module")
def host(azurite_queue: AzuriteQueue) -> Iterator[Host]:
    calls = QueueCalls()
    queue_name, literal_name = unique_queue("sample"), unique_queue("literal")
    environ = {
        "SAMPLE_QUEUE": queue_name,
        "SAMPLE_STORAGE": azurite_queue.connection_string,
        "AzureWebJobsStorage": azurite_queue.connection_string,
    }
    app = build_app(make_queue_app(calls, literal_name), environ, queue_settings=SETTINGS)
    assert [q.queue_name for q in app.state.functions.queues] == [queue_name, literal_name]
    with (
        serve_in_thread(app),
        client_for(azurite_queue, queue_name) as queue,
        client_for(azurite_queue, literal_name) as literal,
    ):
        yield Host(calls, queue, literal)


def test_a_message_reaches_the_function_decoded_then_is_deleted(host: Host) -> None:
    # The host created the queue itself: the test never does.
    wait_until(lambda: _exists(host.queue))
    payload = {"specversion": "1.0", "id": uuid.uuid4().hex}
    sent = host.queue.send_message(b64(json.dumps(payload).encode("utf-8")))

    wait_until(lambda: any(m.id == sent.id for m in host.calls.of("take")))
    message = next(m for m in host.calls.of("take") if m.id == sent.id)
    assert isinstance(message, func.QueueMessage)
    assert message.get_json() == payload
    assert message.dequeue_count == 1
    assert isinstance(message.insertion_time, datetime)
    assert isinstance(message.expiration_time, datetime)
    assert message.expiration_time > message.insertion_time
    assert message.pop_receipt
    wait_until(lambda: waiting(host.queue) == [])


def test_an_async_function_on_a_literal_queue_with_the_default_connection(host: Host) -> None:
    wait_until(lambda: _exists(host.literal))
    sent = host.literal.send_message(b64("héllo".encode()))

    wait_until(lambda: any(m.id == sent.id for m in host.calls.of("take_async")))
    message = next(m for m in host.calls.of("take_async") if m.id == sent.id)
    assert message.get_body().decode("utf-8") == "héllo"
    wait_until(lambda: waiting(host.literal) == [])


def test_a_failing_message_is_retried_then_moved_to_the_poison_queue(
    host: Host, azurite_queue: AzuriteQueue
) -> None:
    wait_until(lambda: _exists(host.queue))
    sent = host.queue.send_message(b64(FAIL))
    poison = client_for(azurite_queue, f"{host.queue.queue_name}-poison")

    wait_until(lambda: b64(FAIL) in _safe_waiting(poison))
    tries = [m.dequeue_count for m in host.calls.of("take") if m.id == sent.id]
    assert tries == [1, 2, 3]  # maxDequeueCount tries, each after the last failed
    assert waiting(host.queue) == []


def test_a_message_that_is_not_base64_goes_to_the_poison_queue_untouched(
    host: Host, azurite_queue: AzuriteQueue
) -> None:
    wait_until(lambda: _exists(host.queue))
    sent = host.queue.send_message("{not base64}")
    poison = client_for(azurite_queue, f"{host.queue.queue_name}-poison")

    wait_until(lambda: "{not base64}" in _safe_waiting(poison))
    assert not [m for m in host.calls.of("take") if m.id == sent.id]
    assert waiting(host.queue) == []


def test_stopping_the_host_lets_a_running_handler_finish_and_settle(
    azurite_queue: AzuriteQueue,
) -> None:
    calls = QueueCalls()
    name = unique_queue("stopping")
    environ = {"SAMPLE_QUEUE": name, "SAMPLE_STORAGE": azurite_queue.connection_string}
    app = build_app(make_queue_app(calls, unique_queue("unused")), environ, queue_settings=SETTINGS)
    with client_for(azurite_queue, name) as queue:
        with serve_in_thread(app):
            wait_until(lambda: _exists(queue))
            queue.send_message(b64(SLOW))
            wait_until(lambda: len(calls.of("take")) == 1)
        # Shutdown waited for the handler, then deleted its message: nothing comes back.
        assert len(calls.of("slow_done")) == 1
        assert queue.get_queue_properties().approximate_message_count == 0


def test_after_the_host_stops_messages_wait_on_the_queue(azurite_queue: AzuriteQueue) -> None:
    calls = QueueCalls()
    name = unique_queue("stopped")
    environ = {"SAMPLE_QUEUE": name, "SAMPLE_STORAGE": azurite_queue.connection_string}
    app = build_app(make_queue_app(calls, unique_queue("unused")), environ, queue_settings=SETTINGS)
    with client_for(azurite_queue, name) as queue:
        with serve_in_thread(app):
            wait_until(lambda: _exists(queue))
            queue.send_message(b64(b"first"))
            wait_until(lambda: len(calls.of("take")) == 1)
        queue.send_message(b64(b"after"))
        time.sleep(3 * SETTINGS.max_polling_interval)  # a listener left running would take it
        assert waiting(queue) == [b64(b"after")]
        assert [m.get_body() for m in calls.of("take")] == [b"first"]


# ------------------------------------------------------------------ loading and settings


def test_a_queue_function_without_its_connection_setting_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("SAMPLE_STORAGE", raising=False)
    with caplog.at_level(logging.WARNING, logger="local.loader"):
        table = load_functions(make_queue_app(QueueCalls(), "literal"), {"SAMPLE_QUEUE": "q-1"})
    assert table.queues == ()
    assert "SAMPLE_STORAGE is not set" in caplog.text
    assert "AzureWebJobsStorage is not set" in caplog.text


def test_without_a_connection_the_queue_name_setting_is_not_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for setting in ("SAMPLE_QUEUE", "SAMPLE_STORAGE", "AzureWebJobsStorage"):
        monkeypatch.delenv(setting, raising=False)
    assert load_functions(make_queue_app(QueueCalls(), "literal"), {}).queues == ()


def test_an_unset_queue_name_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SAMPLE_QUEUE", raising=False)
    with pytest.raises(HostError, match="SAMPLE_QUEUE"):
        load_functions(make_queue_app(QueueCalls(), "literal"), {"SAMPLE_STORAGE": "x"})


@pytest.mark.parametrize("name", ["ab", "Upper", "two--hyphens", "-edge", "x" * 64, "a_b"])
def test_a_bad_queue_name_is_refused(name: str) -> None:
    environ = {"SAMPLE_QUEUE": name, "SAMPLE_STORAGE": "UseDevelopmentStorage=true"}
    with pytest.raises(HostError, match="not a queue name"):
        load_functions(make_queue_app(QueueCalls(), "literal"), environ)


def test_development_storage_means_azurites_default_queue_endpoint() -> None:
    client = queue_client("UseDevelopmentStorage=true", "events")
    assert client.url == f"http://127.0.0.1:{DEFAULT_QUEUE_PORT}/devstoreaccount1/events"
    explicit = queue_client(
        "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
        "QueueEndpoint=http://127.0.0.1:4321/a;",
        "events",
    )
    assert explicit.url == "http://127.0.0.1:4321/a/events"


def test_an_unusable_connection_string_is_refused() -> None:
    with pytest.raises(HostError, match="unusable connection string"):
        queue_client("not a connection string", "events")


def test_the_repositorys_host_json_makes_the_host_poll_often() -> None:
    settings = read_queue_settings(HOST_JSON)
    assert settings.max_polling_interval <= 1.0
    assert settings.max_dequeue_count == 5
    assert settings.message_encoding == "base64"
    assert 1 <= settings.batch_size <= 32


def test_queue_settings_default_like_the_functions_host(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0"}))
    assert read_queue_settings(host_json) == QueueSettings()
    host_json.write_text(json.dumps({"extensions": {"queues": {"batchSize": 64}}}))
    with pytest.raises(HostError, match="batchSize"):
        read_queue_settings(host_json)
    host_json.write_text(json.dumps({"extensions": {"queues": {"visibilityTimeout": "10s"}}}))
    with pytest.raises(HostError, match="visibilityTimeout"):
        read_queue_settings(host_json)


def test_time_spans_read_like_dotnet() -> None:
    assert parse_timespan("00:00:01", "x") == 1.0
    assert parse_timespan("00:00:00.500", "x") == 0.5
    assert parse_timespan("00:02:00", "x") == 120.0
    assert parse_timespan("1.00:00:00", "x") == 86400.0


def test_polling_backs_off_when_idle_and_resumes_at_once_when_messages_flow() -> None:
    delays = [0.0]
    for _ in range(6):
        delays.append(next_poll_delay(delays[-1], 0, 0.5))
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert next_poll_delay(0.5, 3, 0.5) == 0.0


def _exists(client: QueueClient) -> bool:
    try:
        client.get_queue_properties()
    except Exception:
        return False
    return True


def _safe_waiting(client: QueueClient) -> list[str]:
    return waiting(client) if _exists(client) else []


def test_the_listener_outlives_a_queue_service_restart() -> None:
    calls = QueueCalls()
    name = unique_queue("restart")
    with AzuriteQueue() as own:  # in memory: a restart loses the queue too
        environ = {"SAMPLE_QUEUE": name, "SAMPLE_STORAGE": own.connection_string}
        app = build_app(
            make_queue_app(calls, unique_queue("unused")), environ, queue_settings=SETTINGS
        )
        with serve_in_thread(app), client_for(own, name) as queue:
            wait_until(lambda: _exists(queue))
            own.stop()
            time.sleep(3 * SETTINGS.max_polling_interval)  # polls fail meanwhile
            own.start()
            # The listener creates the lost queue again and takes what arrives on it.
            wait_until(lambda: _exists(queue))
            queue.send_message(b64(b"after the restart"))
            wait_until(lambda: [m.get_body() for m in calls.of("take")] == [b"after the restart"])


def test_a_batch_is_taken_in_one_request(azurite_queue: AzuriteQueue) -> None:
    requests: list[str] = []
    with QueueClient.from_connection_string(
        azurite_queue.connection_string,
        unique_queue("batch"),
        raw_request_hook=lambda pipeline_request: requests.append(
            pipeline_request.http_request.method
        ),
    ) as queue:
        queue.create_queue()
        for index in range(5):
            queue.send_message(b64(str(index).encode()))
        requests.clear()
        taken = receive_batch(queue, 16, 30)
    assert sorted(str(message.content) for message in taken) == [
        b64(str(index).encode()) for index in range(5)
    ]
    assert requests == ["GET"]
