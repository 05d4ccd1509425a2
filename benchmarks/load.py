"""Bounded load on loopback: the local host (a subprocess) over a fresh in-memory Azurite.

    .venv/bin/python -m benchmarks.load            # the figures in docs/performance.md
    .venv/bin/python -m benchmarks.load --quick    # a smoke run of a few seconds

It starts its own Azurite and `python -m local.host` on free 127.0.0.1 ports, seeds widgets
and disconnected conversations (so their links are usable), then runs a fixed number of
requests (stopping early at a maximum duration) from a few worker threads with the mix

    40 % reconnect context  GET  /api/widgets/{w}/reconnect/{id}
    20 % continue           POST /api/widgets/{w}/reconnect/{id}
    20 % lifecycle events   POST /api/conversations/{c}/events (disconnect / reconnect)
    20 % settings reads     GET  /api/manage/widgets/{w}

and measures requests per second, p50/p99 latency (overall and per kind) and errors (any
status other than the expected one; a 5xx or a transport failure always). As the reference
it measures the raw Azurite point-read rate of the same run: `get_entity` of one seeded
conversation, sequentially and with the same concurrency. It does all this
on fresh servers: Azurite and the local host (`python -m local.host`, as `make dev` runs it).
Everything goes to benchmarks/results/load.json; a table is printed. Both servers are
stopped by their PID. Nothing here makes assertions about time: it writes figures.

    --in-process   then the same mix again, on a fresh Azurite, with the app's handlers
                   called directly with a func.HttpRequest in this process (no host, no HTTP):
                   the app's own CPU per request (thread CPU of the handler calls) and rate
    --profile F    py-spy (--gil) on the local host during its load, collapsed stacks to F
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
import httpx
from azure.data.tables import TableClient, TableServiceClient

from local.azurite import Azurite
from local.loader import (
    DEFAULT_APP,
    FunctionTable,
    load_function_app,
    load_functions,
    setting_defaults,
)
from local.processes import free_port, stop_process_group, wait_for_port
from shared.storage.entities import CONVERSATION_ROW
from shared.wiring import storage_client_options

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results" / "load.json"
LOOPBACK = "127.0.0.1"
# January 1st at midnight: the timer never fires during a run, so it does not compete.
IDLE_SCHEDULE = "0 0 0 1 1 *"
PORTAL = "https://contoso.example/chat"
AGENT_PREFIX = "load-agent-"
# (kind, share of the requests)
MIX: tuple[tuple[str, float], ...] = (
    ("context", 0.40),
    ("continue", 0.20),
    ("event", 0.20),
    ("settings", 0.20),
)
EXPECTED_STATUS = {"context": 200, "continue": 200, "event": 200, "settings": 200}
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0


# ------------------------------------------------------------------------ figures


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (`pct` in 0..100) of `values`; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    """Count, mean, p50, p90, p99 and max of latencies in milliseconds."""
    count = len(latencies_ms)
    return {
        "count": count,
        "meanMs": round(sum(latencies_ms) / count, 2) if count else 0.0,
        "p50Ms": round(percentile(latencies_ms, 50), 2),
        "p90Ms": round(percentile(latencies_ms, 90), 2),
        "p99Ms": round(percentile(latencies_ms, 99), 2),
        "maxMs": round(max(latencies_ms), 2) if count else 0.0,
    }


def choose_kinds(count: int, rng: random.Random) -> list[str]:
    """`count` request kinds in the MIX proportions (exact up to rounding), shuffled."""
    kinds: list[str] = []
    for kind, share in MIX:
        kinds += [kind] * round(count * share)
    while len(kinds) < count:
        kinds.append(MIX[0][0])
    kinds = kinds[:count]
    rng.shuffle(kinds)
    return kinds


# ------------------------------------------------------------------ process control


def process_group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5 (pgrp)
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


class LocalHost:
    """`python -m local.host` as a child process in its own session, stopped by its PID."""

    def __init__(self, environ: dict[str, str], log_path: Path, module: str = "local.host") -> None:
        self.module = module
        self.port = free_port()
        self.environ = environ
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LocalHost:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port, STARTUP_TIMEOUT)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None:
            stop_process_group(self.process, timeout)


# The mix is measured as it was before integration events (the same figure, comparable run to
# run); `benchmarks.events` runs the same mix with events on and a queue service. Without
# this, events would go to a queue nobody started and every change would take the
# queue-down path.
EVENTS_OFF = {"EVENTS_QUEUE": ""}


@contextlib.contextmanager
def servers(
    signing_key: str, log_path: Path, host_module: str = "local.host"
) -> Iterator[tuple[Azurite, LocalHost]]:
    """A fresh in-memory Azurite and a local host using it; both stopped by PID on exit."""
    azurite = Azurite()
    host: LocalHost | None = None
    try:
        azurite.start()
        environ = {
            **os.environ,
            "TABLES_CONNECTION_STRING": azurite.connection_string,
            "RECONNECT_SIGNING_KEY": signing_key,
            "RECONNECT_ENFORCE_SCHEDULE": IDLE_SCHEDULE,
            **EVENTS_OFF,
        }
        environ.pop("TABLES_ENDPOINT", None)
        host = LocalHost(environ, log_path, host_module).start()
        yield azurite, host
    finally:
        if host is not None:
            host.stop()
        azurite.stop()


# ---------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Seeded:
    """What the load runs against: widget ids and (widget, conversation, reconnect id)."""

    widgets: list[str]
    conversations: list[tuple[str, str, str]]


def _check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise RuntimeError(
            f"seeding: {response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def seed(client: httpx.Client, widgets: int, conversations: int, run_id: str) -> Seeded:
    """Widgets with reconnection on (24 h limit) and active conversations, disconnected."""
    widget_ids = [f"load-{run_id}-w{index}" for index in range(widgets)]
    for widget_id in widget_ids:
        body = {
            "reconnectEnabled": True,
            "timeLimitMinutes": 1440,
            "portalUrl": PORTAL,
            "redirectUrl": "https://contoso.example/new-chat",
        }
        _check(client.put(f"/api/manage/widgets/{widget_id}", json=body), 200, 201)
    seeded: list[tuple[str, str, str]] = []
    for index in range(conversations):
        widget_id = widget_ids[index % widgets]
        conversation_id = f"load-{run_id}-c{index}"
        _check(
            client.put(
                f"/api/conversations/{conversation_id}",
                json={"widgetId": widget_id, "agentId": f"{AGENT_PREFIX}{index % 10}"},
            ),
            201,
        )
        after = _check(
            client.post(
                f"/api/conversations/{conversation_id}/events",
                json={"type": "customer_disconnected"},
            ),
            200,
        )
        reconnect_id = parse_qs(urlsplit(after["reconnectUrl"]).query)["oc.reconnectid"][0]
        seeded.append((widget_id, conversation_id, reconnect_id))
    return Seeded(widget_ids, seeded)


# ------------------------------------------------------------------------------- load


@dataclass
class Sample:
    kind: str
    status: int  # 0: transport failure
    latency_ms: float
    ok: bool


@dataclass
class LoadRun:
    samples: list[Sample] = field(default_factory=list)
    wall_seconds: float = 0.0
    stopped_by_duration: bool = False
    planned: int = 0


def _send(client: httpx.Client, kind: str, seeded: Seeded, rng: random.Random) -> httpx.Response:
    widget_id, conversation_id, reconnect_id = rng.choice(seeded.conversations)
    if kind == "context":
        return client.get(f"/api/widgets/{widget_id}/reconnect/{reconnect_id}")
    if kind == "continue":
        return client.post(f"/api/widgets/{widget_id}/reconnect/{reconnect_id}")
    if kind == "event":
        event = rng.choice(("customer_disconnected", "customer_reconnected"))
        return client.post(
            f"/api/conversations/{conversation_id}/events",
            json={"type": event, "eventId": uuid.uuid4().hex},
        )
    if kind == "settings":
        return client.get(f"/api/manage/widgets/{rng.choice(seeded.widgets)}")
    raise ValueError(kind)


def run_load(
    base_url: str,
    seeded: Seeded,
    *,
    requests: int,
    concurrency: int,
    duration: float,
    seed_value: int,
    transport: httpx.BaseTransport | None = None,
) -> LoadRun:
    """Send `requests` requests from `concurrency` threads; stop early after `duration` s.

    With a `transport` (the in-process one) no request leaves the process."""
    rng = random.Random(seed_value)
    plan = choose_kinds(requests, rng)
    run = LoadRun(planned=len(plan))
    lock = threading.Lock()
    next_index = 0
    started = time.perf_counter()
    deadline = started + duration

    def worker(worker_index: int) -> None:
        nonlocal next_index
        worker_rng = random.Random(seed_value * 1000 + worker_index)
        local: list[Sample] = []
        with httpx.Client(
            base_url=base_url, timeout=REQUEST_TIMEOUT, transport=transport
        ) as client:
            while True:
                with lock:
                    if next_index >= len(plan):
                        break
                    if time.perf_counter() >= deadline:
                        run.stopped_by_duration = True
                        break
                    kind = plan[next_index]
                    next_index += 1
                began = time.perf_counter()
                try:
                    status = _send(client, kind, seeded, worker_rng).status_code
                except httpx.HTTPError:
                    status = 0
                latency = (time.perf_counter() - began) * 1000
                local.append(Sample(kind, status, latency, status == EXPECTED_STATUS[kind]))
        with lock:
            run.samples += local

    threads = [
        threading.Thread(target=worker, args=(index,), name=f"load-{index}")
        for index in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall_seconds = time.perf_counter() - started
    return run


def summarize_load(run: LoadRun) -> dict[str, Any]:
    """The run's figures: rate, latencies overall and per kind, errors by kind and status."""
    errors: dict[str, int] = {}
    for sample in run.samples:
        if not sample.ok:
            key = f"{sample.kind}:{sample.status or 'transport'}"
            errors[key] = errors.get(key, 0) + 1
    per_kind = {
        kind: latency_summary([s.latency_ms for s in run.samples if s.kind == kind])
        for kind, _ in MIX
    }
    for kind, _ in MIX:
        per_kind[kind]["requestsPerSecond"] = round(
            per_kind[kind]["count"] / run.wall_seconds if run.wall_seconds else 0.0, 1
        )
    completed = len(run.samples)
    return {
        "planned": run.planned,
        "completed": completed,
        "stoppedByDuration": run.stopped_by_duration,
        "wallSeconds": round(run.wall_seconds, 3),
        "requestsPerSecond": round(completed / run.wall_seconds, 1) if run.wall_seconds else 0.0,
        "errors": sum(errors.values()),
        "serverErrors": sum(1 for s in run.samples if s.status >= 500),
        "errorsByKindAndStatus": errors,
        "latency": latency_summary([s.latency_ms for s in run.samples]),
        "byKind": per_kind,
    }


