"""``make dev``: run Azurite (tables, queues) and the local Functions host until Ctrl-C or SIGTERM.

Azurite keeps its tables and queues in ``.dev/azurite`` and the dev signing key lives in
``.dev/signing.key``, so conversations, reconnect links and queued events survive
restarts. Every server runs in a session of its own and is stopped by PID; nothing is left
behind.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from local.azurite import (
    DEV_ACCOUNT,
    Azurite,
    AzuriteQueue,
    connection_string,
    queue_connection_string,
    storage_connection_string,
)
from local.errors import HostError
from local.loader import DEFAULT_APP
from local.processes import stop_process_group
from local.routes import read_route_prefix

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_DIR_ENV = "CHAT_RECONNECT_DEV_DIR"
APP_ENV = "LOCAL_HOST_APP"
DEFAULT_FUNCTIONS_PORT = 7071
DEFAULT_AZURITE_TABLE_PORT = 10002
DEFAULT_AZURITE_QUEUE_PORT = 10001
# The public events queue the demo's agent console shows (the app's default name).
DEFAULT_EVENTS_QUEUE = "conversation-events"
HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
# The demo's timer: every 5 s rather than the app's 30 s, so a one-minute time limit
# visibly times out about when it should.
DEMO_ENFORCE_SCHEDULE = "*/5 * * * * *"
# The demo's dev-only token issuer, which the runner asks the host to mount.
DEMO_ROUTES = "local.demo:demo_routes"
# The org id of the demo's page with Microsoft's chat SDK (widget/sdk.html), unless set.
DEMO_OMNICHANNEL_ORG_ID = "00000000-0000-4000-8000-000000000de0"


class DevError(RuntimeError):
    """The dev environment cannot start; the message says what to change."""


def dev_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder for local state: ``$CHAT_RECONNECT_DEV_DIR``, else ``.dev`` in the repo."""
    configured = environ.get(DEV_DIR_ENV)
    return Path(configured).resolve() if configured else REPO_ROOT / ".dev"


def ensure_signing_key(directory: Path) -> str:
    """The dev signing key from ``directory/signing.key``, created (mode 0600) on first use."""
    path = directory / "signing.key"
    try:
        # O_EXCL: never overwrite a key that links already depend on; 0600 from the start.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="utf-8").strip()
        if len(key) < 32:
            raise DevError(f"{path} holds no usable key: delete it to get a new one") from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key


def port_setting(environ: Mapping[str, str], name: str, default: int) -> int:
    """A TCP port from the environment variable ``name``, or ``default``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise DevError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise DevError(f"{name}={port} is not a port number (1-65535)")
    return port


def check_port_free(port: int, setting: str) -> None:
    """Raise DevError naming ``setting`` if something already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the servers use it: a port in TIME_WAIT is free for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DevError(
                f"port {port} on 127.0.0.1 is already in use: stop what uses it, "
                f"or set {setting} to another port (e.g. {setting}={port + 1} make dev)"
            ) from None


class _StopSignal:
    """Remembers a SIGINT/SIGTERM so the main loop can shut down in order."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum


@contextmanager
def _handling_stop_signals() -> Iterator[_StopSignal]:
    """Catch SIGINT and SIGTERM for the duration, restoring the old handlers after."""
    stop = _StopSignal()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def health_status(url: str) -> int | None:
    """The HTTP status ``url`` answers with, or None if nothing answers."""
    # No proxy: the host is on 127.0.0.1, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


def _write_pids(directory: Path, pids: Mapping[str, int]) -> None:
    """Record the children's PIDs in ``pids.json`` for tools that need to find them."""
    (directory / "pids.json").write_text(json.dumps(dict(pids)) + "\n", encoding="utf-8")


def _host_environment(
    environ: Mapping[str, str],
    functions_port: int,
    azurite_port: int,
    queue_port: int,
    directory: Path,
) -> dict[str, str]:
    """The host's environment: ours, plus storage (tables, queues, and AzureWebJobsStorage for
    queue triggers), signing key, timer schedule and the SDK page's Omnichannel org id unless
    set."""
    env = dict(environ)
    env["FUNCTIONS_PORT"] = str(functions_port)
    env.setdefault("TABLES_CONNECTION_STRING", connection_string(azurite_port))
    env.setdefault("QUEUES_CONNECTION_STRING", queue_connection_string(queue_port))
    env.setdefault("AzureWebJobsStorage", storage_connection_string(azurite_port, queue_port))
    if not env.get("RECONNECT_ENFORCE_SCHEDULE"):
        env["RECONNECT_ENFORCE_SCHEDULE"] = DEMO_ENFORCE_SCHEDULE
    if not env.get("RECONNECT_SIGNING_KEY"):
        env["RECONNECT_SIGNING_KEY"] = ensure_signing_key(directory)
    if not env.get("OMNICHANNEL_ORG_ID"):
        env["OMNICHANNEL_ORG_ID"] = DEMO_OMNICHANNEL_ORG_ID
    env["PYTHONUNBUFFERED"] = "1"  # the host's log lines show up as they happen
    return env


def _say(message: str) -> None:
    print(message, flush=True)


