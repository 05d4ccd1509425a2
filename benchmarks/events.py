"""Integration-event latency under the load mix: from a change being stored to its event being
visible on the public queue.

    .venv/bin/python -m benchmarks.events            # the figures in docs/performance.md
    .venv/bin/python -m benchmarks.events --quick    # a smoke run of a few seconds

Each run starts, on free 127.0.0.1 ports, a fresh in-memory Azurite (tables), an Azurite
queue service and the local host (`python -m local.host`) with events on (EVENTS_QUEUE,
EVENTS_OUTBOX_QUEUE, QUEUES_CONNECTION_STRING pointing at that queue service), seeds and
warms up as `benchmarks.load` does, and sends its mix of requests (`benchmarks.load.MIX`).

The relay is the app's queue trigger (`shared.api.events.relay_events`) on the outbox queue.
When the local host runs queue triggers (`local.queues` exists) it runs there, as in
`make dev`; otherwise (`--relay stand-in`, chosen automatically) a child process stands in
for the host's queue listener: it polls the outbox queue as that listener does (up to
RELAY_BATCH messages at once, handled concurrently; polling again at once while messages
flow, else after a wait doubling from MIN_POLL_SECONDS to MAX_POLL_SECONDS, host.json's
`maxPollingInterval`), calls the same trigger function with the Base64-decoded body and
deletes each message once it returns. Which one ran is recorded.

A consumer thread (the "platform") polls the public queue (32 messages a call, again at once
while messages flow, else after CONSUMER_IDLE_SECONDS) and records, for every event, when it
first saw it. The moment the change was stored is Azurite's own: the `Timestamp` of the
conversation entity (what its ETag carries, below the millisecond, from the same machine's clock),
read right after the event is seen while the entity still holds that event's `sequence`;
an event whose conversation changed again before that read has no stored time (counted,
not timed). The event's `time` is only to the second, so it is not used. The timer runs on
its default schedule (every 30 s): it flushes the outbox notes of changes staged while the
outbox queue failed.

Latency = first seen - stored, for the events of changes stored during the measured load.
After the load the consumer keeps reading until the public queue has been quiet for
QUIET_SECONDS with no stored change's event missing (or DRAIN_TIMEOUT); then every stored
conversation's sequence is compared with the events seen: events missing (a stored change
without its event), events for no stored change, and duplicates (an event id seen twice)
are counted over the whole run (seeding included).

Figures go to benchmarks/results/events.json (events-quick.json with --quick); a table is
printed. Nothing here asserts anything about time; the exit status is 1 when an event is
missing or invented, 2 when a run could not be measured.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, QueueMessage

from benchmarks.load import (
    MIX,
    REQUEST_TIMEOUT,
    LocalHost,
    environment,
    latency_summary,
    run_load,
    seed,
    summarize_load,
)
from local.azurite import Azurite, AzuriteQueue
from local.processes import stop_process_group
from shared.config import (
    DEFAULT_ENFORCE_SCHEDULE,
    DEFAULT_EVENTS_OUTBOX_QUEUE,
    DEFAULT_EVENTS_QUEUE,
)
from shared.storage.entities import CONVERSATION_ROW

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results" / "events.json"
# The app's own defaults, so the benchmark follows a rename.
EVENTS_QUEUE = DEFAULT_EVENTS_QUEUE
OUTBOX_QUEUE = DEFAULT_EVENTS_OUTBOX_QUEUE
# The stand-in relay polls like the local host's queue listener with host.json's
# extensions.queues (batchSize 16, maxPollingInterval 00:00:00.500).
RELAY_BATCH = 16
MIN_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 0.5
RELAY_LEASE_SECONDS = 600
RELAY_RETRY_SECONDS = 30
# The consumer: how long it waits after an empty poll, and how long the public queue must
# stay empty after the load (longer than the relay's 2 s wait before it looks at a staged
# event again) before the run's events are counted, and how long at most to wait for
# events missing then (outbox notes wait for the timer, every 30 s).
CONSUMER_IDLE_SECONDS = 0.01
QUIET_SECONDS = 6.0
DRAIN_TIMEOUT = 100.0
# Client options as the app's own queue and table clients: short timeouts, no long retries.
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 2, "read_timeout": 10, "retry_total": 2}

logger = logging.getLogger("benchmarks.events")


def host_runs_queue_triggers() -> bool:
    """Whether this checkout's local host runs queue-triggered functions."""
    return importlib.util.find_spec("local.queues") is not None


# ----------------------------------------------------------------- the stand-in relay