# -------------------------------------------------------------------------- reference


def point_reads(
    make_client: Callable[[], TableClient],
    partition: str,
    *,
    reads: int,
    concurrency: int,
) -> dict[str, Any]:
    """`reads` get_entity calls of one entity from `concurrency` threads (a client each)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = [
        reads // concurrency + (1 if i < reads % concurrency else 0) for i in range(concurrency)
    ]
    failures = 0

    def worker(count: int) -> None:
        nonlocal failures
        local: list[float] = []
        failed = 0
        with make_client() as table:
            for _ in range(count):
                began = time.perf_counter()
                try:
                    table.get_entity(partition, CONVERSATION_ROW)
                except Exception:
                    failed += 1
                local.append((time.perf_counter() - began) * 1000)
        with lock:
            latencies.extend(local)
            failures += failed

    started = time.perf_counter()
    cpu_started = time.process_time()
    threads = [threading.Thread(target=worker, args=(count,)) for count in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    # The client's CPU per read: this process does nothing else meanwhile.
    cpu = time.process_time() - cpu_started
    return {
        "reads": len(latencies),
        "clientCpuMsPerRead": round(cpu * 1000 / (len(latencies) or 1), 3),
        "concurrency": concurrency,
        "failures": failures,
        "wallSeconds": round(wall, 3),
        "readsPerSecond": round(len(latencies) / wall, 1) if wall else 0.0,
        "latency": latency_summary(latencies),
    }


# ------------------------------------------------------------------------ environment


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _node_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    return None


def _azurite_version() -> str | None:
    with contextlib.suppress(OSError, ValueError):
        package = REPO_ROOT / "node_modules" / "azurite" / "package.json"
        return str(json.loads(package.read_text())["version"])
    return None


def environment() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpuModel": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "node": _node_version(),
        "azurite": _azurite_version(),
        "packages": {
            name: _version(name)
            for name in (
                "azure-functions",
                "azure-data-tables",
                "azure-core",
                "uvicorn",
                "starlette",
                "httpx",
                "pydantic",
            )
        },
    }


# -------------------------------------------------------------------------------- main


def _table(figures: dict[str, Any], nproc: int | None) -> str:
    load = figures["load"]
    rows = [("kind", "requests", "req/s", "p50 ms", "p99 ms", "max ms")]
    for kind, summary in load["byKind"].items():
        rows.append(
            (
                kind,
                str(summary["count"]),
                f"{summary['requestsPerSecond']:.1f}",
                f"{summary['p50Ms']:.1f}",
                f"{summary['p99Ms']:.1f}",
                f"{summary['maxMs']:.1f}",
            )
        )
    overall = load["latency"]
    rows.append(
        (
            "all",
            str(load["completed"]),
            f"{load['requestsPerSecond']:.1f}",
            f"{overall['p50Ms']:.1f}",
            f"{overall['p99Ms']:.1f}",
            f"{overall['maxMs']:.1f}",
        )
    )
    for name, ref in (
        ("azurite get_entity x1", figures["reference"]["sequential"]),
        (
            f"azurite get_entity x{figures['reference']['concurrent']['concurrency']}",
            figures["reference"]["concurrent"],
        ),
    ):
        rows.append(
            (
                name,
                str(ref["reads"]),
                f"{ref['readsPerSecond']:.1f}",
                f"{ref['latency']['p50Ms']:.1f}",
                f"{ref['latency']['p99Ms']:.1f}",
                f"{ref['latency']['maxMs']:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    cpu = figures["cpu"]
    lines.append("")
    lines.append(
        f"errors: {load['errors']} (5xx: {load['serverErrors']}) {load['errorsByKindAndStatus']}; "
        f"wall {load['wallSeconds']} s; stopped by duration: {load['stoppedByDuration']}"
    )
    ratio = figures["requestsPerRawRead"]
    read_cpu = figures["reference"]["sequential"]["clientCpuMsPerRead"]
    lines.append(f"client CPU of a raw point read (x1): {read_cpu:.2f} ms")
    lines.append(
        f"requests per raw point read: {ratio['sequential']:.3f} (vs x1), "
        f"{ratio['faster']:.3f} (vs the faster reference); by CPU {ratio['byCpu']:.3f} "
        "(a raw read's client CPU / a request's CPU where it is served)"
    )
    if "appCpuMsPerRequest" in cpu:
        lines.append(
            f"CPU during the load: the app's handlers {cpu['appCpuMsPerRequest']:.2f} ms a "
            f"request; this process (handlers and load generator) {cpu['generatorCoresBusy']:.2f}"
            f" cores; Azurite {cpu['azuriteCoresBusy']:.2f} cores "
            f"({cpu['azuriteCpuMsPerRequest']:.1f} ms)"
        )
    else:
        lines.append(
            f"CPU during the load: local host {cpu['hostCoresBusy']:.2f} cores "
            f"({cpu['hostCpuMsPerRequest']:.1f} ms a request), Azurite "
            f"{cpu['azuriteCoresBusy']:.2f} cores ({cpu['azuriteCpuMsPerRequest']:.1f} ms), "
            f"load generator {cpu['generatorCoresBusy']:.2f} cores (of {nproc})"
        )
    lines.append(
        f"load average before {figures['loadAverage']['before']}, "
        f"after {figures['loadAverage']['after']}"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--requests", type=int, default=4000, help="requests to send (4000)")
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads (8)")
    parser.add_argument(
        "--duration", type=float, default=120.0, help="stop after this many seconds (120)"
    )
    parser.add_argument("--conversations", type=int, default=200, help="seeded (200)")
    parser.add_argument("--widgets", type=int, default=4, help="seeded widgets (4)")
    parser.add_argument(
        "--reference-reads", type=int, default=2000, help="Azurite get_entity calls (2000)"
    )
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first (100)")
    parser.add_argument("--seed", type=int, default=20261125, help="random seed")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="also run the same mix with the handlers called directly (no host), on a fresh "
        "Azurite, after the local host's run",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record the local host with py-spy (--gil) during the load, in raw "
        "(collapsed stacks) format, to this file",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 300 requests, 20 conversations, 200 reference reads, 30 s at most; "
        "writes load-quick.json unless --output is given",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.conversations, args.reference_reads = 300, 20, 200
        args.warmup, args.duration = 20, min(args.duration, 30.0)
        if args.output == RESULTS:
            # A smoke run must not overwrite the committed figures.
            args.output = RESULTS.with_name("load-quick.json")
    for name in ("requests", "concurrency", "conversations", "widgets", "reference_reads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.duration <= 600:
        parser.error("--duration must be in (0, 600] seconds")
    return args


def _start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the process's GIL holder (its CPU, not its waits) until stopped."""
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--gil", "--format", "raw", "--rate", "200"]
    profiler = subprocess.Popen(
        [*command, "--output", str(output), "--pid", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # py-spy attaches before the load starts
    return profiler


def _stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    """SIGINT makes py-spy write its output; wait for it by PID."""
    profiler.send_signal(signal.SIGINT)
    _, stderr = profiler.communicate(timeout=60)
    print(stderr.decode("utf-8", "replace").strip(), flush=True)


# The local host exactly as `make dev` and the e2e tests run it.
HOST_MODULE = "local.host"


class InProcessTransport(httpx.BaseTransport):
    """Calls the app's HTTP functions directly with a ``func.HttpRequest``: no server, no HTTP.

    Routing is the local host's (`FunctionTable.find`); the handler runs in the calling
    thread, and the CPU time of that thread during the call is summed: the app's own CPU
    (handler, use cases, storage client), without any host around it.
    """

    def __init__(self, table: FunctionTable) -> None:
        self.table = table
        self.lock = threading.Lock()
        self.calls = 0
        self.handler_cpu_seconds = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw_path = request.url.raw_path.split(b"?", 1)[0]
        found = [
            (f, params) for f, params in self.table.find(raw_path) if f.accepts(request.method)
        ]
        if not found:
            return httpx.Response(404)
        function, route_params = found[0]
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.url.params),
            route_params=route_params,
            body=request.read(),
        )
        began = time.thread_time()
        result = function.handler(**{function.arg_name: http_request})
        spent = time.thread_time() - began
        with self.lock:
            self.calls += 1
            self.handler_cpu_seconds += spent
        return httpx.Response(
            int(result.status_code), headers=dict(result.headers), content=result.get_body()
        )


