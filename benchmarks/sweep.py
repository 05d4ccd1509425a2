"""The time-limit sweep: what one timer run costs, against what is stored and what Azurite can do.

    .venv/bin/python -m benchmarks.sweep            # the figures in docs/performance.md
    .venv/bin/python -m benchmarks.sweep --quick    # a smoke run (smaller, one repetition)

It starts its own in-memory Azurite on a free 127.0.0.1 port (stopped by its PID) and measures

(a) the time of one `App.timer.run()` run that expires N conversations
    (1,000; 200 with --quick) while 0, 10,000 or 50,000 *not-yet-expired* conversations are
    stored — disconnected, each with its deadline-index row and capacity row, deadlines far in
    the future. Each scenario has tables of its own in the same Azurite; the repetitions
    (5; 1 with --quick) interleave the scenarios, rotating their order, so that drift of the
    machine or of Azurite affects them alike. Target: largest / none <= 1.2.
(b) expirations per second of the no-background scenario (N / run time) against the raw
    conditional-update rate of the same Azurite, measured in the same repetitions: N
    sequential `TableClient.update_entity(mode=REPLACE, etag=<its ETag>,
    match_condition=IfNotModified)` calls from one thread, each on a different
    conversation-shaped entity read beforehand (the reads are not timed), on a client built
    exactly as the app builds its own; the same updates from TIMER_WORKERS threads are
    measured too, and the faster of the two is the baseline. Target: >= 0.7.

With integration events on (`--events on|off|both`, default both) every scenario's App
also has event queues of its own on an Azurite queue service the benchmark starts: the
timer stages its outcomes' events (one outbox message per chunk) and flushes outbox notes,
and its (b) target is >= 0.6; "both" adds the smallest scenario again without events, so
that (b) is reported both ways from the same repetitions and baseline. After each timed run
with events the relay drains what the run staged, timed on its own (events/s, requests per
event), as the local host's queue listener does (RELAY_BATCH messages at a time,
concurrently); every event must reach the public queue exactly once.

Targets are judged on the best repetition (the machine is shared: interference only adds
time); medians are reported alongside. Each timed run also records the HTTP requests sent,
this process's CPU time and Azurite's CPU time (Linux /proc).

Setting up is not measured. The background conversations are inserted one by one with the
store (a thread pool), their index rows with `submit_transaction` batches of 100 per
partition. The conversations that expire are inserted active (with their capacity rows) and
then disconnected through the service's own use case (`apply_event(customer_disconnected)`),
as production does it: that writes each due row with its conversation snapshot. Before
each timed run an untimed run at the same moment moves the checkpoint (as a timer that runs
every 30 s keeps it); a clock object is moved instead of waiting for deadlines. Agents hold
five chats each. Figures go to benchmarks/results/sweep.json (sweep-quick.json with --quick
or custom sizes) with the machine, versions, load averages and timestamps. Nothing here asserts
anything about time: the exit status is 1 when a target ratio is missed, 2 when a run did
not do what it should.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from local.azurite import Azurite, AzuriteQueue
from shared.config import load_settings
from shared.domain import conversation as domain
from shared.domain.conversation import Event, EventType
from shared.domain.links import LinkSigner
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.enforcement import TIMER_WORKERS, EnforcementReport
from shared.services.outbox import EventQueues
from shared.storage.entities import due_bucket
from shared.storage.queues import BREAKER_SECONDS, QueueUnavailable
from shared.storage.store import TableStore
from shared.storage.table_wire import MAX_OPERATIONS
from shared.wiring import event_queues, table_service_client

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SIGNING_KEY = b"sweep-benchmark-signing-key-0123456789abcdef"
WIDGET = "sweep-widget"
PORTAL = "https://contoso.example/chat"
TIME_LIMIT = timedelta(minutes=10)
AUTO_CLOSE = timedelta(minutes=15)
# Each repetition happens an hour (of the moved clock) after the previous one.
BASE = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
REPETITION_GAP = timedelta(hours=1)
# Background deadlines: 30 days ahead, spread over a day of minute buckets.
FAR_AHEAD = timedelta(days=30)
# Agents hold about five chats each, so capacity rows are released in small groups.
CHATS_PER_AGENT = 5
INSERT_WORKERS = 8
TARGET_STORED_RATIO = 1.2
TARGET_RATE_RATIO = 0.7
# Issue 14: with integration events on, the timer also stages its outcomes' events.
TARGET_RATE_RATIO_EVENTS = 0.6
# The local host's queue listener takes up to this many messages at once and handles them
# concurrently (host.json extensions.queues.batchSize, the Functions host's default).
RELAY_BATCH = 16
# Tries of a queue request before the benchmark gives up (about 2.5 minutes of breaker waits).
QUEUE_ATTEMPTS = 30


@dataclasses.dataclass(frozen=True)
class Plan:
    expirations: int
    stored: tuple[int, ...]
    repetitions: int
    # "on": every scenario with integration events (the product's default); "off": none;
    # "both": every scenario with events, plus the smallest without, for ratio (b) both ways.
    events: str = "both"


FULL = Plan(expirations=1000, stored=(0, 10_000, 50_000), repetitions=5)
QUICK = Plan(expirations=200, stored=(0, 2_000, 10_000), repetitions=1)


class MovableClock:
    """The service's clock: set by the benchmark instead of waiting for deadlines."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# ------------------------------------------------------------------------ setting up


