"""The `make dev` runner: starts Azurite and the host, answers health, leaves nothing behind."""

from __future__ import annotations

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

from local.demo import DEV_ISSUER
from local.dev import ensure_signing_key
from local.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = "tests/local/sample_app.py:health_app"
REAL_APP = "function_app:app"
STARTUP_TIMEOUT = 90.0
# Settings the runner provides itself; the tests must not inherit them from the shell.
RUNNER_SETTINGS = ("TABLES_CONNECTION_STRING", "RECONNECT_SIGNING_KEY", "LOCAL_HOST_APP")

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

    def __init__(self, process: subprocess.Popen[bytes], log: Path, functions_port: int) -> None:
        self.process = process
        self.log = log
        self.base_url = f"http://127.0.0.1:{functions_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def reported_pids(self) -> dict[str, int]:
        """The child PIDs the runner printed, as `azurite pid=N` and `host pid=N`."""
        return {
            name: int(pid)
            for name, pid in re.findall(r"^(azurite|host) pid=(\d+)$", self.output(), re.M)
        }

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

    def start(app: str = SAMPLE_APP, functions_port: int | None = None) -> Runner:
        functions_port = functions_port or free_port()
        env = {key: value for key, value in os.environ.items() if key not in RUNNER_SETTINGS}
        env |= {
            "FUNCTIONS_PORT": str(functions_port),
            "AZURITE_TABLE_PORT": str(free_port()),
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
        runner = Runner(process, log, functions_port)
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
    assert set(pids) == {"azurite", "host"}, runner.output()
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
