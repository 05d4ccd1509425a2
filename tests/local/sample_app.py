"""Sample function apps for the local host's tests: each routing and binding case it must serve."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import threading
import time

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

# A six-field NCRONTAB (seconds first) that fires every second.
EVERY_SECOND = "* * * * * *"
# The host's answer when a handler raises.
PROBLEM_500 = {"type": "about:blank", "title": "Internal Server Error", "status": 500}


class Calls:
    """What the sample timers saw, shared between the host's threads and the test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ticks: list[func.TimerRequest] = []
        self.startup_runs = 0

    def tick(self, timer: func.TimerRequest) -> None:
        with self._lock:
            self.ticks.append(timer)

    def started(self) -> None:
        with self._lock:
            self.startup_runs += 1


def _json(payload: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


def make_app(calls: Calls) -> func.FunctionApp:
    """A fresh app (get_functions() runs once per app) recording its timer runs in ``calls``."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{id}", methods=["GET"])
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"id": req.route_params["id"], "params": dict(req.params)})

    @app.route(route="items/new", methods=["GET"])
    def new_item_form(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"form": True})

    @app.route(route="pages/{name}/{page:int?}", methods=["GET"])
    def get_page(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"name": req.route_params["name"], "page": req.route_params.get("page")})

    # A trigger argument not called "req", and a function-level key (never enforced locally).
    @app.route(
        route="items",
        methods=["POST"],
        auth_level=func.AuthLevel.FUNCTION,
        trigger_arg_name="request",
    )
    def create_item(request: func.HttpRequest) -> func.HttpResponse:
        echo = {
            "method": request.method,
            "url": request.url,
            "params": dict(request.params),
            "trace": request.headers.get("x-trace"),
            "body": request.get_body().decode("utf-8"),
        }
        response = func.HttpResponse(
            json.dumps(echo),
            status_code=201,
            headers={"Location": "/api/items/7", "Set-Cookie": "a=1"},
            mimetype="application/json",
        )
        response.headers.add_header("Set-Cookie", "b=2")
        return response

    @app.route(route="words/{word:alpha}", methods=["GET", "PUT"])
    async def shout(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(0)  # a real await: the host must not run this in a thread
        return func.HttpResponse(req.route_params["word"].upper())

    @app.route(route="boom")
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("the handler failed")

    @app.route(route="plain")
    def plain(req: func.HttpRequest) -> str:
        return "just text"

    @app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", use_monitor=False)
    def tick(timer: func.TimerRequest) -> None:
        calls.tick(timer)

    # Once a year: only its run on startup can happen during a test.
    @app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
    def on_startup(timer: func.TimerRequest) -> None:
        calls.started()

    return app


def make_health_app() -> func.FunctionApp:
    """The smallest app ``local.dev`` can wait for: GET /api/health answers 200."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="health", methods=["GET"])
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"status": "ok"})

    return app


# For `python -m local.host --app tests/local/sample_app.py:health_app` in the runner's tests.
health_app = make_health_app()


class QueueCalls:
    """What the sample queue functions received, shared between the host's threads and a test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[tuple[str, func.QueueMessage]] = []

    def record(self, function: str, message: func.QueueMessage) -> None:
        with self._lock:
            self.messages.append((function, message))

    def of(self, function: str) -> list[func.QueueMessage]:
        with self._lock:
            return [message for name, message in self.messages if name == function]


# A message body the sample queue functions fail on, to show retries and the poison queue.
FAIL = b"fail"
# A message body the sync sample queue function takes a second over, to show a clean stop.
SLOW = b"slow"


def make_queue_app(calls: QueueCalls, literal_queue: str) -> func.FunctionApp:
    """An app with a sync queue function on ``%SAMPLE_QUEUE%`` (connection SAMPLE_STORAGE)
    and an async one on the literal ``literal_queue`` (connection "Storage", which the host
    finds as AzureWebJobsStorage)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="SAMPLE_STORAGE")
    def take(msg: func.QueueMessage) -> None:
        calls.record("take", msg)
        if msg.get_body() == FAIL:
            raise RuntimeError("the queue handler failed")
        if msg.get_body() == SLOW:
            time.sleep(1.0)
            calls.record("slow_done", msg)

    @app.queue_trigger(arg_name="item", queue_name=literal_queue, connection="Storage")
    async def take_async(item: func.QueueMessage) -> None:
        await asyncio.sleep(0)  # a real await: the host must not run this in a thread
        calls.record("take_async", item)

    return app


# The queues of the forwarding app the runner's tests start (fixed names: each test's
# runner has an Azurite of its own).
FORWARD_IN = "sample-in"
FORWARD_OUT = "sample-out"


def make_forwarding_app() -> func.FunctionApp:
    """The health app plus a queue function (on AzureWebJobsStorage) that forwards each
    message to FORWARD_OUT with QUEUES_CONNECTION_STRING: what ``local.dev`` must provide."""
    app = make_health_app()

    @app.queue_trigger(arg_name="msg", queue_name=FORWARD_IN, connection="AzureWebJobsStorage")
    def forward(msg: func.QueueMessage) -> None:
        connection = os.environ["QUEUES_CONNECTION_STRING"]
        with QueueClient.from_connection_string(connection, FORWARD_OUT) as out:
            with contextlib.suppress(ResourceExistsError):
                out.create_queue()
            out.send_message(msg.get_body().decode("utf-8"))

    return app


# For `python -m local.dev --app tests/local/sample_app.py:forwarding_app`.
forwarding_app = make_forwarding_app()


def sample_event(
    conversation_id: str,
    sequence: int,
    what: str,
    *,
    state: str,
    previous: str | None,
    via: str,
    released: str | None = None,
    time: str = "2026-11-30T12:00:00Z",
    agent: str | None = "agent-1",
) -> dict[str, object]:
    """A CloudEvent as the app puts it on the events queue (the issue-14 design's format)."""
    return {
        "specversion": "1.0",
        "id": f"{conversation_id}-{sequence}",
        "source": "/chat-reconnect",
        "type": f"chatreconnect.conversation.{what}",
        "subject": f"conversations/{conversation_id}",
        "time": time,
        "datacontenttype": "application/json",
        "sequence": f"{sequence:010d}",
        "data": {
            "conversationId": conversation_id,
            "widgetId": "demo",
            "state": state,
            "agentId": agent,
            "customerConnected": False,
            "disconnectedAt": None,
            "reconnectDeadline": None,
            "endReason": None,
            "createdAt": time,
            "updatedAt": time,
            "previousState": previous,
            "via": via,
            "capacityReleased": released,
        },
    }


def queue_text(event: object) -> str:
    """A message's text as the app sends it: Base64 of the UTF-8 JSON."""
    return base64.b64encode(json.dumps(event).encode("utf-8")).decode("ascii")