def stand_in_relay() -> int:
    """Run the relay's trigger on the outbox queue as the local host's listener would, until
    SIGTERM; settings from the environment, as the host's."""
    import azure.functions as func

    from shared.api.events import relay_events
    from shared.config import get_settings

    settings = get_settings()
    queue = QueueClient.from_connection_string(
        settings.queues_connection_string, settings.events_outbox_queue, **CLIENT_OPTIONS
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    def handle(message: QueueMessage) -> None:
        try:
            relay_events(
                func.QueueMessage(
                    id=message.id,
                    body=base64.b64decode(str(message.content)),
                    pop_receipt=message.pop_receipt,
                )
            )
        except Exception:
            logger.exception("relay failed on message %s", message.id)
            with contextlib.suppress(AzureError):
                queue.update_message(message, visibility_timeout=RELAY_RETRY_SECONDS)
            return
        with contextlib.suppress(AzureError):
            queue.delete_message(message)

    delay = 0.0
    with ThreadPoolExecutor(max_workers=RELAY_BATCH) as pool:
        while not stopping.is_set():
            try:
                pages = queue.receive_messages(
                    max_messages=RELAY_BATCH, visibility_timeout=RELAY_LEASE_SECONDS
                )
                messages = list(next(pages.by_page(), []))
            except AzureError:
                messages = []
            if messages:
                list(pool.map(handle, messages))
                delay = 0.0
                continue
            delay = min(max(delay * 2, MIN_POLL_SECONDS), MAX_POLL_SECONDS)
            stopping.wait(delay)
    return 0


# --------------------------------------------------------------------------- servers


@dataclass
class Servers:
    azurite: Azurite
    queues: AzuriteQueue
    host: LocalHost
    relay: str


@contextlib.contextmanager
def servers(signing_key: str, log_dir: Path, relay: str) -> Iterator[Servers]:
    """Fresh Azurite tables and queues, the local host with events on, and the relay (in the
    host or standing in for it); all stopped by PID on exit."""
    azurite = Azurite()
    queues = AzuriteQueue()
    host: LocalHost | None = None
    stand_in: subprocess.Popen[bytes] | None = None
    try:
        azurite.start()
        queues.start()
        environ = {
            **os.environ,
            "TABLES_CONNECTION_STRING": azurite.connection_string,
            "RECONNECT_SIGNING_KEY": signing_key,
            # The timer on its default schedule: it flushes the outbox notes of changes
            # staged while the outbox queue failed (it has nothing else to do here).
            "RECONNECT_ENFORCE_SCHEDULE": DEFAULT_ENFORCE_SCHEDULE,
            "QUEUES_CONNECTION_STRING": queues.connection_string,
            "EVENTS_QUEUE": EVENTS_QUEUE,
            "EVENTS_OUTBOX_QUEUE": OUTBOX_QUEUE,
        }
        for name in ("TABLES_ENDPOINT", "QUEUES_ENDPOINT", "AzureWebJobsStorage"):
            environ.pop(name, None)
        if relay == "host":
            # The queue trigger's connection (shared/api/events.py).
            environ["AzureWebJobsStorage"] = queues.connection_string
        host = LocalHost(environ, log_dir / "host.log").start()
        if relay == "stand-in":
            log = (log_dir / "relay.log").open("wb")
            stand_in = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.events", "--stand-in-relay"],
                cwd=REPO_ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
        yield Servers(azurite, queues, host, relay)
    finally:
        if stand_in is not None:
            stop_process_group(stand_in, 15.0)
        if host is not None:
            host.stop()
        queues.stop()
        azurite.stop()


# -------------------------------------------------------------------------- consumer


@dataclass
class Seen:
    """One event as the consumer saw it."""

    event_id: str
    conversation_id: str
    sequence: int
    type: str
    first_seen: float  # time.time() right after the receive that returned it
    stored_at: float | None = None  # Azurite's Timestamp of the change, when still there


@dataclass
class Consumer:
    """Polls the public queue as a platform would and records when each event first shows."""

    queue: QueueClient
    table: TableClient
    seen: list[Seen] = field(default_factory=list)
    undecodable: int = 0
    last_seen: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stopping: threading.Event) -> None:
        """Poll until `stopping`; deletes and stored-time look-ups run beside, in pools."""
        with (
            ThreadPoolExecutor(max_workers=4) as deleters,
            ThreadPoolExecutor(max_workers=4) as lookups,
        ):
            while not stopping.is_set():
                try:
                    pages = self.queue.receive_messages(max_messages=32, visibility_timeout=300)
                    messages = list(next(pages.by_page(), []))
                except AzureError:
                    messages = []
                now = time.time()
                if not messages:
                    stopping.wait(CONSUMER_IDLE_SECONDS)
                    continue
                self.last_seen = time.monotonic()
                for message in messages:
                    deleters.submit(self._delete, message)
                    try:
                        event = json.loads(base64.b64decode(str(message.content)))
                        seen = Seen(
                            str(event["id"]),
                            str(event["subject"]).removeprefix("conversations/"),
                            int(event["sequence"]),
                            str(event["type"]),
                            now,
                        )
                    except (KeyError, TypeError, ValueError):
                        self.undecodable += 1
                        continue
                    with self.lock:
                        self.seen.append(seen)
                    lookups.submit(self._stored_at, seen)

    def _delete(self, message: QueueMessage) -> None:
        with contextlib.suppress(AzureError):
            self.queue.delete_message(message)

    def _stored_at(self, seen: Seen) -> None:
        """Azurite's Timestamp of the conversation, if it still holds this event's change."""
        with contextlib.suppress(AzureError):
            entity = self.table.get_entity(seen.conversation_id, CONVERSATION_ROW)
            stamp = entity.metadata.get("timestamp")
            if stamp is not None and int(entity.get("sequence", 1)) == seen.sequence:
                seen.stored_at = stamp.timestamp()