def _table(client: TableServiceClient, store: TableStore, name: str) -> TableClient:
    (full_name,) = [table for table in store.table_names if table.endswith(name)]
    return client.get_table_client(full_name)


def _batches(
    table: TableClient, rows: Iterable[tuple[str, str]], workers: ThreadPoolExecutor
) -> None:
    """Upsert (PartitionKey, RowKey) rows, at most MAX_OPERATIONS per transaction and partition."""
    by_partition: dict[str, list[str]] = {}
    for partition, row in rows:
        by_partition.setdefault(partition, []).append(row)
    chunks = [
        (partition, keys[start : start + MAX_OPERATIONS])
        for partition, keys in by_partition.items()
        for start in range(0, len(keys), MAX_OPERATIONS)
    ]

    def submit(chunk: tuple[str, list[str]]) -> None:
        partition, keys = chunk
        table.submit_transaction(
            [("upsert", {"PartitionKey": partition, "RowKey": key}) for key in keys]
        )

    list(workers.map(submit, chunks))


def insert_disconnected(
    scenario: Scenario,
    ids: Sequence[str],
    disconnected_at: Callable[[int], datetime],
    workers: ThreadPoolExecutor,
) -> None:
    """Active conversations whose customer dropped, with their due and capacity rows."""
    store = scenario.service.store
    rows_due: list[tuple[str, str]] = []
    rows_capacity: list[tuple[str, str]] = []
    conversations = []
    for index, conversation_id in enumerate(ids):
        dropped = disconnected_at(index)
        agent_id = f"sweep-agent-{index // CHATS_PER_AGENT}"
        created = domain.new_conversation(conversation_id, WIDGET, agent_id, None, dropped)
        conversations.append(
            dataclasses.replace(
                created,
                customer_connected=False,
                disconnected_at=dropped,
                reconnect_deadline=dropped + TIME_LIMIT,
            )
        )
        rows_due.append((due_bucket(dropped + TIME_LIMIT), conversation_id))
        rows_capacity.append((agent_id, conversation_id))
    # Index rows first, as the service writes them.
    _batches(_table(scenario.client, store, "due"), rows_due, workers)
    _batches(_table(scenario.client, store, "capacity"), rows_capacity, workers)
    list(workers.map(store.insert_conversation, conversations))


def insert_expiring(
    scenario: Scenario, ids: Sequence[str], moment: datetime, workers: ThreadPoolExecutor
) -> None:
    """Active conversations (with capacity rows) whose customers drop at `moment`.

    The drop goes through the service, as in production: it writes the due row, the
    conversation, then the due row again with the conversation's snapshot and ETag.
    """
    service = scenario.service
    conversations = []
    rows_capacity: list[tuple[str, str]] = []
    for index, conversation_id in enumerate(ids):
        agent_id = f"sweep-agent-{index // CHATS_PER_AGENT}"
        conversations.append(
            domain.new_conversation(conversation_id, WIDGET, agent_id, None, moment)
        )
        rows_capacity.append((agent_id, conversation_id))
    _batches(_table(scenario.client, service.store, "capacity"), rows_capacity, workers)
    list(workers.map(service.store.insert_conversation, conversations))
    scenario.clock.now = moment
    dropped = Event(EventType.CUSTOMER_DISCONNECTED)
    list(
        workers.map(
            lambda conversation_id: service.conversations.apply_event(
                conversation_id, dropped, None
            ),
            ids,
        )
    )


@dataclasses.dataclass
class Scenario:
    """One stored-conversation count, on tables of its own."""

    stored: int
    client: TableServiceClient
    clock: MovableClock
    service: App
    runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # The scenario's own event queues (None: events off), and a client each to count and
    # empty them (the app's StorageQueue only sends, receives and deletes).
    queues: EventQueues | None = None
    probes: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def events(self) -> bool:
        return self.queues is not None

    @property
    def name(self) -> str:
        return f"stored-{self.stored}-events-{'on' if self.events else 'off'}"


def app_client(connection_string: str) -> TableServiceClient:
    """A Table service client built exactly as the app builds its own."""
    settings = load_settings(
        {
            "TABLES_CONNECTION_STRING": connection_string,
            "RECONNECT_SIGNING_KEY": SIGNING_KEY.decode(),
        }
    )
    return table_service_client(settings)


