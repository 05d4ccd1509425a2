"""The `make dev` runner: starts Azurite (tables, queues) and the host, answers health, runs
queue triggers, leaves nothing behind."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient

from local.azurite import DEV_ACCOUNT, queue_connection_string
from local.demo import DEV_ISSUER
from local.dev import ensure_signing_key
from local.processes import free_port
from tests.local.sample_app import FORWARD_IN, FORWARD_OUT

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = "tests/local/sample_app.py:health_app"
REAL_APP = "function_app:app"
STARTUP_TIMEOUT = 90.0
# Settings the runner provides itself; the tests must not inherit them from the shell.
RUNNER_SETTINGS = (
    "TABLES_CONNECTION_STRING",
    "QUEUES_CONNECTION_STRING",
    "AzureWebJobsStorage",
    "EVENTS_QUEUE",
    "RECONNECT_SIGNING_KEY",
    "LOCAL_HOST_APP",
)
FORWARDING_APP = "tests/local/sample_app.py:forwarding_app"

pytestmark = pytest.mark.timeout(240)


def is_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Runner:
    """A `python -m local.dev` child with its output in a file (a pipe could fill up)."""

    def __init__(
        self, process: subprocess.Popen[bytes], log: Path, functions_port: int, queue_port: int
    ) -> None:
        self.process = process
        self.log = log
        self.base_url = f"http://127.0.0.1:{functions_port}"
        self.queue_port = queue_port

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def reported_pids(self) -> dict[str, int]:
        """The child PIDs the runner printed, as `azurite pid=N`, `azurite-queue pid=N` and
        `host pid=N`."""
        found = re.findall(r"^(azurite|azurite-queue|host) pid=(\d+)$", self.output(), re.M)
        return {name: int(pid) for name, pid in found}

    def wait_healthy(self) -> None:
        """Wait for a 200 from GET /api/health and the runner's URLs; fail if it dies first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"runner exited with {self.process.returncode}:\n{self.output()}")
                try:
                    healthy = http.get(f"{self.base_url}/api/health").status_code == 200
                    # The runner prints its URLs only after it saw the host answer, too.
                    if healthy and "Press Ctrl-C to stop." in self.output():
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        pytest.fail(f"no healthy host within {STARTUP_TIMEOUT} s:\n{self.output()}")


@pytest.fixture
def start_runner(tmp_path: Path) -> Iterator[Callable[..., Runner]]:
    """Start runners on free ports with a temporary `.dev`; kill leftovers by PID after."""
    runners: list[Runner] = []

    def start(
        app: str = SAMPLE_APP, functions_port: int | None = None, queue_port: int | None = None
    ) -> Runner:
        functions_port = functions_port or free_port()
        queue_port = queue_port or free_port()
        env = {key: value for key, value in os.environ.items() if key not in RUNNER_SETTINGS}
        env |= {
            "FUNCTIONS_PORT": str(functions_port),
            "AZURITE_TABLE_PORT": str(free_port()),
            "AZURITE_QUEUE_PORT": str(queue_port),
            "CHAT_RECONNECT_DEV_DIR": str(tmp_path / "dev"),
        }
        log = tmp_path / f"runner-{len(runners)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "local.dev", "--app", app],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        runner = Runner(process, log, functions_port, queue_port)
        runners.append(runner)
        return runner

    yield start
    # Only reached with something left over when a test failed half-way.
    for runner in runners:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.process.wait(10)
        for pid in runner.reported_pids().values():
            if is_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def assert_stops_cleanly(runner: Runner, signum: int) -> None:
    pids = runner.reported_pids()
    assert set(pids) == {"azurite", "azurite-queue", "host"}, runner.output()
    assert all(is_alive(pid) for pid in pids.values())
    runner.process.send_signal(signum)
    assert runner.process.wait(30) == 0, runner.output()
    assert not [name for name, pid in pids.items() if is_alive(pid)], runner.output()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_runner_serves_until_a_signal_then_leaves_nothing(
    start_runner: Callable[..., Runner], signum: int, tmp_path: Path
) -> None:
    runner = start_runner()
    runner.wait_healthy()
    assert f"{runner.base_url}/api/openapi.json" in runner.output()
    # The runner, not the host, brings the demo's dev-only token issuer.
    with httpx.Client(trust_env=False) as http:
        assert http.get(f"{runner.base_url}/dev/issuer").json()["issuer"] == DEV_ISSUER
    assert (tmp_path / "dev" / "azurite").is_dir()
    assert_stops_cleanly(runner, signum)
    assert not (tmp_path / "dev" / "pids.json").exists()