@dataclass
class Target:
    """Where the load goes: a base URL and, in process, the transport that serves it."""

    base_url: str
    azurite: Azurite
    host_pid: int | None = None
    transport: InProcessTransport | None = None


@contextlib.contextmanager
def local_host_target(signing_key: str, log_path: Path) -> Iterator[Target]:
    """The local host as `make dev` and the e2e tests run it, over a fresh Azurite."""
    with servers(signing_key, log_path, HOST_MODULE) as (azurite, host):
        assert host.process is not None
        print(f"[local host] pid {host.process.pid} on port {host.port}", flush=True)
        yield Target(host.base_url, azurite, host_pid=host.process.pid)


@contextlib.contextmanager
def in_process_target(signing_key: str, log_path: Path) -> Iterator[Target]:
    """The function app imported into this process, over a fresh Azurite, logging as the host."""
    azurite = Azurite()
    try:
        azurite.start()
        os.environ.update(
            {
                "TABLES_CONNECTION_STRING": azurite.connection_string,
                "RECONNECT_SIGNING_KEY": signing_key,
                "RECONNECT_ENFORCE_SCHEDULE": IDLE_SCHEDULE,
                **EVENTS_OFF,
            }
        )
        os.environ.pop("TABLES_ENDPOINT", None)
        # The app's own log lines cost what they cost under the host: same level, to a file.
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.getLogger("azure").setLevel(logging.WARNING)
        try:
            environ = {**setting_defaults(), **os.environ}
            table = load_functions(load_function_app(DEFAULT_APP), environ)
            yield Target("http://in-process", azurite, transport=InProcessTransport(table))
        finally:
            root.removeHandler(handler)
            handler.close()
    finally:
        azurite.stop()