def stored_sequences(table: TableClient) -> dict[str, int]:
    """Every stored conversation's sequence (the number of changes that emitted an event)."""
    return {
        str(entity["PartitionKey"]): int(entity.get("sequence", 1))
        for entity in table.query_entities(f"RowKey eq '{CONVERSATION_ROW}'")
    }


def completeness(seen: Sequence[Seen], sequences: dict[str, int]) -> dict[str, int]:
    """Stored changes against events seen: missing, invented, duplicated."""
    expected = {(cid, number) for cid, last in sequences.items() for number in range(1, last + 1)}
    got = {(s.conversation_id, s.sequence) for s in seen}
    return {
        "storedChanges": len(expected),
        "eventsSeen": len(seen),
        "distinctEventIds": len({s.event_id for s in seen}),
        "duplicates": len(seen) - len({s.event_id for s in seen}),
        "missing": len(expected - got),
        "invented": len(got - expected),
    }


# ------------------------------------------------------------------------------ runs


def measure(args: argparse.Namespace, relay: str, log_dir: Path) -> dict[str, Any]:
    """One run on fresh servers: seed, warm up, load with the consumer reading, drain."""
    run_id = uuid.uuid4().hex[:8]
    load_before = [round(value, 2) for value in os.getloadavg()]
    with servers(secrets.token_urlsafe(48), log_dir, relay) as running:
        print(
            f"[relay: {relay}] Azurite pid {running.azurite.pid}, queues pid "
            f"{running.queues.pid}, local host port {running.host.port}",
            flush=True,
        )
        queue = QueueClient.from_connection_string(
            running.queues.connection_string, EVENTS_QUEUE, **CLIENT_OPTIONS
        )
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        table = TableServiceClient.from_connection_string(
            running.azurite.connection_string, **CLIENT_OPTIONS
        ).get_table_client("conversations")
        consumer = Consumer(queue, table)
        stopping = threading.Event()
        reader = threading.Thread(target=consumer.run, args=(stopping,), name="consumer")
        reader.start()
        try:
            with httpx.Client(base_url=running.host.base_url, timeout=REQUEST_TIMEOUT) as client:
                seeded = seed(client, args.widgets, args.conversations, run_id)
            run_load(
                running.host.base_url,
                seeded,
                requests=args.warmup,
                concurrency=args.concurrency,
                duration=args.duration,
                seed_value=args.seed + 1,
            )
            load_started = time.time()
            load = run_load(
                running.host.base_url,
                seeded,
                requests=args.requests,
                concurrency=args.concurrency,
                duration=args.duration,
                seed_value=args.seed,
            )
            load_ended = time.time()
            load_ended_monotonic = time.monotonic()
            # Until every stored change's event is seen and the queue has been quiet a while
            # (events staged as outbox notes while the queue failed come with the timer's
            # next run), or DRAIN_TIMEOUT.
            while time.monotonic() < load_ended_monotonic + DRAIN_TIMEOUT:
                quiet = time.monotonic() - max(consumer.last_seen, load_ended_monotonic)
                if quiet >= QUIET_SECONDS:
                    with consumer.lock:
                        seen = list(consumer.seen)
                    if not completeness(seen, stored_sequences(table))["missing"]:
                        break
                time.sleep(0.5)
            drained = consumer.last_seen - load_ended_monotonic
        finally:
            stopping.set()
            reader.join()
        sequences = stored_sequences(table)
    in_load = [s for s in consumer.seen if s.stored_at is not None and load_started <= s.stored_at]
    during = [s for s in consumer.seen if s.first_seen >= load_started]
    latencies = [(s.first_seen - s.stored_at) * 1000 for s in in_load if s.stored_at]
    by_type: dict[str, list[float]] = {}
    for s in in_load:
        assert s.stored_at is not None
        by_type.setdefault(s.type.rsplit(".", 1)[-1], []).append(
            (s.first_seen - s.stored_at) * 1000
        )
    host_log = (log_dir / "host.log").read_text(errors="replace")
    relay_log = host_log if relay == "host" else (log_dir / "relay.log").read_text(errors="replace")
    return {
        "relay": relay,
        # The app's queue adapter logs each failure that opens its breaker (a few seconds of
        # staging as outbox notes instead).
        "queueFailuresLogged": host_log.count("unavailable: "),
        # What the relay's trigger logged, summed over every message (seeding included):
        # "waiting" events were staged again, to be looked at after the relay's delay.
        "relayed": relay_counts(relay_log),
        "latency": latency_summary(latencies),
        "latencyByType": {kind: latency_summary(values) for kind, values in by_type.items()},
        "eventsOverTwoSeconds": sum(1 for value in latencies if value > 2000),
        "negativeLatencies": sum(1 for value in latencies if value < 0),
        "eventsSeenDuringLoad": len(during),
        "eventsSeenDuringLoadWithoutStoredTime": sum(1 for s in during if s.stored_at is None),
        "eventsPerSecondDuringLoad": round(len(during) / (load_ended - load_started), 1),
        "lastEventAfterLoadSeconds": round(drained, 3),
        "undecodable": consumer.undecodable,
        "completeness": completeness(consumer.seen, sequences),
        "load": summarize_load(load),
        "loadAverage": {
            "before": load_before,
            "after": [round(value, 2) for value in os.getloadavg()],
        },
    }