@pytest.mark.skipif(
    not (REPO_ROOT / "function_app.py").exists(), reason="function_app.py is not written yet"
)
def test_runner_serves_the_real_app(start_runner: Callable[..., Runner]) -> None:
    runner = start_runner(REAL_APP)
    runner.wait_healthy()
    with httpx.Client(trust_env=False) as http:
        assert http.get(f"{runner.base_url}/api/health").json() == {"status": "ok"}
    assert_stops_cleanly(runner, signal.SIGTERM)


def test_a_dying_child_stops_the_other_and_fails(start_runner: Callable[..., Runner]) -> None:
    runner = start_runner()
    runner.wait_healthy()
    pids = runner.reported_pids()
    os.kill(pids["host"], signal.SIGKILL)  # our own grandchild, by the PID it reported
    assert runner.process.wait(30) == 1
    assert "exited unexpectedly" in runner.output()
    assert not is_alive(pids["azurite"])
    assert not is_alive(pids["azurite-queue"])


def test_a_busy_port_fails_fast_naming_the_setting(start_runner: Callable[..., Runner]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        runner = start_runner(functions_port=port)
        assert runner.process.wait(30) == 1
    assert f"port {port}" in runner.output()
    assert "FUNCTIONS_PORT" in runner.output()
    assert runner.reported_pids() == {}


def test_the_signing_key_is_made_once_and_private(tmp_path: Path) -> None:
    key = ensure_signing_key(tmp_path)
    assert len(key) >= 64
    assert stat.S_IMODE((tmp_path / "signing.key").stat().st_mode) == 0o600
    assert ensure_signing_key(tmp_path) == key


def queue_names(connection: str) -> list[str]:
    """The names of the queues on the account of a connection string."""
    with QueueServiceClient.from_connection_string(connection) as service:
        return [queue.name for queue in service.list_queues()]


def test_the_host_runs_queue_triggers_on_the_dev_queue_service(
    start_runner: Callable[..., Runner],
) -> None:
    runner = start_runner(FORWARDING_APP)
    runner.wait_healthy()
    endpoint = f"http://127.0.0.1:{runner.queue_port}/{DEV_ACCOUNT}"
    assert f"queues   {endpoint} (events: conversation-events)" in runner.output()
    connection = queue_connection_string(runner.queue_port)
    deadline = time.monotonic() + 30
    # The host creates the queue its trigger listens on: AzureWebJobsStorage reached it.
    while FORWARD_IN not in queue_names(connection):
        assert time.monotonic() < deadline, runner.output()
        time.sleep(0.1)
    with (
        QueueClient.from_connection_string(connection, FORWARD_IN) as inbox,
        QueueClient.from_connection_string(connection, FORWARD_OUT) as outbox,
    ):
        inbox.send_message(base64.b64encode(b"over the dev queue").decode("ascii"))
        # The handler wrote with QUEUES_CONNECTION_STRING: the runner passed both settings.
        found = []
        while not found:
            assert time.monotonic() < deadline, runner.output()
            time.sleep(0.1)
            with contextlib.suppress(ResourceNotFoundError):
                found = outbox.peek_messages()
    assert found[0].content == "over the dev queue"
    assert (runner.log.parent / "dev" / "azurite").is_dir()
    assert_stops_cleanly(runner, signal.SIGINT)


def test_a_busy_queue_port_fails_fast_naming_the_setting(
    start_runner: Callable[..., Runner],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        runner = start_runner(queue_port=port)
        assert runner.process.wait(30) == 1
    assert f"port {port}" in runner.output()
    assert "AZURITE_QUEUE_PORT" in runner.output()
    assert runner.reported_pids() == {}