def measure(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """One run on fresh servers: seed, warm up, the Azurite reference, then the load."""
    run_id = uuid.uuid4().hex[:8]
    load_before = [round(value, 2) for value in os.getloadavg()]
    azurite = target.azurite
    assert azurite.process is not None
    with httpx.Client(
        base_url=target.base_url, timeout=REQUEST_TIMEOUT, transport=target.transport
    ) as client:
        seeded = seed(client, args.widgets, args.conversations, run_id)
    # Warm-up: first requests pay for imports, connections and caches.
    run_load(
        target.base_url,
        seeded,
        requests=args.warmup,
        concurrency=args.concurrency,
        duration=args.duration,
        seed_value=args.seed + 1,
        transport=target.transport,
    )

    def make_client() -> TableClient:
        # Built as the app builds its own (shared/wiring.py).
        endpoint = TableServiceClient.from_connection_string(azurite.connection_string).url
        service = TableServiceClient.from_connection_string(
            azurite.connection_string, **storage_client_options(endpoint)
        )
        return service.get_table_client("conversations")

    partition = seeded.conversations[0][1]
    sequential = point_reads(make_client, partition, reads=args.reference_reads, concurrency=1)
    concurrent = point_reads(
        make_client, partition, reads=args.reference_reads, concurrency=args.concurrency
    )
    host_pid = target.host_pid
    profiler = _start_profiler(host_pid, args.profile) if args.profile and host_pid else None
    handler_before = (
        (target.transport.calls, target.transport.handler_cpu_seconds)
        if target.transport
        else (0, 0.0)
    )
    cpu_before = (
        process_group_cpu_seconds(host_pid) if host_pid else 0.0,
        process_group_cpu_seconds(azurite.process.pid),
        time.process_time(),
    )
    load = run_load(
        target.base_url,
        seeded,
        requests=args.requests,
        concurrency=args.concurrency,
        duration=args.duration,
        seed_value=args.seed,
        transport=target.transport,
    )
    cpu_after = (
        process_group_cpu_seconds(host_pid) if host_pid else 0.0,
        process_group_cpu_seconds(azurite.process.pid),
        time.process_time(),
    )
    if profiler is not None:
        _stop_profiler(profiler)
    wall = load.wall_seconds or 1.0
    completed = len(load.samples) or 1
    host_cpu = cpu_after[0] - cpu_before[0]
    azurite_cpu = cpu_after[1] - cpu_before[1]
    cpu = {
        "hostCoresBusy": round(host_cpu / wall, 3),
        "azuriteCoresBusy": round(azurite_cpu / wall, 3),
        "generatorCoresBusy": round((cpu_after[2] - cpu_before[2]) / wall, 3),
        "hostCpuMsPerRequest": round(host_cpu * 1000 / completed, 2),
        "azuriteCpuMsPerRequest": round(azurite_cpu * 1000 / completed, 2),
    }
    if target.transport is not None:
        calls = target.transport.calls - handler_before[0]
        spent = target.transport.handler_cpu_seconds - handler_before[1]
        # In process, "the generator" is this whole process: handlers included.
        cpu["appCpuMsPerRequest"] = round(spent * 1000 / (calls or 1), 3)
    reference_rate = max(sequential["readsPerSecond"], concurrent["readsPerSecond"])
    summary = summarize_load(load)
    # What one request costs the process that serves it (the host, or the app's handlers
    # when in process), counted in raw reads' client CPU: the rate ratio the two would reach
    # if each had a core to itself, which a shared machine's scheduling does not distort.
    serving_ms = cpu.get("appCpuMsPerRequest", cpu["hostCpuMsPerRequest"])
    read_ms = sequential["clientCpuMsPerRead"]
    return {
        "variant": "inProcess" if target.transport else "localHost",
        "load": summary,
        "reference": {
            "what": "Azurite get_entity of one seeded conversation entity, same client options",
            "sequential": sequential,
            "concurrent": concurrent,
        },
        "requestsPerRawRead": {
            "sequential": round(summary["requestsPerSecond"] / sequential["readsPerSecond"], 3),
            "faster": round(summary["requestsPerSecond"] / reference_rate, 3),
            "byCpu": round(read_ms / serving_ms, 3) if serving_ms else 0.0,
        },
        "cpu": cpu,
        "loadAverage": {
            "before": load_before,
            "after": [round(value, 2) for value in os.getloadavg()],
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # The host logs every request; kept outside the repository, removed after a clean run.
    log_dir = Path(tempfile.mkdtemp(prefix="load-host-"))
    runs: dict[str, dict[str, Any]] = {}
    signing_key = secrets.token_urlsafe(48)
    with local_host_target(signing_key, log_dir / "host.log") as target:
        runs["localHost"] = measure(args, target)
    if args.in_process:
        with in_process_target(signing_key, log_dir / "in-process.log") as target:
            runs["inProcess"] = measure(args, target)
    figures: dict[str, Any] = {
        "command": "python -m benchmarks.load "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "maxDurationSeconds": args.duration,
            "conversations": args.conversations,
            "widgets": args.widgets,
            "warmupRequests": args.warmup,
            "referenceReads": args.reference_reads,
            "seed": args.seed,
            "mix": dict(MIX),
            "expectedStatus": EXPECTED_STATUS,
        },
        "runs": runs,
        "environment": environment(),
    }
    args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    for variant, run in runs.items():
        print(f"\n== {variant}")
        print(_table(run, figures["environment"]["nproc"]))
    print(f"\nwritten to {args.output}")
    if any(run["load"]["errors"] for run in runs.values()):
        print(f"the local hosts' logs: {log_dir}")
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