def relay_counts(log: str) -> dict[str, int]:
    """The relay trigger's log lines ("events relayed {...}") summed: messages, sent,
    waiting, dropped, forgotten."""
    totals = {"messages": 0, "sent": 0, "waiting": 0, "dropped": 0, "forgotten": 0}
    for line in log.splitlines():
        _, marker, rest = line.partition("events relayed ")
        if not marker:
            continue
        with contextlib.suppress(ValueError):
            figures = json.loads(rest)
            totals["messages"] += 1
            for key in ("sent", "waiting", "dropped", "forgotten"):
                totals[key] += int(figures.get(key, 0))
    return totals


def spread(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Min, median and max over the runs of each latency figure and of the request rate."""

    def over(values: list[float]) -> dict[str, float]:
        return {
            "min": round(min(values), 2),
            "median": round(statistics.median(values), 2),
            "max": round(max(values), 2),
        }

    return {
        "runs": len(runs),
        "p50Ms": over([run["latency"]["p50Ms"] for run in runs]),
        "p99Ms": over([run["latency"]["p99Ms"] for run in runs]),
        "maxMs": over([run["latency"]["maxMs"] for run in runs]),
        "timedEvents": over([run["latency"]["count"] for run in runs]),
        "requestsPerSecond": over([run["load"]["requestsPerSecond"] for run in runs]),
        "missing": sum(run["completeness"]["missing"] for run in runs),
        "invented": sum(run["completeness"]["invented"] for run in runs),
        "duplicates": sum(run["completeness"]["duplicates"] for run in runs),
    }


def table(figures: dict[str, Any]) -> str:
    rows = [
        (
            "run",
            "requests/s",
            "events/s",
            "timed",
            "untimed",
            "p50 ms",
            "p99 ms",
            "max ms",
            ">2 s",
            "missing",
            "invented",
            "dup",
        )
    ]
    for index, run in enumerate(figures["runs"], 1):
        latency, whole = run["latency"], run["completeness"]
        rows.append(
            (
                str(index),
                f"{run['load']['requestsPerSecond']:.1f}",
                f"{run['eventsPerSecondDuringLoad']:.1f}",
                str(latency["count"]),
                str(run["eventsSeenDuringLoadWithoutStoredTime"]),
                f"{latency['p50Ms']:.1f}",
                f"{latency['p99Ms']:.1f}",
                f"{latency['maxMs']:.1f}",
                str(run["eventsOverTwoSeconds"]),
                str(whole["missing"]),
                str(whole["invented"]),
                str(whole["duplicates"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    spread_ = figures["spread"]
    lines += [
        "",
        f"relay: {figures['relay']}; stored -> visible on the public queue, over "
        f"{spread_['runs']} run(s): p50 {spread_['p50Ms']['min']}-{spread_['p50Ms']['max']} ms, "
        f"p99 {spread_['p99Ms']['min']}-{spread_['p99Ms']['max']} ms, "
        f"max {spread_['maxMs']['min']}-{spread_['maxMs']['max']} ms",
        "load errors: "
        + ", ".join(
            f"{run['load']['errors']} (5xx {run['load']['serverErrors']})"
            for run in figures["runs"]
        ),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.events",
        description=__doc__.split("\n\n")[0] if __doc__ else "",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs, each on fresh servers (3)")
    parser.add_argument("--requests", type=int, default=3000, help="requests a run (3000)")
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads (8)")
    parser.add_argument("--duration", type=float, default=90.0, help="a run's load, at most (90 s)")
    parser.add_argument("--conversations", type=int, default=200, help="seeded (200)")
    parser.add_argument("--widgets", type=int, default=4, help="seeded widgets (4)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first (100)")
    parser.add_argument("--seed", type=int, default=20261130, help="random seed")
    parser.add_argument(
        "--relay",
        choices=("auto", "host", "stand-in"),
        default="auto",
        help="where the relay runs: the local host's queue listener, or a stand-in process "
        "polling as it does; auto: the host when it runs queue triggers",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one run of 300 requests on 20 conversations; writes events-quick.json",
    )
    parser.add_argument("--stand-in-relay", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.requests, args.conversations, args.warmup = 1, 300, 20, 20
        args.duration = min(args.duration, 30.0)
        if args.output == RESULTS:
            args.output = RESULTS.with_name("events-quick.json")
    for name in ("runs", "requests", "concurrency", "conversations", "widgets"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.relay == "host" and not host_runs_queue_triggers():
        parser.error("--relay host: this local host does not run queue triggers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stand_in_relay:
        # INFO: the trigger's one line per message (sent, waiting, dropped) is counted.
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("azure").setLevel(logging.WARNING)
        return stand_in_relay()
    relay = args.relay
    if relay == "auto":
        relay = "host" if host_runs_queue_triggers() else "stand-in"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="events-bench-"))
    started_at = datetime.now(UTC)
    runs = []
    for index in range(args.runs):
        run_dir = log_dir / f"run-{index + 1}"
        run_dir.mkdir()
        try:
            runs.append(measure(args, relay, run_dir))
        except (OSError, RuntimeError, TimeoutError) as error:
            print(f"run {index + 1} failed: {error}; logs in {log_dir}", file=sys.stderr)
            return 2
        print(
            f"  run {index + 1}: p50 {runs[-1]['latency']['p50Ms']} ms, "
            f"p99 {runs[-1]['latency']['p99Ms']} ms, max {runs[-1]['latency']['maxMs']} ms",
            flush=True,
        )
    figures: dict[str, Any] = {
        "benchmark": "integration-event latency under the load mix",
        "command": "python -m benchmarks.events "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "startedAt": started_at.isoformat(timespec="seconds"),
        "finishedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "relay": relay,
        "measures": (
            "first seen by a consumer polling the public queue (time.time() after the receive) "
            "minus Azurite's Timestamp of the conversation entity holding the event's sequence "
            "(read after the event was seen), for changes stored during the load"
        ),
        "settings": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "maxDurationSeconds": args.duration,
            "conversations": args.conversations,
            "widgets": args.widgets,
            "warmupRequests": args.warmup,
            "seed": args.seed,
            "mix": dict(MIX),
            "relayBatch": RELAY_BATCH,
            "relayPollSeconds": [MIN_POLL_SECONDS, MAX_POLL_SECONDS],
            "consumerIdleSeconds": CONSUMER_IDLE_SECONDS,
            "quietSeconds": QUIET_SECONDS,
        },
        "spread": spread(runs),
        "runs": runs,
        "environment": environment(),
    }
    args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print()
    print(table(figures))
    print(f"\nwritten to {args.output}")
    whole = figures["spread"]
    if whole["missing"] or whole["invented"]:
        print(f"logs: {log_dir}")
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