def scenario_queues(queue_connection_string: str, stored: int) -> EventQueues:
    """A scenario's own outbox and public queues, wired as the app wires them."""
    settings = load_settings(
        {
            "RECONNECT_SIGNING_KEY": SIGNING_KEY.decode(),
            "QUEUES_CONNECTION_STRING": queue_connection_string,
            "EVENTS_QUEUE": f"sweep{stored}-events",
            "EVENTS_OUTBOX_QUEUE": f"sweep{stored}-outbox",
        }
    )
    queues = event_queues(settings)
    assert queues is not None
    return queues


def build_scenario(
    connection_string: str,
    stored: int,
    workers: ThreadPoolExecutor,
    queue_connection_string: str | None = None,
) -> Scenario:
    """A scenario on tables of its own; with events on its own queues when a queue service
    is given."""
    events = queue_connection_string is not None
    client = app_client(connection_string)
    store = TableStore(client, table_prefix=f"sweep{stored}{'e' if events else 'n'}x")
    store.ensure_tables()
    clock = MovableClock(BASE)
    queues = (
        None
        if queue_connection_string is None
        else scenario_queues(queue_connection_string, stored)
    )
    service = App(
        store, LinkSigner(SIGNING_KEY), auto_close_after=AUTO_CLOSE, clock=clock, events=queues
    )
    service.settings.put_widget(
        WidgetSettings(WIDGET, True, int(TIME_LIMIT.total_seconds() // 60), PORTAL)
    )
    scenario = Scenario(stored, client, clock, service, queues=queues)
    if queues is not None and queue_connection_string is not None:
        from azure.storage.queue import QueueClient

        for queue in (queues.outbox, queues.public):
            probe = QueueClient.from_connection_string(queue_connection_string, queue.name)
            with contextlib.suppress(ResourceExistsError):
                probe.create_queue()
            scenario.probes[queue.name] = probe
    if stored:
        started = time.perf_counter()
        ids = [f"bg-{index:06d}" for index in range(stored)]
        insert_disconnected(
            scenario,
            ids,
            lambda index: BASE + FAR_AHEAD + timedelta(minutes=index % 1440),
            workers,
        )
        print(
            f"  stored {stored:,} background conversations in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return scenario


# ------------------------------------------------------------------------ measuring


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RequestCounter:
    """Counts the HTTP requests the storage SDK sends, by wrapping its transport's `send`."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        original = RequestsTransport.send
        counter = self

        def send(transport: RequestsTransport, request: Any, **kwargs: Any) -> Any:
            with counter._lock:
                counter.count += 1
            return original(transport, request, **kwargs)

        RequestsTransport.send = send


REQUESTS = RequestCounter()


def timed(
    action: Callable[[], T], azurite_pid: int | None, queue_pid: int | None = None
) -> tuple[T, dict[str, Any]]:
    """Run `action`; its wall time, this process's CPU, Azurite's CPU (and its queue
    service's, when given) and requests sent."""
    gc.collect()
    queue_before = cpu_seconds(queue_pid)
    azurite_before = cpu_seconds(azurite_pid)
    requests_before = REQUESTS.count
    cpu_before = time.process_time()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - cpu_before
    requests = REQUESTS.count - requests_before
    azurite_after = cpu_seconds(azurite_pid)
    queue_after = cpu_seconds(queue_pid)
    azurite_cpu = (
        None if azurite_before is None or azurite_after is None else azurite_after - azurite_before
    )
    figures: dict[str, Any] = {
        "seconds": round(seconds, 4),
        "pythonCpuSeconds": round(python_cpu, 3),
        "azuriteCpuSeconds": None if azurite_cpu is None else round(azurite_cpu, 3),
        "requests": requests,
    }
    if queue_before is not None and queue_after is not None:
        figures["azuriteQueueCpuSeconds"] = round(queue_after - queue_before, 3)
    return result, figures


def queue_length(scenario: Scenario, name: str) -> int:
    """Messages on one of the scenario's queues (Azurite counts exactly)."""
    return int(scenario.probes[name].get_queue_properties().approximate_message_count)


def patiently(action: Callable[[], T], failures: list[int]) -> T:
    """`action`, tried again while the queue is unavailable (the machine is shared: Azurite
    may miss the app's short queue timeouts); each failure is counted in `failures`."""
    for _ in range(QUEUE_ATTEMPTS - 1):
        try:
            return action()
        except QueueUnavailable:
            failures.append(1)
            # The queue adapter's breaker skips the queue for this long after a failure.
            time.sleep(BREAKER_SECONDS + 0.1)
    return action()


def relay_all(scenario: Scenario, pool: ThreadPoolExecutor) -> dict[str, int]:
    """Relay every message on the scenario's outbox queue as the local host's queue listener
    does: take up to RELAY_BATCH at a time, relay them concurrently, delete each once
    relayed, until the queue is empty. What the relay did, summed; queue failures (the
    message relayed again, as the host would) counted."""
    relay = scenario.service.relay
    assert relay is not None, "events are off"
    outbox = relay.outbox.queue
    totals = {"messages": 0, "sent": 0, "waiting": 0, "dropped": 0, "forgotten": 0}
    failures: list[int] = []

    def handle(item: tuple[str, Any]) -> Any:
        text, receipt = item
        report = patiently(lambda: relay.relay(json.loads(base64.b64decode(text))), failures)
        patiently(lambda: outbox.delete(receipt), failures)
        return report

    while batch := patiently(lambda: outbox.receive(RELAY_BATCH, visibility_timeout=600), failures):
        totals["messages"] += len(batch)
        for report in pool.map(handle, batch):
            for key in ("sent", "waiting", "dropped", "forgotten"):
                totals[key] += getattr(report, key)
    totals["queueFailures"] = len(failures)
    return totals


def settle_events(scenario: Scenario, pool: ThreadPoolExecutor) -> None:
    """Untimed: relay what setting up staged (and the outbox notes of any staging the queue
    did not take in time) and empty the public queue, so that a timed run does only its own."""
    if scenario.queues is None or scenario.service.relay is None:
        return
    relay_all(scenario, pool)
    failures: list[int] = []
    while patiently(scenario.service.relay.flush_notes, failures).sent:
        pass
    scenario.probes[scenario.queues.public.name].clear_messages()


def measure_relay(
    scenario: Scenario,
    expected: int,
    pool: ThreadPoolExecutor,
    azurite_pid: int | None,
    queue_pid: int | None,
) -> dict[str, Any]:
    """Time the relay draining what one timer run staged; check that all `expected` events
    reached the public queue (those the run staged as outbox notes, because the queue did
    not answer in time, the run itself or the untimed flush after the drain sends)."""
    assert scenario.queues is not None
    relay = scenario.service.relay
    assert relay is not None
    staged_messages = queue_length(scenario, scenario.queues.outbox.name)
    totals, figures = timed(lambda: relay_all(scenario, pool), azurite_pid, queue_pid)
    failures: list[int] = []
    from_notes = 0
    while sent := patiently(relay.flush_notes, failures).sent:
        from_notes += sent
    published = queue_length(scenario, scenario.queues.public.name)
    if totals["waiting"] or totals["dropped"] or published < expected:
        raise BenchmarkFailed(
            f"{scenario.name}: relay {totals}, {from_notes} from notes afterwards, "
            f"{published} on the public queue, {expected} expected"
        )
    scenario.probes[scenario.queues.public.name].clear_messages()
    return {
        "stagedMessages": staged_messages,
        **totals,
        "sentFromNotesAfterwards": from_notes,
        # Sent twice: a relay that failed after sending some of a message's events.
        "duplicatesPublished": published - expected,
        **figures,
        "eventsPerSecond": round(totals["sent"] / figures["seconds"], 1),
        "requestsPerEvent": round(figures["requests"] / max(totals["sent"], 1), 3),
    }


def measure_enforcement(
    scenario: Scenario,
    repetition: int,
    expirations: int,
    workers: ThreadPoolExecutor,
    azurite_pid: int | None,
    queue_pid: int | None = None,
) -> dict[str, Any]:
    """Insert `expirations` conversations due now and time the one run that expires them;
    with events on, then time the relay sending that run's events."""
    moment = BASE + repetition * REPETITION_GAP
    scenario.clock.now = moment
    # Untimed: moves the checkpoint up to this moment (and auto-closes the previous
    # repetition's wrap-ups, which are due by now), as a timer running every 30 s would.
    scenario.service.timer.run()
    ids = [f"exp-{repetition}-{index:05d}" for index in range(expirations)]
    insert_expiring(scenario, ids, moment, workers)
    with ThreadPoolExecutor(max_workers=RELAY_BATCH) as relay_pool:
        settle_events(scenario, relay_pool)
        scenario.clock.now = moment + TIME_LIMIT + timedelta(minutes=1)
        report, figures = timed(scenario.service.timer.run, azurite_pid, queue_pid)
        check_report(scenario, report, expirations)
        relayed = (
            None
            if scenario.queues is None
            else measure_relay(scenario, expirations, relay_pool, azurite_pid, queue_pid)
        )
    run = {
        "repetition": repetition,
        **figures,
        "expirationsPerSecond": round(expirations / figures["seconds"], 1),
        "reportDurationSeconds": report.duration_seconds,
        "report": {
            "expired": report.expired,
            "closed": report.closed,
            "stale": report.stale,
            "pending": report.pending,
            "errors": report.errors,
            "capacityReleased": report.capacity_released,
            "eventsSentFromNotes": report.events_sent,
            "eventErrors": report.event_errors,
            "buckets": [report.first_bucket, report.last_bucket],
        },
    }
    if relayed is not None:
        run["relay"] = relayed
    scenario.runs.append(run)
    return run


class BenchmarkFailed(RuntimeError):
    """A measured run did not do what it should; its time would mean nothing."""


def check_report(scenario: Scenario, report: EnforcementReport, expirations: int) -> None:
    if (report.expired, report.errors, report.pending) != (expirations, 0, 0):
        raise BenchmarkFailed(f"{scenario.name}: unexpected report {report}")


def measure_raw_updates(
    client: TableServiceClient,
    repetition: int,
    count: int,
    workers: ThreadPoolExecutor,
    azurite_pid: int | None,
) -> dict[str, Any]:
    """The baseline: `count` sequential ETag-conditional replaces, one entity each.

    For reference (not the target) the same with TIMER_WORKERS threads, on other entities.
    """
    store = TableStore(client, table_prefix="sweepraw")
    store.ensure_tables()
    moment = BASE + repetition * REPETITION_GAP
    ids = [f"raw-{repetition}-{index:05d}" for index in range(2 * count)]
    conversations = [
        dataclasses.replace(
            domain.new_conversation(conversation_id, WIDGET, "raw-agent", None, moment),
            customer_connected=False,
            disconnected_at=moment,
            reconnect_deadline=moment + TIME_LIMIT,
        )
        for conversation_id in ids
    ]
    list(workers.map(store.insert_conversation, conversations))
    table = _table(client, store, "conversations")
    # Untimed reads: each update gets the entity and the ETag it must match.
    entities = list(workers.map(lambda cid: table.get_entity(cid, "c"), ids))
    for entity in entities:
        entity["state"] = "wrap_up"

    def update(entity: Any) -> None:
        table.update_entity(
            entity,
            mode=UpdateMode.REPLACE,
            etag=entity.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )

    def sequential() -> None:
        for entity in entities[:count]:
            update(entity)

    def concurrent() -> None:
        with ThreadPoolExecutor(max_workers=TIMER_WORKERS) as pool:
            list(pool.map(update, entities[count:]))

    _, figures = timed(sequential, azurite_pid)
    _, threaded = timed(concurrent, azurite_pid)
    return {
        "repetition": repetition,
        "updates": count,
        **figures,
        "updatesPerSecond": round(count / figures["seconds"], 1),
        "concurrent": {
            "threads": TIMER_WORKERS,
            **threaded,
            "updatesPerSecond": round(count / threaded["seconds"], 1),
        },
    }


# ------------------------------------------------------------------------ reporting


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _command_output(*args: str) -> str | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict[str, Any]:
    package = REPO_ROOT / "node_modules" / "azurite" / "package.json"
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpuModel": cpu_model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "node": _command_output("node", "--version"),
        "azurite": json.loads(package.read_text())["version"] if package.exists() else None,
        "azure-data-tables": _version("azure-data-tables"),
        "azure-core": _version("azure-core"),
        "azure-storage-queue": _version("azure-storage-queue"),
        "timerWorkers": TIMER_WORKERS,
    }


def summarize(scenarios: Sequence[Scenario], raw: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Ratios from the best and from the median of the repetitions; targets judged on best.

    The machine is shared, so interference only ever adds time: the fastest repetition is
    the best estimate of the cost itself (the reasoning of `timeit`). Medians are reported
    alongside. (a) and the targets are about the scenarios with events on (unless the plan
    turned them off); ratio (b) of the one without events, when there is one, is reported
    beside, from the same repetitions and the same baseline.
    """
    with_events = [scenario for scenario in scenarios if scenario.events]
    without = [scenario for scenario in scenarios if not scenario.events]
    summary = _summarize(with_events or without, raw)
    summary["events"] = bool(with_events)
    summary["rateRatioTarget"] = TARGET_RATE_RATIO_EVENTS if with_events else TARGET_RATE_RATIO
    summary["rateRatioMet"] = summary["best"]["rateRatio"] >= summary["rateRatioTarget"]
    if with_events and without:
        off = _summarize(without, raw)
        summary["eventsOff"] = {
            "best": off["best"],
            "median": off["median"],
            "rateRatioTarget": TARGET_RATE_RATIO,
            "rateRatioMet": off["best"]["rateRatio"] >= TARGET_RATE_RATIO,
            "perExpiration": off["perExpiration"],
        }
    summary["perRepetition"] = per_repetition(scenarios, raw)
    if with_events:
        summary["relay"] = relay_summary(min(with_events, key=lambda scenario: scenario.stored))
    return summary


def raw_rate(baseline: dict[str, Any]) -> float:
    """A repetition's baseline: the faster of one thread and TIMER_WORKERS threads."""
    updates = float(baseline["updates"])
    seconds = min(float(baseline["seconds"]), float(baseline["concurrent"]["seconds"]))
    return updates / seconds


def per_repetition(
    scenarios: Sequence[Scenario], raw: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Ratio (b) of each no-background scenario in each repetition, against that
    repetition's own baseline: the spread of the ratio, events on and off side by side."""
    smallest = min(scenario.stored for scenario in scenarios)
    rows = []
    for index, baseline in enumerate(raw):
        row: dict[str, Any] = {
            "repetition": index,
            "rawBaselinePerSecond": round(raw_rate(baseline), 1),
        }
        for scenario in scenarios:
            if scenario.stored == smallest:
                run = scenario.runs[index]
                rate = run["expirationsPerSecond"]
                key = "eventsOn" if scenario.events else "eventsOff"
                row[key] = {
                    "expirationsPerSecond": rate,
                    "rateRatio": round(rate / raw_rate(baseline), 3),
                }
        rows.append(row)
    return rows


def relay_summary(scenario: Scenario) -> dict[str, Any]:
    """The relay draining each timed run's events: best and median rate, requests per event."""
    relays = [run["relay"] for run in scenario.runs]
    return {
        "scenario": scenario.name,
        "batch": RELAY_BATCH,
        "eventsPerRun": relays[0]["sent"],
        "stagedMessagesPerRun": statistics.median(r["stagedMessages"] for r in relays),
        "bestEventsPerSecond": max(r["eventsPerSecond"] for r in relays),
        "medianEventsPerSecond": round(statistics.median(r["eventsPerSecond"] for r in relays), 1),
        "requestsPerEvent": statistics.median(r["requestsPerEvent"] for r in relays),
        "pythonCpuMsPerEvent": round(
            statistics.median(r["pythonCpuSeconds"] * 1000 / r["sent"] for r in relays), 3
        ),
    }


def _summarize(scenarios: Sequence[Scenario], raw: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """(a) and (b) of scenarios that differ only in what is stored."""
    expirations = scenarios[0].runs[0]["report"]["expired"]
    updates = raw[0]["updates"]
    pick: dict[str, Callable[[list[float]], float]] = {
        "best": min,
        "median": statistics.median,
    }
    by_stored = {
        str(scenario.stored): {
            f"{name}Seconds": round(choose([run["seconds"] for run in scenario.runs]), 4)
            for name, choose in pick.items()
        }
        for scenario in scenarios
    }
    none = by_stored[str(min(scenario.stored for scenario in scenarios))]
    largest = by_stored[str(max(scenario.stored for scenario in scenarios))]
    raw_seconds = {name: choose([run["seconds"] for run in raw]) for name, choose in pick.items()}
    concurrent_seconds = {
        name: choose([run["concurrent"]["seconds"] for run in raw]) for name, choose in pick.items()
    }
    ratios: dict[str, dict[str, float]] = {}
    for name in pick:
        expiry_rate = expirations / none[f"{name}Seconds"]
        sequential_rate = updates / raw_seconds[name]
        concurrent_rate = updates / concurrent_seconds[name]
        # The baseline is the faster way of driving raw updates, so that the timer's threads
        # cannot gain on it merely by overlapping what one thread would wait for.
        raw_rate = max(sequential_rate, concurrent_rate)
        ratios[name] = {
            "storedRatio": round(largest[f"{name}Seconds"] / none[f"{name}Seconds"], 3),
            "expirationsPerSecond": round(expiry_rate, 1),
            "rawConditionalUpdatesPerSecond": round(sequential_rate, 1),
            "rawConcurrentUpdatesPerSecond": round(concurrent_rate, 1),
            "rawBaselinePerSecond": round(raw_rate, 1),
            "rateRatio": round(expiry_rate / raw_rate, 3),
        }
    none_runs = min(scenarios, key=lambda scenario: scenario.stored).runs

    def per_item(runs: Sequence[dict[str, Any]], key: str, items: int) -> float | None:
        values = [run[key] for run in runs if run[key] is not None]
        return round(statistics.median(values) * 1000 / items, 3) if values else None

    return {
        "byStored": by_stored,
        "best": ratios["best"],
        "median": ratios["median"],
        "targetsJudgedOn": "best",
        "storedRatioTarget": TARGET_STORED_RATIO,
        "storedRatioMet": ratios["best"]["storedRatio"] <= TARGET_STORED_RATIO,
        "rateRatioTarget": TARGET_RATE_RATIO,
        "rateRatioMet": ratios["best"]["rateRatio"] >= TARGET_RATE_RATIO,
        # Medians over the repetitions, per expiration of the no-background scenario and per
        # sequential raw update: requests sent, CPU of this process, CPU of Azurite.
        "perExpiration": {
            "requests": per_item(none_runs, "requests", expirations * 1000),
            "pythonCpuMs": per_item(none_runs, "pythonCpuSeconds", expirations),
            "azuriteCpuMs": per_item(none_runs, "azuriteCpuSeconds", expirations),
        },
        "perRawUpdate": {
            "requests": per_item(raw, "requests", updates * 1000),
            "pythonCpuMs": per_item(raw, "pythonCpuSeconds", updates),
            "azuriteCpuMs": per_item(raw, "azuriteCpuSeconds", updates),
        },
    }


def table(figures: dict[str, Any]) -> str:
    summary = figures["summary"]
    plan = figures["plan"]
    best, median = summary["best"], summary["median"]
    none = summary["byStored"][str(min(plan["stored"]))]
    lines = [
        f"Time-limit sweep: {plan['expirations']:,} expirations per run, "
        f"{plan['repetitions']} repetition(s); targets judged on the best repetition; "
        f"integration events {'on' if summary['events'] else 'off'}",
        "",
        f"{'stored (not yet expired)':>26} | {'best s':>8} | {'median s':>9} | "
        f"{'expirations/s':>13} | {'vs none':>7} | {'vs none (median)':>16}",
        f"{'-' * 26}-+-{'-' * 8}-+-{'-' * 9}-+-{'-' * 13}-+-{'-' * 7}-+-{'-' * 16}",
    ]
    for stored in plan["stored"]:
        row = summary["byStored"][str(stored)]
        lines.append(
            f"{stored:>26,} | {row['bestSeconds']:>8.3f} | {row['medianSeconds']:>9.3f} | "
            f"{plan['expirations'] / row['bestSeconds']:>13,.0f} | "
            f"{row['bestSeconds'] / none['bestSeconds']:>7.3f} | "
            f"{row['medianSeconds'] / none['medianSeconds']:>16.3f}"
        )
    met = {True: "met", False: "NOT MET"}

    def per_row(label: str, row: dict[str, Any]) -> str:
        azurite = row["azuriteCpuMs"] if row["azuriteCpuMs"] is not None else float("nan")
        return (
            f"{label:>26} | {row['requests']:>9.2f} | {row['pythonCpuMs']:>13.2f} | "
            f"{azurite:>14.2f}"
        )

    lines += [
        "",
        f"(a) largest / none: {best['storedRatio']:.3f} (median {median['storedRatio']:.3f}); "
        f"target <= {summary['storedRatioTarget']}: {met[summary['storedRatioMet']]}",
        f"(b) expirations/s {best['expirationsPerSecond']:,.0f} vs raw conditional updates/s "
        f"{best['rawBaselinePerSecond']:,.0f}: {best['rateRatio']:.3f} "
        f"(median {median['rateRatio']:.3f}); target >= {summary['rateRatioTarget']}: "
        f"{met[summary['rateRatioMet']]}",
        f"    raw: the faster of one thread ({best['rawConditionalUpdatesPerSecond']:,.0f}/s) "
        f"and {TIMER_WORKERS} threads ({best['rawConcurrentUpdatesPerSecond']:,.0f}/s)",
    ]
    if "eventsOff" in summary:
        off = summary["eventsOff"]
        lines.append(
            f"(b) with events off, same run: expirations/s "
            f"{off['best']['expirationsPerSecond']:,.0f}: {off['best']['rateRatio']:.3f} "
            f"(median {off['median']['rateRatio']:.3f}); target >= {off['rateRatioTarget']}: "
            f"{met[off['rateRatioMet']]}"
        )
    lines.append(
        "(b) per repetition (its own baseline): "
        + "; ".join(
            " ".join(
                f"{key.removeprefix('events').lower()} {row[key]['rateRatio']:.3f}"
                for key in ("eventsOn", "eventsOff")
                if key in row
            )
            for row in summary["perRepetition"]
        )
    )
    if "relay" in summary:
        relay = summary["relay"]
        lines.append(
            f"relay draining a run's {relay['eventsPerRun']:,} events "
            f"({relay['stagedMessagesPerRun']:g} outbox messages, {relay['batch']} at a time): "
            f"{relay['bestEventsPerSecond']:,.0f} events/s best, "
            f"{relay['medianEventsPerSecond']:,.0f} median; "
            f"{relay['requestsPerEvent']:.3f} requests an event"
        )
    lines += [
        "",
        f"{'medians, per':>26} | {'requests':>9} | {'client CPU ms':>13} | {'Azurite CPU ms':>14}",
        f"{'-' * 26}-+-{'-' * 9}-+-{'-' * 13}-+-{'-' * 14}",
        per_row(
            "expiration" + (", events on" if summary["events"] else ""), summary["perExpiration"]
        ),
        *(
            [per_row("expiration, events off", summary["eventsOff"]["perExpiration"])]
            if "eventsOff" in summary
            else []
        ),
        per_row("raw conditional update", summary["perRawUpdate"]),
        "",
        f"load average before {figures['loadAverage']['before']}, "
        f"after {figures['loadAverage']['after']}; nproc {figures['environment']['nproc']}",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smaller smoke run with one repetition"
    )
    parser.add_argument("--output", type=Path, help="where to write the JSON figures")
    parser.add_argument("--expirations", type=int, help="expirations per timed run")
    parser.add_argument(
        "--stored",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        help="comma-separated background sizes, e.g. 0,10000,50000",
    )
    parser.add_argument("--repetitions", type=int, help="timed runs per scenario")
    parser.add_argument(
        "--events",
        choices=("both", "on", "off"),
        default="both",
        help="integration events: on in every scenario, off, or both (on, plus the smallest "
        "scenario again without events: ratio (b) both ways in one run; the default)",
    )
    return parser.parse_args(argv)


def run(
    plan: Plan, azurite: Azurite, queues: AzuriteQueue | None
) -> tuple[list[Scenario], list[dict[str, Any]]]:
    queue_pid = None if queues is None else queues.pid
    queue_connection = None if queues is None else queues.connection_string
    with ThreadPoolExecutor(max_workers=INSERT_WORKERS) as workers:
        print("setting up scenarios (not measured)", flush=True)
        scenarios = [
            build_scenario(azurite.connection_string, stored, workers, queue_connection)
            for stored in plan.stored
        ]
        if plan.events == "both":
            scenarios.append(build_scenario(azurite.connection_string, min(plan.stored), workers))
        raw_client = app_client(azurite.connection_string)
        raw: list[dict[str, Any]] = []
        for repetition in range(plan.repetitions):
            # Rotate the order so that no scenario always runs first or last.
            shift = repetition % len(scenarios)
            for scenario in scenarios[shift:] + scenarios[:shift]:
                measured = measure_enforcement(
                    scenario, repetition, plan.expirations, workers, azurite.pid, queue_pid
                )
                relayed = (
                    f"; relay {measured['relay']['seconds']:.3f} s" if "relay" in measured else ""
                )
                print(
                    f"  repetition {repetition + 1}: {scenario.name:>24}: "
                    f"{measured['seconds']:.3f} s{relayed}",
                    flush=True,
                )
            baseline = measure_raw_updates(
                raw_client, repetition, plan.expirations, workers, azurite.pid
            )
            raw.append(baseline)
            print(
                f"  repetition {repetition + 1}: raw conditional updates: "
                f"{baseline['seconds']:.3f} s",
                flush=True,
            )
    return scenarios, raw


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(
        expirations=args.expirations or plan.expirations,
        stored=args.stored or plan.stored,
        repetitions=args.repetitions or plan.repetitions,
        events=args.events,
    )
    custom = (args.expirations, args.stored, args.repetitions) != (None, None, None)
    default_name = "sweep-quick.json" if args.quick or custom else "sweep.json"
    output = args.output or RESULTS_DIR / default_name
    started_at = datetime.now(UTC)
    load_before = [round(value, 2) for value in os.getloadavg()]
    REQUESTS.install()
    azurite = Azurite().start()
    queues: AzuriteQueue | None = None
    try:
        if plan.events != "off":
            queues = AzuriteQueue()
            queues.start()
        scenarios, raw = run(plan, azurite, queues)
    except BenchmarkFailed as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    finally:
        if queues is not None:
            queues.stop()
        azurite.stop()
    figures: dict[str, Any] = {
        "benchmark": "time-limit sweep",
        "command": " ".join(["python -m benchmarks.sweep", *sys.argv[1:]]),
        "startedAt": started_at.isoformat(timespec="seconds"),
        "finishedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadAverage": {
            "before": load_before,
            "after": [round(value, 2) for value in os.getloadavg()],
        },
        "environment": environment(),
        "plan": dataclasses.asdict(plan),
        "baseline": (
            "TableClient.update_entity(mode=REPLACE, etag=<entity's ETag>, "
            "match_condition=IfNotModified), one call per distinct conversation-shaped entity "
            "read beforehand (untimed), same Azurite and client options, same repetitions; "
            f"the faster of one thread and {TIMER_WORKERS} threads"
        ),
        "summary": summarize(scenarios, raw),
        "scenarios": {scenario.name: scenario.runs for scenario in scenarios},
        "rawConditionalUpdates": raw,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print()
    print(table(figures))
    print(f"\nfigures written to {output}")
    summary = figures["summary"]
    return 0 if summary["storedRatioMet"] and summary["rateRatioMet"] else 1


if __name__ == "__main__":
    sys.exit(main())