def run(app_spec: str, environ: Mapping[str, str]) -> int:
    """Start Azurite and the host, wait for a stop signal or a crash, stop both; exit code."""
    functions_port = port_setting(environ, "FUNCTIONS_PORT", DEFAULT_FUNCTIONS_PORT)
    azurite_port = port_setting(environ, "AZURITE_TABLE_PORT", DEFAULT_AZURITE_TABLE_PORT)
    queue_port = port_setting(environ, "AZURITE_QUEUE_PORT", DEFAULT_AZURITE_QUEUE_PORT)
    directory = dev_dir(environ)
    try:
        check_port_free(functions_port, "FUNCTIONS_PORT")
        check_port_free(azurite_port, "AZURITE_TABLE_PORT")
        check_port_free(queue_port, "AZURITE_QUEUE_PORT")
    except DevError as error:
        leftovers = directory / "pids.json"
        if leftovers.exists():
            # Only a runner killed outright (SIGKILL) leaves this file behind.
            raise DevError(
                f"{error}\n(an earlier run may still be going: see {leftovers})"
            ) from None
        raise
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = _host_environment(environ, functions_port, azurite_port, queue_port, directory)
    base_url = f"http://127.0.0.1:{functions_port}"
    prefix = read_route_prefix()
    api = f"{base_url}/{prefix}" if prefix else base_url
    azurite = Azurite(port=azurite_port, location=directory / "azurite")
    # Same folder: the table and queue services keep their data in files of their own.
    queues = AzuriteQueue(port=queue_port, location=directory / "azurite")
    host: subprocess.Popen[bytes] | None = None
    with _handling_stop_signals() as stop:
        try:
            azurite.start()
            assert azurite.pid is not None
            _say(f"azurite pid={azurite.pid}")
            queues.start()
            assert queues.pid is not None
            _say(f"azurite-queue pid={queues.pid}")
            host = subprocess.Popen(
                [sys.executable, "-m", "local.host", "--app", app_spec, "--routes", DEMO_ROUTES],
                cwd=REPO_ROOT,
                env=env,
                # A session of its own: Ctrl-C reaches only us, and we stop it in order.
                start_new_session=True,
            )
            _say(f"host pid={host.pid}")
            _write_pids(
                directory,
                {
                    "runner": os.getpid(),
                    "azurite": azurite.pid,
                    "azurite-queue": queues.pid,
                    "host": host.pid,
                },
            )
            if not _wait_for_host(host, f"{api}/health", stop):
                return 0  # stopped by a signal while starting
            _say(
                "\nChat Reconnect is running:\n"
                f"  host     {base_url}\n"
                f"  health   {api}/health\n"
                f"  openapi  {api}/openapi.json\n"
                f"  demo     {base_url}/ (Microsoft's chat SDK: {base_url}/sdk.html)\n"
                f"  timer    {env['RECONNECT_ENFORCE_SCHEDULE']} (RECONNECT_ENFORCE_SCHEDULE)\n"
                f"  azurite  http://127.0.0.1:{azurite_port}/{DEV_ACCOUNT}"
                f" (data in {azurite.location})\n"
                f"  queues   http://127.0.0.1:{queue_port}/{DEV_ACCOUNT}"
                f" (events: {env.get('EVENTS_QUEUE', DEFAULT_EVENTS_QUEUE) or 'off'})\n"
                "Press Ctrl-C to stop."
            )
            return _watch((("Azurite", azurite), ("Azurite's queue service", queues)), host, stop)
        finally:
            if host is not None:
                stop_process_group(host, STOP_TIMEOUT)
            queues.stop()
            azurite.stop()
            (directory / "pids.json").unlink(missing_ok=True)


def _wait_for_host(host: subprocess.Popen[bytes], health_url: str, stop: _StopSignal) -> bool:
    """Wait until the host answers its health route; False if a stop signal came first."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while stop.received is None:
        status = health_status(health_url)
        if status is not None:
            if status != 200:
                _say(f"warning: {health_url} answers {status}, not 200")
            return True
        if host.poll() is not None:
            raise DevError(f"the host exited with code {host.returncode} while starting")
        if time.monotonic() > deadline:
            raise DevError(f"the host did not answer {health_url} within {HEALTH_TIMEOUT:.0f} s")
        time.sleep(POLL_INTERVAL)
    return False


def _watch(
    servers: Sequence[tuple[str, Azurite]], host: subprocess.Popen[bytes], stop: _StopSignal
) -> int:
    """Block until a stop signal (exit code 0) or until a child dies (exit code 1)."""
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    for name, server in servers:
        assert server.process is not None
        children.append((name, server.process))
    children.append(("the host", host))
    while stop.received is None:
        for name, process in children:
            if process.poll() is not None:
                _say(f"{name} exited unexpectedly with code {process.returncode}; stopping")
                return 1
        time.sleep(POLL_INTERVAL)
    _say(f"\n{signal.Signals(stop.received).name} received: stopping the host and Azurite")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m local.dev [--app module:attr]``: the ``make dev`` runner; exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m local.dev", description="Run Azurite and the local Functions host."
    )
    parser.add_argument(
        "--app",
        default=os.environ.get(APP_ENV, DEFAULT_APP),
        help=f"the FunctionApp as module:attr or path.py:attr (env {APP_ENV}; "
        f"default {DEFAULT_APP})",
    )
    args = parser.parse_args(argv)
    try:
        return run(args.app, os.environ)
    except (DevError, HostError, FileNotFoundError, TimeoutError) as error:
        print(f"make dev: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
